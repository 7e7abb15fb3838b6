#!/usr/bin/env bash
# The test command: installs the Debian packages that are missing (deploy/packages.txt, plus
# wrk and valgrind), builds with warnings as errors and AddressSanitizer +
# UndefinedBehaviorSanitizer into build-test/, and runs every test (unit tests, fuzz corpus
# replays, then the HTTP tests against a whole stack of MariaDB, keyrelay-fcgi,
# keyrelay-runner and nginx) with ctest; then the unit tests and replays of the Release build
# under valgrind. Exits non-zero when either ctest failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

deploy/install-packages.sh wrk valgrind
tests/browser/install.sh

# Any sanitizer report fails the run. A unit test or keyrelay-admin stops with a non-zero
# status at the first report. keyrelay-fcgi and keyrelay-runner write their reports to the
# stack's logs, and the test stack.down fails when it finds one there; it also fails when a
# server does not exit on SIGTERM. Leak detection stays on for the servers too: they exit
# through main() on SIGTERM and free what they hold, so LeakSanitizer's report at exit is
# meaningful.
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:detect_leaks=1:strict_string_checks=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"

# The optimiser finds warnings a Debug build cannot (-Wmaybe-uninitialized, format
# truncation): the Release build must be clean too, tests included. It also runs the unit
# tests and the fuzz corpus replays under valgrind (label valgrind), which sees reads of
# uninitialised memory that the sanitizers do not.
cmake -S . -B build-release -DKEYRELAY_WERROR=ON -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=ON \
    -DKEYRELAY_VALGRIND=ON
cmake --build build-release -j2

cmake -S . -B build-test -DKEYRELAY_WERROR=ON -DKEYRELAY_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
cmake --build build-test -j2

status=0
ctest --test-dir build-test --output-on-failure -j2 || status=$?
ctest --test-dir build-release --output-on-failure -j2 -L valgrind || status=$?
exit "$status"
