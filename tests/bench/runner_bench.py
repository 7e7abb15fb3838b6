#!/usr/bin/env python3
"""keyrelay-runner benchmark (issue 4, "Benchmarks"); driven by tests/bench/runner.sh.

A throwaway stack (tests/lib/krstack.py: MariaDB with deploy/mariadb/keyrelay.cnf, so
innodb_flush_log_at_trx_commit=1), one workspace with one Anthropic key, and
tests/bench/fast_stub (C, epoll) as the provider. For
each scenario the runner is stopped, the queue emptied, N `task` jobs inserted up front with
SQL (INSERT ... SELECT FROM seq_1_to_N), and a fresh runner started with
runner.max_in_flight = runner.workspace_cap = the scenario's figure. Wall time runs from the
runner's spawn to the last job's finished_at (every job must end `succeeded`); peak RSS is the
runner's VmHWM. Per job it also reports the statements the server executed (SHOW GLOBAL
STATUS deltas), redo log fsyncs, and CPU of the runner, mariadbd and the stub.

    runner_bench.py --bin-dir BUILD/fcgi --fast-stub BUILD/fast_stub [--runs 2]
        [--scenarios a,b,c] [--stub-check] [--profile DIR] [--json FILE]

Scenarios: a) 1 s stub, 5,000 jobs, 500 in flight (limit 10 s); b) 1 s stub, 20,000 jobs,
2,000 in flight (limit 10 s); c) stub answering at once, 20,000 jobs, 64 in flight (jobs/s);
d) the database path alone: the runner's claim and store statements through the library
(tests/bench/queue_db.c, --queue-db), no HTTP, to show what MariaDB costs per job here.
--stub-check measures the stubs alone with wrk (2,000 connections, 1 s answers) first.
--profile DIR: one more run of --profile-scenario (default c) under `perf record -g -p` (the
runner and mariadbd), reports written to DIR.
"""

import argparse
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "lib"))
sys.path.insert(0, str(REPO / "tests" / "stub"))
import krclient  # noqa: E402
import krstack  # noqa: E402

KEY = "sk-ant-bench-0001-0123456789abcdef"
SCENARIOS = {
    "a": {"jobs": 5000, "in_flight": 500, "delay_ms": 1000,
          "what": "1 s stub, 5,000 jobs, 500 in flight"},
    "b": {"jobs": 20000, "in_flight": 2000, "delay_ms": 1000,
          "what": "1 s stub, 20,000 jobs, 2,000 in flight"},
    "c": {"jobs": 20000, "in_flight": 64, "delay_ms": 0,
          "what": "stub at once, 20,000 jobs, 64 in flight"},
    "d": {"jobs": 20000, "in_flight": 0, "delay_ms": 0, "claim": 96, "batch": 64,
          "what": "the database path alone (tests/bench/queue_db.c): 20,000 jobs claimed 96 "
                  "and stored 64 per transaction through the library on one connection, "
                  "no HTTP"},
}
AIMS = {"a": 1.04, "b": 1.08}
RSS_AIM_MB = 64
# Issue 4's figures for pg-boss (PostgreSQL) and BullMQ (Redis) on this machine.
QUOTED = {
    "a": "pg-boss 1.07x, BullMQ 1.10x of the limit, 134-160 MB worker memory",
    "b": "pg-boss 1.21x, BullMQ 1.22x of the limit, about 250 MB",
    "c": "pg-boss about 3,600 jobs/s (durable), BullMQ about 5,200 jobs/s",
    "d": "scenario (c) of the same run, when it ran: the whole runner with HTTP",
}
STATUS_VARS = ("Com_stmt_execute", "Com_commit", "Com_begin", "Com_select", "Com_insert",
               "Com_update", "Com_insert_select", "Com_delete", "Questions",
               "Innodb_log_writes", "Innodb_data_fsyncs", "Innodb_os_log_written",
               "Handler_write", "Handler_update", "Handler_read_key",
               "Innodb_row_lock_waits", "Innodb_row_lock_time")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print("runner_bench: " + msg, file=sys.stderr, flush=True)


class Db:
    """One long-lived `mariadb` client on the stack's socket: one query, one line back."""

    def __init__(self, stack):
        argv = [shutil.which("mariadb") or "mariadb", "--no-defaults", "--protocol=socket",
                "--socket=" + stack.mariadb_socket, "--user=" + pwd.getpwuid(os.getuid()).pw_name,
                "--database=" + stack.db_name, "-N", "-B", "-n"]
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True, bufsize=1)
        self.queries = 0
        self.one("SET time_zone = '+00:00'; SELECT 1")

    def one(self, sql):
        """The first line of the answer of a query that returns exactly one row."""
        self.queries += 1           # statements (Com_select counts one per statement)
        self.p.stdin.write(sql.rstrip().rstrip(";") + ";\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if line == "":
            raise RuntimeError("mariadb client ended")
        return line.rstrip("\n").split("\t")

    def status(self):
        """SHOW GLOBAL STATUS values of STATUS_VARS, as one row."""
        names = ",".join("'%s'" % v for v in STATUS_VARS)
        cols = ",".join("MAX(IF(VARIABLE_NAME = '%s', VARIABLE_VALUE, NULL))" % v.upper()
                        for v in STATUS_VARS)
        row = self.one("SELECT %s FROM information_schema.GLOBAL_STATUS "
                       "WHERE VARIABLE_NAME IN (%s)" % (cols, names.upper()))
        return {k: int(v) for k, v in zip(STATUS_VARS, row)}

    def close(self):
        try:
            self.p.stdin.close()
            self.p.wait(timeout=10)
        except Exception:
            self.p.kill()


def proc_cpu(pid):
    """utime + stime of a process in seconds (0 when gone)."""
    try:
        stat = Path("/proc/%d/stat" % pid).read_text()
    except OSError:
        return 0.0
    f = stat[stat.rindex(")") + 2:].split()
    return (int(f[11]) + int(f[12])) / CLK_TCK


def machine_busy():
    """CPU seconds the whole machine spent not idle (all cores), from /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = f[3] + (f[4] if len(f) > 4 else 0)
    return (sum(f[:8]) - idle) / CLK_TCK


def proc_kb(pid, field):
    try:
        for line in Path("/proc/%d/status" % pid).read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def pid_of(stack, name):
    rec = krstack._Stopper.read(stack.p("run", name + ".pid"))
    return rec[0] if rec else None


class FastStub:
    def __init__(self, binary, dir, delay_ms):
        self.port_file = Path(dir) / ("fast_stub_%d.port" % delay_ms)
        if self.port_file.exists():
            self.port_file.unlink()
        self.proc = subprocess.Popen([str(binary), "--port-file", str(self.port_file),
                                      "--delay-ms", str(delay_ms)],
                                     stdin=subprocess.DEVNULL)
        for _ in range(200):
            if self.port_file.exists():
                break
            time.sleep(0.01)
        self.port = int(self.port_file.read_text())
        self.origin = "http://127.0.0.1:%d" % self.port
        self.url = self.origin + "/anthropic"

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


WRK_LUA = """wrk.method = "POST"
wrk.body = '{"model":"claude-sonnet-4-5-20250929","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-api-key"] = "%s"
wrk.headers["anthropic-version"] = "2023-06-01"
""" % KEY


def wrk(url, conns, secs, lua):
    out = subprocess.run(["wrk", "-t2", "-c%d" % conns, "-d%ds" % secs, "--latency", "-s", lua,
                          url + "/v1/messages"], capture_output=True, text=True).stdout

    def ms(v):
        n, u = re.match(r"([\d.]+)(us|ms|s)", v).groups()
        return float(n) * {"us": 0.001, "ms": 1, "s": 1000}[u]
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50": ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
            "p99": ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))}


def stub_check(work, fast):
    """Both stubs alone under wrk: 2,000 connections, 1 s answers, 6 s; and no delay, 64."""
    import stubctl
    lua = Path(work) / "post.lua"
    lua.write_text(WRK_LUA)
    secs, res = 10, {}
    ideal = 2000 * (secs - 1) / secs
    py = stubctl.Stub.start(str(Path(work) / "pystub"), quiet=True)
    try:
        py.set_key(KEY, "ok", delay_ms=1000)
        res["python 1 s, c2000"] = wrk(py.base_url("anthropic"), 2000, secs, str(lua))
        py.set_key(KEY, "ok")
        res["python 0 s, c64"] = wrk(py.base_url("anthropic"), 64, 4, str(lua))
    finally:
        py.stop()
    res["fast_stub 1 s, c2000"] = wrk(fast[1000].url, 2000, secs, str(lua))
    res["fast_stub 0 s, c64"] = wrk(fast[0].url, 64, 4, str(lua))
    print("Stub alone (wrk, POST /v1/messages; with 2,000 connections and 1 s answers the "
          "most a %d s run can count is %.0f req/s):" % (secs, ideal))
    for k, v in res.items():
        print("  %-22s %9.0f req/s   p50 %8.1f ms   p99 %8.1f ms" % (k, v["rps"], v["p50"],
                                                                     v["p99"]))
    py1 = res["python 1 s, c2000"]
    if py1["p99"] > 1050 or py1["rps"] < 0.97 * ideal:
        print("  -> the Python stub cannot keep 2,000 one-second calls on time (p99 %.0f ms): "
              "the runner scenarios use fast_stub" % py1["p99"])
    return res


def reset_queue(stack):
    stack.sql("SET FOREIGN_KEY_CHECKS = 0; TRUNCATE job_attempts; TRUNCATE notification_outbox; "
              "TRUNCATE events; TRUNCATE jobs; SET FOREIGN_KEY_CHECKS = 1; "
              "UPDATE provider_keys SET status = 'valid', cooldown_until = NULL, "
              "consecutive_failures = 0")


def enqueue(stack, ws_id, n, batch=5000):
    done = 0
    while done < n:
        k = min(batch, n - done)
        stack.sql("INSERT INTO jobs (id, workspace_id, type, input, max_attempts) "
                  "SELECT UUID(), ?, 'task', CONCAT('Benchmark job ', seq), 5 "
                  "FROM seq_%d_to_%d" % (done + 1, done + k), ws_id)
        done += k


def run_scenario(stack, db, ws_id, name, fast, perf_dir=None):
    sc = SCENARIOS[name]
    n, limit = sc["jobs"], sc["jobs"] / sc["in_flight"] * sc["delay_ms"] / 1000.0
    stack.stop_service("runner")
    reset_queue(stack)
    enqueue(stack, ws_id, n)
    os.environ["KEYRELAY_PROVIDER_ANTHROPIC_BASE_URL"] = fast[sc["delay_ms"]].url
    os.environ["KEYRELAY_RUNNER_MAX_IN_FLIGHT"] = str(sc["in_flight"])
    os.environ["KEYRELAY_RUNNER_WORKSPACE_CAP"] = str(sc["in_flight"])
    maria = pid_of(stack, "mariadb")
    cpu0 = {"mariadbd": proc_cpu(maria), "stub": proc_cpu(fast[sc["delay_ms"]].proc.pid)}
    before = db.status()
    q0 = db.queries
    busy0 = machine_busy()
    perf = None
    t0 = time.time()
    stack.start_service("runner")
    pid = pid_of(stack, "runner")
    if perf_dir is not None:
        perf = subprocess.Popen(["perf", "record", "-g", "-F", "499", "-p",
                                 "%d,%d" % (pid, maria), "-o",
                                 str(Path(perf_dir) / "perf.data")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = t0 + max(300.0, 30 * (limit or 10))
    ended, hwm, runner_cpu = 0, 0, 0.0
    # The poll looks for one job not ended yet (an index probe of jobs_stage: stage 1 due,
    # 2 running): counting the ended ones, or asking by status (no index), scanned up to
    # 20,000 rows each time, CPU the runner's MariaDB then did not have.
    while time.time() < deadline:
        hwm = max(hwm, proc_kb(pid, "VmHWM"))
        runner_cpu = proc_cpu(pid) or runner_cpu
        if db.one("SELECT EXISTS (SELECT 1 FROM jobs WHERE stage IN (1, 2))")[0] == "0":
            break
        time.sleep(0.05 if limit == 0 else 0.1)
    ended = int(db.one("SELECT COUNT(*) FROM jobs WHERE status IN "
                       "('succeeded', 'failed', 'cancelled')")[0])
    hwm = max(hwm, proc_kb(pid, "VmHWM"))
    runner_cpu = proc_cpu(pid) or runner_cpu
    if perf is not None:
        perf.send_signal(signal.SIGINT)
        perf.wait(timeout=120)
    after = db.status()
    busy = machine_busy() - busy0
    polls = db.queries - q0
    cpu = {"runner": runner_cpu,
           "mariadbd": proc_cpu(maria) - cpu0["mariadbd"],
           "stub": proc_cpu(fast[sc["delay_ms"]].proc.pid) - cpu0["stub"]}
    row = db.one("SELECT UNIX_TIMESTAMP(MAX(finished_at)), UNIX_TIMESTAMP(MIN(started_at)), "
                 "UNIX_TIMESTAMP(MAX(started_at)), SUM(status = 'succeeded'), "
                 "SUM(status = 'failed'), SUM(attempts), COUNT(*) FROM jobs")
    # Where a job's time went: claimed (the claim's update) -> its call started (the
    # attempt's start) -> the call's latency -> stored (the success update). Each claim
    # stamps its jobs with one NOW(3), so the distinct stamps count the claims.
    lat = db.one("SELECT COUNT(*), AVG(latency_ms), MAX(latency_ms), "
                 "AVG(TIMESTAMPDIFF(MICROSECOND, j.started_at, j.finished_at)) / 1000, "
                 "AVG(TIMESTAMPDIFF(MICROSECOND, j.started_at, a.started_at)) / 1000, "
                 "AVG(TIMESTAMPDIFF(MICROSECOND, a.started_at, j.finished_at)) / 1000 "
                 "- AVG(latency_ms), COUNT(DISTINCT j.started_at) "
                 "FROM job_attempts a JOIN jobs j ON j.id = a.job_id")
    fin, first_start, last_start = float(row[0]), float(row[1]), float(row[2])
    res = {
        "scenario": name, "jobs": n, "in_flight": sc["in_flight"],
        "delay_ms": sc["delay_ms"], "limit_s": limit,
        "succeeded": int(row[3] or 0), "failed": int(row[4] or 0),
        "attempts": int(row[5] or 0), "ended": ended,
        "wall_s": fin - t0, "claim_to_finish_s": fin - first_start,
        "last_claim_after_s": last_start - t0, "first_claim_after_s": first_start - t0,
        "peak_rss_mb": hwm / 1024.0,
        "attempt_latency_ms_avg": float(lat[1] or 0), "attempt_latency_ms_max": float(lat[2] or 0),
        "job_span_ms_avg": float(lat[3] or 0),
        "ready_ms_avg": float(lat[4] or 0), "store_wait_ms_avg": float(lat[5] or 0),
        "claims": int(lat[6] or 0),
        "cpu_s": cpu,
        "other_cpu_s": max(0.0, busy - sum(cpu.values())),
        "load_avg": os.getloadavg()[0],
        "per_job": {k: (after[k] - before[k]) / n for k in STATUS_VARS},
    }
    # The poller's own SELECTs (text protocol) are not the runner's.
    res["per_job"]["Com_select"] -= polls / n
    res["per_job"]["Questions"] -= polls / n
    res["jobs_per_s"] = n / res["wall_s"]
    if limit:
        res["ratio"] = res["wall_s"] / limit
    if res["succeeded"] != n:
        log("scenario %s: only %d of %d jobs succeeded (%d failed) before the deadline"
            % (name, res["succeeded"], n, res["failed"]))
    return res


def run_db_path(stack, ws_id, queue_db):
    """Scenario (d): the claim and store statements alone, with the runner stopped."""
    sc = SCENARIOS["d"]
    n = sc["jobs"]
    stack.stop_service("runner")
    reset_queue(stack)
    enqueue(stack, ws_id, n)
    maria = pid_of(stack, "mariadb")
    cpu0, busy0 = proc_cpu(maria), machine_busy()
    p = subprocess.run([queue_db, stack.config, ws_id, str(sc["claim"]), str(sc["batch"])],
                       capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise SystemExit("queue_db failed (exit %d): %s" % (p.returncode, p.stderr.strip()))
    f = p.stdout.split()
    jobs, wall, client = int(f[1]), float(f[3]), float(f[5])
    server = proc_cpu(maria) - cpu0
    busy = machine_busy() - busy0
    done = int(stack.sql("SELECT COUNT(*) FROM jobs WHERE status = 'succeeded'")[0][0])
    return {"scenario": "d", "jobs": n, "in_flight": 0, "delay_ms": 0, "limit_s": 0,
            "succeeded": done, "wall_s": wall, "jobs_per_s": jobs / wall,
            "peak_rss_mb": 0.0, "cpu_s": {"queue_db": client, "mariadbd": server},
            "other_cpu_s": max(0.0, busy - client - server)}


def describe_db_path(r, results):
    n = r["jobs"]
    same = [x for x in results if x["scenario"] == "c" and x.get("run") == r.get("run")]
    lines = ["(d) " + SCENARIOS["d"]["what"],
             "    wall %.2f s   %.0f jobs/s   succeeded %d/%d" % (r["wall_s"], r["jobs_per_s"],
                                                                r["succeeded"], n),
             "    CPU us per job: mariadbd %.0f, queue_db (client) %.0f"
             % (1e6 * r["cpu_s"]["mariadbd"] / n, 1e6 * r["cpu_s"]["queue_db"] / n),
             "    machine: other processes used %.0f%% of the %d cores during the run"
             % (100 * r["other_cpu_s"] / (r["wall_s"] * os.cpu_count()), os.cpu_count())]
    if same:
        c = same[0]
        lines.append("    reference, scenario (c) of this run (the whole runner): %.0f jobs/s, "
                     "mariadbd %.0f us per job" % (c["jobs_per_s"],
                                                   1e6 * c["cpu_s"]["mariadbd"] / c["jobs"]))
    else:
        lines.append("    reference: " + QUOTED["d"] + " (not run)")
    return "\n".join(lines)


def describe(r):
    name, pj, cpu, n = r["scenario"], r["per_job"], r["cpu_s"], r["jobs"]
    lines = ["(%s) %s" % (name, SCENARIOS[name]["what"])]
    if r["limit_s"]:
        aim = AIMS[name]
        lines.append("    wall %.2f s   limit %.1f s   ratio %.3f (aim <= %.2f)   "
                     "peak RSS %.1f MB (aim < %d)   succeeded %d/%d"
                     % (r["wall_s"], r["limit_s"], r["ratio"], aim, r["peak_rss_mb"],
                        RSS_AIM_MB, r["succeeded"], n))
    else:
        lines.append("    wall %.2f s   %.0f jobs/s   peak RSS %.1f MB   succeeded %d/%d"
                     % (r["wall_s"], r["jobs_per_s"], r["peak_rss_mb"], r["succeeded"], n))
    lines.append("    first claim +%.3f s, last claim +%.2f s after spawn; attempt latency avg "
                 "%.0f ms (max %.0f); claim->finish per job avg %.0f ms"
                 % (r["first_claim_after_s"], r["last_claim_after_s"],
                    r["attempt_latency_ms_avg"], r["attempt_latency_ms_max"],
                    r["job_span_ms_avg"]))
    lines.append("    a job on average: claimed -> call started %.1f ms, call %.1f ms, "
                 "answered -> stored %.1f ms; %d claims, %.0f jobs each"
                 % (r["ready_ms_avg"], r["attempt_latency_ms_avg"], r["store_wait_ms_avg"],
                    r["claims"], n / max(r["claims"], 1)))
    lines.append("    per job: %.1f prepared statements (%.1f SELECT, %.1f INSERT, %.1f UPDATE, "
                 "%.1f INSERT..SELECT), %.2f commits, %.2f redo log writes, %.2f fsyncs, "
                 "%.0f redo bytes, %.1f rows written, %.1f rows updated;\n"
                 "    row lock waits: %d, %d ms in all;\n"
                 "    CPU us per job: runner %.0f, mariadbd %.0f, stub %.0f"
                 % (pj["Com_stmt_execute"], pj["Com_select"], pj["Com_insert"],
                    pj["Com_update"], pj["Com_insert_select"], pj["Com_commit"],
                    pj["Innodb_log_writes"], pj["Innodb_data_fsyncs"],
                    pj["Innodb_os_log_written"], pj["Handler_write"], pj["Handler_update"],
                    pj["Innodb_row_lock_waits"] * n, pj["Innodb_row_lock_time"] * n,
                    1e6 * cpu["runner"] / n,
                    1e6 * cpu["mariadbd"] / n, 1e6 * cpu["stub"] / n))
    lines.append("    machine: other processes used %.0f%% of the %d cores during the run "
                 "(1-min load average %.1f at the end)"
                 % (100 * r["other_cpu_s"] / (r["wall_s"] * os.cpu_count()), os.cpu_count(),
                    r["load_avg"]))
    lines.append("    quoted in issue 4: " + QUOTED[name] + " (runner.sh measures both right "
                 "after each scenario: see its comparison at the end)")
    return "\n".join(lines)


def perf_reports(perf_dir):
    data = str(Path(perf_dir) / "perf.data")
    reports = {
        "by-process.txt": ["--sort", "comm,dso"],
        "runner-symbols.txt": ["--comm", "keyrelay-runner", "--sort", "dso,sym"],
        "mariadbd-symbols.txt": ["--comm", "mariadbd", "--sort", "sym"],
    }
    for name, args in reports.items():
        with open(Path(perf_dir) / name, "w") as f:
            subprocess.run(["perf", "report", "-i", data, "--stdio", "-g", "none",
                            "--no-children", "--percent-limit", "0.2", *args],
                           stdout=f, stderr=subprocess.DEVNULL)
    print("perf reports in %s: %s" % (perf_dir, ", ".join(reports)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--fast-stub", required=True)
    ap.add_argument("--queue-db", help="the built tests/bench/queue_db.c (scenario d)")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--first-run", type=int, default=1, help="the number of the first run")
    ap.add_argument("--scenarios", default="a,b,c,d")
    ap.add_argument("--stub-check", action="store_true")
    ap.add_argument("--profile", help="directory for perf reports of one more run")
    ap.add_argument("--profile-scenario", default="c")
    ap.add_argument("--json")
    ap.add_argument("--keep", action="store_true", help="leave the stack directory")
    args = ap.parse_args()
    names = [x for x in args.scenarios.split(",") if x]
    work = Path(tempfile.mkdtemp(prefix="kr-rb.", dir="/tmp"))
    fast = {d: FastStub(args.fast_stub, work, d) for d in (0, 1000)}
    stack = db = None
    results = []
    try:
        if args.stub_check:
            stub_check(work, fast)
        os.environ["KEYRELAY_PROVIDER_ANTHROPIC_BASE_URL"] = fast[0].url
        os.environ["KEYRELAY_BASE_URL_ALLOWLIST"] = ",".join(f.origin for f in fast.values())
        os.environ["KEYRELAY_BIN_DIR"] = str(Path(args.bin_dir).resolve())
        os.environ.pop("KEYRELAY_TEST_STACK", None)
        log("starting a stack in %s" % (work / "stack"))
        stack = krstack.Stack.start(work / "stack", config={"log.level": "warn"})
        for v in ("innodb_flush_log_at_trx_commit", "sync_binlog", "log_bin",
                  "innodb_adaptive_hash_index"):
            print("MariaDB %s = %s" % (v, stack.sql("SELECT @@%s" % v)[0][0]))
        admin = krclient.admin_client(stack)
        r = admin.post("/api/workspaces/%s/keys" % stack.workspace,
                       json={"provider": "anthropic", "keys": [KEY]})
        if r.status != 201:
            raise SystemExit("adding the key: %s" % r.describe())
        ws_id = stack.sql("SELECT id FROM workspaces WHERE slug = ?", stack.workspace)[0][0]
        for svc in ("nginx", "fcgi", "stub"):  # idle, but out of the picture
            stack.stop_service(svc)
        db = Db(stack)
        for run in range(args.first_run, args.first_run + args.runs):
            for name in names:
                log("run %d, scenario %s" % (run, name))
                if name == "d":
                    if not args.queue_db:
                        raise SystemExit("scenario d needs --queue-db")
                    r = run_db_path(stack, ws_id, args.queue_db)
                    r["run"] = run
                    results.append(r)
                    print("run %d " % run + describe_db_path(r, results), flush=True)
                    continue
                r = run_scenario(stack, db, ws_id, name, fast)
                r["run"] = run
                results.append(r)
                print("run %d " % run + describe(r), flush=True)
        if args.profile:
            Path(args.profile).mkdir(parents=True, exist_ok=True)
            log("profile run of scenario %s under perf" % args.profile_scenario)
            r = run_scenario(stack, db, ws_id, args.profile_scenario, fast,
                             perf_dir=args.profile)
            r["run"] = "profile"
            results.append(r)
            print("profile run " + describe(r), flush=True)
            perf_reports(args.profile)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
        print()
        print("Summary (%d cores; MariaDB with deploy/mariadb/keyrelay.cnf; fast_stub)"
              % os.cpu_count())
        for r in results:
            if r["limit_s"]:
                print("  run %-7s (%s) wall %6.2f s  limit %4.1f s  ratio %.3f  peak RSS %5.1f MB"
                      "  (others: %.0f%% CPU)"
                      % (r["run"], r["scenario"], r["wall_s"], r["limit_s"], r["ratio"],
                         r["peak_rss_mb"], 100 * r["other_cpu_s"] / r["wall_s"] / os.cpu_count()))
            elif r["scenario"] == "d":
                print("  run %-7s (%s) wall %6.2f s  %6.0f jobs/s  mariadbd %.0f us/job"
                      "  (others: %.0f%% CPU)"
                      % (r["run"], r["scenario"], r["wall_s"], r["jobs_per_s"],
                         1e6 * r["cpu_s"]["mariadbd"] / r["jobs"],
                         100 * r["other_cpu_s"] / r["wall_s"] / os.cpu_count()))
            else:
                print("  run %-7s (%s) wall %6.2f s  %6.0f jobs/s  peak RSS %5.1f MB"
                      "  (others: %.0f%% CPU)"
                      % (r["run"], r["scenario"], r["wall_s"], r["jobs_per_s"],
                         r["peak_rss_mb"], 100 * r["other_cpu_s"] / r["wall_s"] / os.cpu_count()))
    finally:
        if db is not None:
            db.close()
        if stack is not None:
            stack.down()
        for f in fast.values():
            f.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
