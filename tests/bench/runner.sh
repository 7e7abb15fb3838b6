#!/usr/bin/env bash
# Runner benchmark (issue 4, "Benchmarks"): a Release build (no sanitizers) in build-bench/,
# a throwaway stack (MariaDB with deploy/mariadb/keyrelay.cnf, so durable commits), one
# workspace with one key, the jobs inserted up front with SQL, and a fresh keyrelay-runner
# per scenario:
#   (a) stub answering after 1 s, 5,000 jobs, 500 in flight: wall, limit (10 s), ratio, RSS
#   (b) stub answering after 1 s, 20,000 jobs, 2,000 in flight: the same
#   (c) stub answering at once, 20,000 jobs, 64 in flight: jobs/s
#   (d) the database path alone (tests/bench/queue_db.c): the same claims and stores through
#       the library without HTTP: jobs/s and MariaDB's CPU per job, beside (c)'s
# The provider is tests/bench/fast_stub.c (built here with cc): the Python stub cannot keep
# 2,000 one-second calls on time, which the stub check printed first shows in the same run.
# The pg-boss and BullMQ figures printed are the issue's; tests/bench/queues.sh measures both on
# this machine with the same stub. Each scenario also prints how much CPU other processes took:
# on a shared 2-core machine that decides more of the result than one would like.
#
#   tests/bench/runner.sh [--runs N] [--scenarios a,b,c] [--profile DIR] [--json FILE]
#                         [--no-stub-check]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

stub_check=--stub-check
args=()
for a in "$@"; do
    if [ "$a" = --no-stub-check ]; then stub_check=; else args+=("$a"); fi
done

extra=()
case " $* " in *" --profile"*) extra+=(linux-perf) ;; esac
deploy/install-packages.sh wrk "${extra[@]}" > /dev/null
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF > /dev/null
cmake --build build-bench -j"$(nproc)" > /dev/null
cc -O2 -Wall -Wextra -o build-bench/fast_stub tests/bench/fast_stub.c
# shellcheck disable=SC2046 # pkg-config's flags are words
cc -O2 -Wall -Wextra -Werror -D_POSIX_C_SOURCE=200809L -Ifcgi/lib -o build-bench/queue_db \
    tests/bench/queue_db.c build-bench/fcgi/libkeyrelay.a \
    $(pkg-config --cflags --libs libmariadb openssl libcurl json-c) -lpthread
if [ "$(ulimit -n)" -lt 8192 ]; then ulimit -n 8192 2> /dev/null || true; fi
exec python3 tests/bench/runner_bench.py --bin-dir build-bench/fcgi \
    --fast-stub build-bench/fast_stub --queue-db build-bench/queue_db $stub_check "${args[@]}"
