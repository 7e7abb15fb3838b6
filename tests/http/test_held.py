#!/usr/bin/env python3
"""The runner's "which of my calls do I still hold" check (twice a second, to abort calls
of cancelled or rescued jobs) costs what the runner flies, not what it has run.
Real MariaDB, nginx, keyrelay-fcgi, keyrelay-runner and the stub provider, on a PRIVATE
stack (the check reads a global MariaDB counter, which other tests would move).

Setup: the runner has run 400 jobs (a stub answering at once), and another runner, made up
in SQL, holds 400 running jobs with long leases. Then one job flies against a stub
answering after 6 s. While it flies, MariaDB's Rows_read (rows read from tables, any
access path) grows by less than 400 over 2 s, which is at least 4 checks. The check used to
ask for every running job carrying the runner's id: MariaDB then reads every job the runner
ever ran (succeeded jobs keep runner_id), every job running under any runner, or the whole
table, whichever it guesses cheapest; here it read 3,204 rows in the 2 s, now 3. The job
still succeeds, once.

Then a job that flies is requeued in SQL as a rescue would (its lease expired while its
runner was cut off), and the same runner claims it again while the first call still flies:
the held check aborts the first call (old lease) and keeps the second, which answers.

Last, jobs claimed ahead of free slots: with every slot busy for three leases (4 s leases,
1 s heartbeats), as many jobs again wait ready. Their leases are extended too, so none is
requeued while its runner holds it (the heartbeat used to extend 1.5 x max_in_flight ids and
left the newest ready jobs to expire, be rescued and be called twice); and one of them,
cancelled while it waits, is dropped and never called.

KEYRELAY_TEST_KEEP=1 keeps the stack's directory. Stand-alone: needs KEYRELAY_BIN_DIR.
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from krclient import SetupError, eq, private_stack, run, true, wait_for  # noqa: E402
from test_runner import ENV, Ws, calls_with, token  # noqa: E402

SLOTS = 8
CONFIG = {"runner.max_in_flight": str(SLOTS), "runner.lease_seconds": "4",
          "runner.heartbeat_seconds": "1"}
RUN = 400
SLOW_MS = 6000
WINDOW_S = 2.0
AHEAD_MS = 12000    # three leases



def rows_read(s):
    return int(s.sql("SHOW GLOBAL STATUS LIKE 'Rows_read'")[0][1])


def body(t):
    with private_stack(t, "krhd-", "setup: private stack", env=ENV, config=CONFIG) as (s, admin):
        scenario(t, s, admin)


def scenario(t, s, admin):
    with t.setup("setup: %d jobs run by the runner" % RUN):
        fast = Ws(s, admin, "held-fast")
        fast.add_keys("anthropic", [("ok", {"text": "fast " + token()})])
        fast.providers("anthropic")
        s.sql("INSERT INTO jobs (id, workspace_id, type, input, max_attempts) "
              "SELECT UUID(), ?, 'task', CONCAT('held ', seq), 1 FROM seq_1_to_%d" % RUN,
              fast.id)

        def done():
            return int(s.sql("SELECT COUNT(*) FROM jobs WHERE workspace_id = ? AND status "
                             "IN ('succeeded', 'failed', 'cancelled')", fast.id)[0][0]) == RUN
        wait_for("the %d jobs to end" % RUN, done, 60)
    with t.setup("setup: %d jobs running under another runner" % RUN):
        other = Ws(s, admin, "held-other")
        s.sql("INSERT INTO jobs (id, workspace_id, type, input, max_attempts, status, "
              "lease_token, runner_id, lease_expires_at, started_at) "
              "SELECT UUID(), ?, 'task', CONCAT('other ', seq), 1, 'running', UUID(), "
              "'00000000-0000-4000-8000-000000000001', NOW(3) + INTERVAL 1 HOUR, NOW(3) "
              "FROM seq_1_to_%d" % RUN, other.id)
    text = "slow " + token()
    with t.setup("setup: one call in flight for %d ms" % SLOW_MS):
        slow = Ws(s, admin, "held-slow")
        slow.add_keys("anthropic", [("ok", {"delay_ms": SLOW_MS, "text": text})])
        slow.providers("anthropic")
        r = admin.post(slow.base + "/jobs", json={"type": "task", "input": "in flight"})
        if r.status not in (201, 202):
            raise SetupError("create job: %s" % r.describe())
        job = r.json["id"]
        wait_for("the provider call", lambda: any(
            q.get("method") == "POST" and "in flight" in str(q.get("body"))
            for q in s.stub.requests()), 10)
    with t("while one call flies, the held check reads fewer rows than the jobs running "
           "elsewhere"):
        before = rows_read(s)
        time.sleep(WINDOW_S)
        grown = rows_read(s) - before
        status = s.sql("SELECT status FROM jobs WHERE id = ?", job)[0][0]
        eq(status, "running", "the job's status at the end of the window")
        true(grown < RUN, "Rows_read grew by %d in %.1f s (less than %d expected)"
              % (grown, WINDOW_S, RUN))
    with t("the job in flight succeeds, with the stub's answer and one attempt"):
        def final():
            r = admin.get(slow.base + "/jobs/" + job)
            return r.json if r.json.get("status") in ("succeeded", "failed", "cancelled") \
                else None
        j = wait_for("the job to end", final, 20, 0.2)
        eq((j["status"], j["attempts"], j.get("result")), ("succeeded", 1, text),
           "status, attempts, result")
    with t.setup("setup: a flying job requeued as a rescue would, and claimed again by "
                 "the same runner while its first call still flies"):
        r = admin.post(slow.base + "/jobs", json={"type": "task", "input": "twice"})
        if r.status not in (201, 202):
            raise SetupError("create job: %s" % r.describe())
        twice = r.json["id"]

        def calls():
            return sum(1 for q in s.stub.requests()
                       if q.get("method") == "POST" and "twice" in str(q.get("body")))
        wait_for("the first call", lambda: calls() == 1, 10)
        s.sql("UPDATE jobs SET status = 'queued', lease_token = NULL, runner_id = NULL, "
              "lease_expires_at = NULL WHERE id = ?", twice)
        wait_for("the second call", lambda: calls() == 2, 10)
    with t("the held check aborts the call of the old lease only: the job succeeds from "
           "the second call, in about %d ms" % SLOW_MS):
        def ended():
            r = admin.get(slow.base + "/jobs/" + twice)
            return r.json if r.json.get("status") in ("succeeded", "failed", "cancelled") \
                else None
        j = wait_for("the job to end", ended, SLOW_MS / 1000 + 10, 0.2)
        eq((j["status"], j.get("result")), ("succeeded", text), "status, result")
        log = open(s.p("logs", "runner.log"), encoding="utf-8", errors="replace").read()
        eq(len([ln for ln in log.splitlines() if "job %s was cancelled or taken over" % twice
                in ln]), 1, "calls aborted")
    ahead_phase(t, s, admin)
    with t("no sanitizer report in the programs' logs"):
        eq(s.sanitizer_reports(), [], "sanitizer reports")


def ahead_phase(t, s, admin):
    with t.setup("setup: %d jobs, every slot busy for %d ms, as many ready behind them"
                 % (2 * SLOTS, AHEAD_MS)):
        w = Ws(s, admin, "held-ahead")
        ((_, sec),) = w.add_keys("anthropic", [("ok", {"delay_ms": AHEAD_MS})])
        w.providers("anthropic")
        inputs = {}
        for i in range(2 * SLOTS):
            text = "ahead %d %s" % (i, token())
            inputs[w.task(text)["id"]] = text
        wait_for("%d calls" % SLOTS, lambda: len(calls_with(s, sec)) == SLOTS, 15)
        called_by = time.monotonic()     # the first calls answer AHEAD_MS after they began

        def ready():
            called = str([c.get("body") for c in calls_with(s, sec)])
            return [j for j, text in inputs.items() if text not in called
                    and w.job(j)["status"] == "running"]
        waiting = wait_for("%d jobs claimed ahead" % SLOTS,
                           lambda: (lambda r: r if len(r) == SLOTS else None)(ready()), 10)
        cancelled = waiting[0]
        r = admin.post(w.base + "/jobs/%s/cancel" % cancelled, json={})
        if r.status != 200:
            raise SetupError("cancel: %s" % r.describe())
    with t("while the slots stay busy past two leases, no job is requeued: every job is "
           "still running under its runner but the cancelled one"):
        time.sleep(max(0.0, called_by + AHEAD_MS / 1000 - 3 - time.monotonic()))
        eq(len(calls_with(s, sec)), SLOTS, "calls before the first answer")
        eq(sorted(w.job(j)["status"] for j in inputs if j != cancelled),
           ["running"] * (2 * SLOTS - 1), "statuses")
        eq(s.sql("SELECT COUNT(*) FROM events WHERE workspace_id = ? AND type = "
                 "'job_retrying'", w.id)[0][0], "0", "job_retrying events")
    with t("every job but the cancelled one succeeds from one call; the cancelled one is "
           "never called"):
        for j in inputs:
            w.wait(j, timeout=AHEAD_MS / 1000 * 2 + 15)
        eq(w.job(cancelled)["status"], "cancelled", "the cancelled job's status")
        called = [str(c.get("body")) for c in calls_with(s, sec)]
        eq(sorted(sum(inputs[j] in c for c in called) for j in inputs),
           [0] + [1] * (2 * SLOTS - 1), "calls per job")
        eq(sorted(w.job(j)["status"] for j in inputs if j != cancelled),
           ["succeeded"] * (2 * SLOTS - 1), "statuses")


if __name__ == "__main__":
    run("held", body)
