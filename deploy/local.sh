#!/usr/bin/env bash
# keyrelay on this machine, for development and trying it out:
#
#   deploy/local.sh up       install missing Debian packages (as root), build (Release, build/),
#                            start MariaDB (data in var/mariadb, no system service), migrate,
#                            create the first instance admin and the workspace `default` once,
#                            start keyrelay-fcgi, keyrelay-runner and nginx on
#                            http://127.0.0.1:${KEYRELAY_HTTP_PORT:-8080}
#   deploy/local.sh down     stop everything, keeping the data
#   deploy/local.sh status   what runs
#   deploy/local.sh restart  down, then up (after a rebuild, for instance)
#
# `up` again starts whatever is not running and creates nothing twice. The first admin is
# KEYRELAY_ADMIN_EMAIL / KEYRELAY_ADMIN_PASSWORD when set, else admin@localhost with a
# generated password; the login is printed once, when it is created. The KEYRELAY_* variables
# given to `up` reach the programs it starts (config overrides such as KEYRELAY_LOG_LEVEL,
# provider base URLs, ...), as do provider keys such as OPENAI_API_KEY; except
# KEYRELAY_CONFIG, KEYRELAY_DB_*, KEYRELAY_FCGI_SOCKET, KEYRELAY_FCGI_EVENTS_SOCKET and
# KEYRELAY_SECRETS_*, which would point the programs away from this stack. Programs that
# already run keep their environment: give new variables to `restart`.
# Generated secrets (the database password) stay in var/ (mode 0600). Logs: var/logs/.
# The mechanics live in tests/lib/krstack.py, shared with the test stack.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

stack() { python3 tests/lib/krstack.py "$@"; }

case "${1:-}" in
up)
    deploy/install-packages.sh
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF > /dev/null
    cmake --build build -j"$(nproc)"
    mkdir -p var
    chmod 0700 var
    stack local-up var --bin-dir build/fcgi --port "${KEYRELAY_HTTP_PORT:-8080}"
    ;;
down)
    stack local-down var
    ;;
status)
    stack local-status var
    ;;
restart)
    stack local-down var
    exec deploy/local.sh up
    ;;
*)
    echo "usage: $0 up|down|status|restart" >&2
    exit 2
    ;;
esac
