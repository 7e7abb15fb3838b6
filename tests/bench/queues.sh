#!/usr/bin/env bash
# Same-run reference for tests/bench/runner.sh: pg-boss 10 (PostgreSQL 15, fsync and
# synchronous_commit on: durable) and BullMQ 5 (Redis 7, no AOF: acknowledged from memory) doing
# the runner scenarios with tests/bench/queue_ref.mjs against the same fast_stub:
#   (a) 1 s stub, 5,000 jobs, 500 at once   (b) 1 s stub, 20,000 jobs, 2,000 at once
#   (c) stub at once, 20,000 jobs, 64 at once
# Prints wall, limit, ratio and the worker's peak RSS (VmHWM), or jobs/s for (c). Throwaway
# PostgreSQL cluster and Redis in a temporary directory; npm packages in build-bench/queue-ref.
# With QUEUES_JSON=FILE each result is also appended to FILE as a line of JSON (runner.sh reads
# them to compare keyrelay with both queues measured in the same sitting).
#
#   tests/bench/queues.sh [runs] [scenarios, e.g. a,b,c] [queues, e.g. pgboss,bullmq]
#                         [number of the first run, 1 unless said]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
runs=${1:-1}
scenarios=${2:-a,b,c}
queues=${3:-pgboss,bullmq}
first_run=${4:-1}

deploy/install-packages.sh postgresql redis-server > /dev/null
mkdir -p build-bench/queue-ref
if [ ! -d build-bench/queue-ref/node_modules/pg-boss ] || [ ! -d build-bench/queue-ref/node_modules/bullmq ]; then
    (cd build-bench/queue-ref && npm install --no-audit --no-fund --loglevel=error \
        pg-boss@10 bullmq@5 > /dev/null)
fi
cc -O2 -Wall -Wextra -o build-bench/fast_stub tests/bench/fast_stub.c
export QUEUE_REF_MODULES=$PWD/build-bench/queue-ref/node_modules

pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
dir=$(mktemp -d /tmp/kr-queues.XXXXXX)
chmod 755 "$dir"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done
    if [ -f "$dir/pg/postmaster.pid" ]; then
        runuser -u postgres -- "$pgbin/pg_ctl" -D "$dir/pg" -m fast stop > /dev/null 2>&1 || true
    fi
    rm -rf "$dir"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_file() { for _ in $(seq 200); do [ -s "$1" ] && return 0; sleep 0.05; done; return 1; }

# The stubs: one answering after 1 s, one at once.
for d in 1000 0; do
    build-bench/fast_stub --port-file "$dir/stub$d.port" --delay-ms "$d" &
    pids+=($!)
    wait_file "$dir/stub$d.port"
done
stub_url() { echo "http://127.0.0.1:$(cat "$dir/stub$1.port")/anthropic"; }

pgport=$(free_port)
redisport=$(free_port)
if [[ $queues == *pgboss* ]]; then
    mkdir "$dir/pg" "$dir/pgrun" && chown postgres "$dir/pg" "$dir/pgrun"
    runuser -u postgres -- "$pgbin/initdb" -D "$dir/pg" -A trust -U postgres > /dev/null
    runuser -u postgres -- "$pgbin/pg_ctl" -D "$dir/pg" -l "$dir/pgrun/pg.log" -w -o \
        "-p $pgport -k $dir/pgrun -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on -c max_connections=200 -c shared_buffers=256MB" \
        start > /dev/null
fi
if [[ $queues == *bullmq* ]]; then
    redis-server --port "$redisport" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$dir" --daemonize no > "$dir/redis.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do redis-cli -p "$redisport" ping > /dev/null 2>&1 && break; sleep 0.05; done
fi
pg_url="postgres://postgres@127.0.0.1:$pgport/postgres"

echo "pg-boss $(node -p "require('$QUEUE_REF_MODULES/pg-boss/package.json').version") on PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}') (fsync=on, synchronous_commit=on); BullMQ $(node -p "require('$QUEUE_REF_MODULES/bullmq/package.json').version") on Redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') (appendonly no)"
IFS=, read -ra scs <<< "$scenarios"
IFS=, read -ra qs <<< "$queues"
for run in $(seq "$first_run" $((first_run + runs - 1))); do
    for sc in "${scs[@]}"; do
        case $sc in
            a) jobs=5000; conc=500; delay=1000 ;;
            b) jobs=20000; conc=2000; delay=1000 ;;
            c) jobs=20000; conc=64; delay=0 ;;
            *) echo "unknown scenario $sc" >&2; exit 2 ;;
        esac
        for q in "${qs[@]}"; do
            name="bench_${sc}_$run"
            if [ "$q" = pgboss ]; then conn=(--pg "$pg_url"); else conn=(--redis "$redisport"); fi
            node tests/bench/queue_ref.mjs enqueue "$q" --queue "$name" --jobs "$jobs" "${conn[@]}"
            stat0=$(head -1 /proc/stat)
            out=$(node tests/bench/queue_ref.mjs work "$q" --queue "$name" --jobs "$jobs" \
                --concurrency "$conc" --stub "$(stub_url $delay)" "${conn[@]}")
            stat1=$(head -1 /proc/stat)
            python3 - "$run" "$sc" "$q" "$jobs" "$conc" "$delay" "$out" "$stat0" "$stat1" <<'PY'
import json, os, sys
run, sc, q, jobs, conc, delay, out, s0, s1 = sys.argv[1:]
r = json.loads(out)
jobs, conc, delay = int(jobs), int(conc), int(delay)
a, b = ([int(x) for x in s.split()[1:9]] for s in (s0, s1))
d = [y - x for x, y in zip(a, b)]
busy = 100 * (sum(d) - d[3] - d[4]) / max(1, sum(d))
tail = "  (machine %.0f%% busy, this test included)" % busy
if delay:
    limit = jobs / conc * delay / 1000
    print("run %s (%s) %-7s %5d jobs, %4d at once: wall %6.2f s  limit %4.1f s  ratio %.3f  "
          "peak RSS %5.1f MB  completed %d" % (run, sc, q, jobs, conc, r["wall_s"], limit,
                                               r["wall_s"] / limit, r["peak_rss_mb"],
                                               r["completed"]) + tail)
else:
    print("run %s (%s) %-7s %5d jobs, %4d at once: wall %6.2f s  %6.0f jobs/s  peak RSS %5.1f MB"
          "  completed %d" % (run, sc, q, jobs, conc, r["wall_s"], jobs / r["wall_s"],
                              r["peak_rss_mb"], r["completed"]) + tail)
if os.environ.get("QUEUES_JSON"):
    row = {"run": int(run), "scenario": sc, "queue": q, "jobs": jobs, "in_flight": conc,
           "delay_ms": delay, "wall_s": r["wall_s"], "jobs_per_s": jobs / r["wall_s"],
           "limit_s": jobs / conc * delay / 1000 if delay else 0,
           "peak_rss_mb": r["peak_rss_mb"], "completed": r["completed"], "busy_pct": busy}
    row["ratio"] = r["wall_s"] / row["limit_s"] if delay else None
    with open(os.environ["QUEUES_JSON"], "a") as f:
        f.write(json.dumps(row) + "\n")
PY
            if [ "$q" = bullmq ]; then redis-cli -p "$redisport" flushall > /dev/null; fi
        done
    done
done
