#!/usr/bin/env bash
# API benchmark (issue 2): an authenticated, database-backed GET /api/workspaces (bearer
# token) against nginx serving a small static JSON file, measured in the same run with the
# same tool: wrk on loopback, 64 connections, 10 s each. Prints requests/s, p50 and p99 of
# both and the ratio. A Release build (no sanitizers) in build-bench/, a throwaway stack.
#
#   tests/bench/api.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
secs=${1:-10}
conns=${2:-64}

deploy/install-packages.sh wrk > /dev/null
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF > /dev/null
cmake --build build-bench -j"$(nproc)" > /dev/null
dir=$(mktemp -d /tmp/kr-bench.XXXXXX)
trap 'python3 tests/lib/krstack.py down "$dir" > /dev/null 2>&1 || true; rm -rf "$dir"' EXIT
KEYRELAY_BIN_DIR=$PWD/build-bench/fcgi KEYRELAY_LOG_LEVEL=warn \
    python3 tests/lib/krstack.py up "$dir" > /dev/null
base=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["base_url"])' "$dir/stack.json")
token=$(python3 - "$dir" <<'PY'
import sys
sys.path.insert(0, "tests/lib")
import krstack
s = krstack.Stack.load(sys.argv[1]) if hasattr(krstack.Stack, "load") else krstack.Stack.from_dir(sys.argv[1])
print(s.admin("create-token", "--workspace", s.workspace, "--name", "bench", "--role", "viewer").stdout.strip())
PY
)

# wrk --latency prints "50%  1.23ms" lines; turn them into milliseconds.
measure() {	# name url [header]
    local out
    if [ $# -eq 3 ]; then
        out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency -H "$3" "$2")
    else
        out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency "$2")
    fi
    printf "%s\n" "$out" > "$dir/wrk-$1.txt"
    python3 - "$1" <<PY
import re, sys
out = """$out"""
def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", v)
    if m is None:
        sys.exit("cannot read wrk's latency %r in:\n%s" % (v, out))
    n, u = m.groups()
    return float(n) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
errs = re.search(r"Socket errors: (.*)", out)
print(f"{sys.argv[1]} {rps:.0f} {p50:.2f} {p99:.2f} {non2xx.group(1) if non2xx else 0} {errs.group(1).replace(' ', '') if errs else '-'}")
PY
}

curl -fsS -H "Authorization: Bearer $token" "$base/api/workspaces" > /dev/null
api=$(measure api "$base/api/workspaces" "Authorization: Bearer $token")
static=$(measure static "$base/version.json")
python3 - "$api" "$static" "$secs" "$conns" <<'PY'
import sys
a, s = sys.argv[1].split(), sys.argv[2].split()
print(f"wrk, {sys.argv[4]} connections, {sys.argv[3]} s each, loopback, {open('/proc/cpuinfo').read().count('processor')} cores")
print(f"{'':34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}  socket errors")
print(f"{'GET /api/workspaces (bearer, DB)':34} {a[1]:>9} {a[2]:>8} {a[3]:>8} {a[4]:>8}  {a[5]}")
print(f"{'GET /version.json (nginx static)':34} {s[1]:>9} {s[2]:>8} {s[3]:>8} {s[4]:>8}  {s[5]}")
print(f"ratio api/static: {float(a[1]) / float(s[1]):.3f} (aim >= 0.25); api p99 {a[3]} ms (aim < 20)")
PY
