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
# Right after each keyrelay scenario (a, b, c), tests/bench/queues.sh runs BullMQ and pg-boss
# through the same scenario with the same stub, and tests/bench/compare.py ends with both beside
# keyrelay, run by run: this machine's speed drifts by 15 to 30 % between minutes, so the
# references are measured seconds after keyrelay, not quoted. --no-references skips them.
# Each scenario also prints how much CPU other processes took: on a shared 2-core machine that
# decides more of the result than one would like.
#
#   tests/bench/runner.sh [--runs N] [--scenarios a,b,c,d] [--profile DIR] [--json FILE]
#                         [--no-stub-check] [--no-references]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

stub_check=--stub-check
references=1
runs=2
scenarios=a,b,c,d
profile=()
json=
while [ $# -gt 0 ]; do
    case $1 in
        --no-stub-check) stub_check= ;;
        --no-references) references= ;;
        --runs) runs=$2; shift ;;
        --scenarios) scenarios=$2; shift ;;
        --profile) profile=(--profile "$2"); shift ;;
        --json) json=$2; shift ;;
        *) echo "runner.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

extra=()
[ ${#profile[@]} -eq 0 ] || extra+=(linux-perf)
deploy/install-packages.sh wrk "${extra[@]}" > /dev/null
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF > /dev/null
cmake --build build-bench -j"$(nproc)" > /dev/null
cc -O2 -Wall -Wextra -o build-bench/fast_stub tests/bench/fast_stub.c
# shellcheck disable=SC2046 # pkg-config's flags are words
cc -O2 -Wall -Wextra -Werror -D_POSIX_C_SOURCE=200809L -Ifcgi/lib -o build-bench/queue_db \
    tests/bench/queue_db.c build-bench/fcgi/libkeyrelay.a \
    $(pkg-config --cflags --libs libmariadb openssl libcurl json-c) -lpthread
if [ "$(ulimit -n)" -lt 8192 ]; then ulimit -n 8192 2> /dev/null || true; fi

out=$(mktemp -d /tmp/kr-bench.XXXXXX)
trap 'rm -rf "$out"' EXIT
# The scenarios the queues can run too (d is keyrelay's database path alone).
ref_scenarios=$(tr , '\n' <<< "$scenarios" | grep -x '[abc]' | paste -sd, || true)
# The scenarios in groups, each a keyrelay stack of its own followed by the queues: one
# scenario each, but (d) goes with (c), whose figures it prints beside its own.
groups=()
for sc in $(tr , ' ' <<< "$scenarios"); do
    if [ "$sc" = d ] && [ ${#groups[@]} -gt 0 ] && [[ ${groups[-1]} == *c* ]]; then
        groups[-1]+=,d
    else
        groups+=("$sc")
    fi
done
kr_json=()
for run in $(seq "$runs"); do
    for g in "${!groups[@]}"; do
        group=${groups[$g]}
        kr_json+=("$out/keyrelay-$run-$g.json")
        last=()
        [ "$run" -lt "$runs" ] || [ "$g" -lt $((${#groups[@]} - 1)) ] || last=("${profile[@]}")
        echo "== keyrelay-runner, run $run of $runs, scenarios $group"
        python3 tests/bench/runner_bench.py --bin-dir build-bench/fcgi \
            --fast-stub build-bench/fast_stub --queue-db build-bench/queue_db $stub_check \
            --runs 1 --first-run "$run" --scenarios "$group" \
            --json "$out/keyrelay-$run-$g.json" "${last[@]}"
        stub_check=
        refs=$(tr , '\n' <<< "$group" | grep -x '[abc]' | paste -sd, || true)
        if [ -n "$references" ] && [ -n "$refs" ]; then
            echo "== BullMQ and pg-boss, run $run of $runs, scenario $refs"
            QUEUES_JSON=$out/queues.jsonl tests/bench/queues.sh 1 "$refs" bullmq,pgboss "$run"
        fi
    done
done
if [ -n "$json" ]; then
    python3 -c 'import json, sys; print(json.dumps([r for f in sys.argv[1:] for r in json.load(open(f))], indent=1))' \
        "${kr_json[@]}" > "$json"
fi
if [ -n "$references" ] && [ -n "$ref_scenarios" ]; then
    python3 tests/bench/compare.py --queues "$out/queues.jsonl" \
        --keyrelay "${kr_json[@]}"
fi
