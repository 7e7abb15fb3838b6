#!/usr/bin/env python3
"""How the runner stores answers in batches (kr_queue_succeed_batch), driven directly by
tests/http/batch_probe.c on a PRIVATE stack whose runner is stopped, so that nothing but the
probe claims the jobs.

1. Four jobs (two chat messages, two tasks, one of them at its third attempt) stored in one
   batch: each succeeds once, with its own answer and its attempt numbered after the calls
   made before, one `out` message per chat job (its message_created event showing it as
   stored), one job_succeeded event each; MariaDB creates no temporary table on disk
   meanwhile.
2. Four jobs of which one lost its lease between the claim and the store (another lease
   token, as a rescue and a claim elsewhere leave it): the other three are stored; the lost
   one is left exactly as the other holder has it (running, no attempt, no message, no
   event).
3. Seventy jobs (more than one statement per kind), the lease of the one with the highest
   id (in the last statement) gone: 69 stored, that one untouched.
4. Four jobs, one whose attempts counter grew in the database after the claim (a recorded
   failure whose commit landed twice): all stored, that one's attempt numbered from the
   database's counter. Then four jobs, one with a failed attempt recorded twice with the
   same claim, as a rerun of its transaction after the COMMIT landed unseen would: counted
   once.
5. A claim while another session holds the oldest due job locked (as a claim in flight
   elsewhere would), with more due jobs than one claim takes: the claim's plain read offers
   the held job, the lock by primary key skips it, and the locking scan it falls back on
   takes a full batch of the others; the held job is taken once the session ends.

Stand-alone: needs KEYRELAY_BIN_DIR and KEYRELAY_BATCH_PROBE (the built kr-batch-probe).
KEYRELAY_TEST_KEEP=1 keeps the stack's directory.
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from krclient import SetupError, eq, private_stack, run  # noqa: E402
from test_runner import ENV, Ws, token  # noqa: E402

BATCH = 128     # KR_QUEUE_BATCH_MAX: the most jobs one claim of kr-batch-probe takes


def probe(s, ws_id, steal="", bump="", fail=""):
    """Run kr-batch-probe; {job id: 'done' | 'lost'} (and "fail": the two results of the
    failure recorded twice) and the batch's return code."""
    exe = os.environ.get("KEYRELAY_BATCH_PROBE")
    if not exe:
        raise SetupError("KEYRELAY_BATCH_PROBE is not set (the built kr-batch-probe)")
    p = subprocess.run([exe, s.config, ws_id, steal or "-", bump or "-"] + ([fail] if fail
                       else []), capture_output=True, text=True, timeout=60)
    out, rc = {}, None
    for line in p.stdout.splitlines():
        k, v = line.split()
        if k == "rc":
            rc = int(v)
        else:
            out[k] = v
    if rc is None:
        raise SetupError("kr-batch-probe: exit %d: %s" % (p.returncode, p.stderr.strip()))
    return out, rc


def job_state(s, jid):
    (status, attempts, result, lease), = s.sql(
        "SELECT status, attempts, result, lease_token FROM jobs WHERE id = ?", jid)
    tries = [int(r[0]) for r in s.sql(
        "SELECT attempt FROM job_attempts WHERE job_id = ? ORDER BY attempt", jid)]
    outs = int(s.sql("SELECT COUNT(*) FROM messages WHERE job_id = ? AND direction = 'out'",
                     jid)[0][0])
    done = int(s.sql("SELECT COUNT(*) FROM events WHERE type = 'job_succeeded' AND "
                     "payload LIKE ?", "%%\"jobId\":\"%s\"%%" % jid)[0][0])
    return {"status": status, "attempts": int(attempts), "result": result, "lease": lease,
            "attempt_rows": tries, "out_messages": outs, "job_succeeded": done}


def tmp_disk_tables(s):
    (_, n), = s.sql("SHOW GLOBAL STATUS LIKE 'Created_tmp_disk_tables'")
    return int(n)


def four_jobs(ws):
    """Two chat messages and two tasks, queued; their ids."""
    ids = []
    for i in range(2):
        ids.append(ws.say(ws.chat("batch %d" % i), "hello " + token())["id"])
        ids.append(ws.task("task " + token())["id"])
    return ids


def body(t):
    with private_stack(t, "krba-", "setup: private stack", env=ENV) as (s, admin):
        with t.setup("setup: its runner stopped"):
            eq(s.stop_service("runner"), [], "problems stopping the runner")
        scenarios(t, s, admin)


def scenarios(t, s, admin):
    with t.setup("setup: four queued jobs, one of them after two calls already"):
        ws = Ws(s, admin, "batch")
        ids = four_jobs(ws)
        s.sql("UPDATE jobs SET attempts = 2 WHERE id = ?", ids[3])
    with t("a batch of four: every job stored, with no temporary table on disk"):
        disk = tmp_disk_tables(s)
        out, rc = probe(s, ws.id)
        eq(rc, 0, "kr_queue_succeed_batch's result")
        eq(out, {j: "done" for j in ids}, "each job's result")
        # The update once went through a multi-table join, which MariaDB carries through
        # temporary tables created on disk for each statement.
        eq(tmp_disk_tables(s) - disk, 0, "temporary tables created on disk meanwhile")
    with t("a batch of four: succeeded once each, attempt numbered after the earlier calls, "
           "one out message per chat job, one job_succeeded event"):
        got = {j: job_state(s, j) for j in ids}
        want = {}
        for i, j in enumerate(ids):
            n = 3 if i == 3 else 1
            want[j] = {"status": "succeeded", "attempts": n, "result": "probe answer " + j,
                       "lease": None, "attempt_rows": [n],
                       "out_messages": 1 if i % 2 == 0 else 0, "job_succeeded": 1}
        eq(got, want, "the jobs")
    with t("a batch of four: each message_created event carries its answer message as "
           "stored (GET messages), createdAt included"):
        for j in ids[0::2]:
            (_, _, p), = ws.events(j, "message_created")
            stored = [m for m in ws.messages(p["message"]["chatId"]) if m["jobId"] == j]
            eq([p["message"]], stored, "job %s: the event's message" % j)

    with t.setup("setup: four more queued jobs"):
        ids = four_jobs(ws)
        stolen = ids[2]
    with t("a batch of four, one lease gone before the store: three stored, one lost"):
        out, rc = probe(s, ws.id, stolen)
        eq(rc, 0, "kr_queue_succeed_batch's result")
        eq(out, {j: "lost" if j == stolen else "done" for j in ids}, "each job's result")
    with t("the lost job is left as its new holder has it; the others are stored"):
        got = {j: job_state(s, j) for j in ids}
        lease = got[stolen]["lease"]
        want = {}
        for i, j in enumerate(ids):
            if j == stolen:
                want[j] = {"status": "running", "attempts": 0, "result": None,
                           "lease": lease, "attempt_rows": [], "out_messages": 0,
                           "job_succeeded": 0}
            else:
                want[j] = {"status": "succeeded", "attempts": 1,
                           "result": "probe answer " + j, "lease": None, "attempt_rows": [1],
                           "out_messages": 1 if i % 2 == 0 else 0, "job_succeeded": 1}
        eq(got, want, "the jobs")
        eq(lease is not None, True, "the lost job still has a lease")

    with t.setup("setup: seventy queued tasks"):
        ids = [ws.task("task %d %s" % (i, token()))["id"] for i in range(70)]
        stolen = max(ids)
    with t("a batch of seventy, the lease of the last by id gone: 69 stored, one lost"):
        out, rc = probe(s, ws.id, stolen)
        eq(rc, 0, "kr_queue_succeed_batch's result")
        eq(out, {j: "lost" if j == stolen else "done" for j in ids}, "each job's result")
        rows = {r[0]: (r[1], int(r[2])) for r in s.sql(
            "SELECT j.id, j.status, COUNT(a.id) FROM jobs j LEFT JOIN job_attempts a "
            "ON a.job_id = j.id WHERE j.workspace_id = ? AND j.id IN (%s) GROUP BY j.id"
            % ",".join("?" * len(ids)), ws.id, *ids)}
        eq(rows, {j: ("running", 0) if j == stolen else ("succeeded", 1) for j in ids},
           "status and attempt rows")

    with t.setup("setup: four more queued jobs"):
        ids = four_jobs(ws)
        bumped = ids[1]
    with t("a batch of four, one counter grown meanwhile: all stored, that attempt numbered "
           "from the database"):
        out, rc = probe(s, ws.id, bump=bumped)
        eq(rc, 0, "kr_queue_succeed_batch's result")
        eq(out, {j: "done" for j in ids}, "each job's result")
        got = {j: (job_state(s, j)["attempts"], job_state(s, j)["attempt_rows"]) for j in ids}
        eq(got, {j: (2, [2]) if j == bumped else (1, [1]) for j in ids},
           "attempts counter and attempt rows")
        (payload,), = s.sql("SELECT payload FROM events WHERE type = 'job_succeeded' AND "
                            "payload LIKE ?", "%%\"jobId\":\"%s\"%%" % bumped)
        eq(json.loads(payload)["job"]["attempts"], 2, "attempts in its job_succeeded event")

    with t.setup("setup: four more queued jobs"):
        ids = four_jobs(ws)
        failed = ids[2]
    with t("a failed attempt recorded twice with one claim (a rerun after its COMMIT landed "
           "unseen) counts once: attempts 2 after the answer, rows 1 and 2"):
        out, rc = probe(s, ws.id, fail=failed)
        eq(rc, 0, "kr_queue_succeed_batch's result")
        eq(out.pop("fail", None), "done/done", "the two recordings of the failure")
        eq(out, {j: "done" for j in ids}, "each job's result")
        got = {j: (job_state(s, j)["attempts"], job_state(s, j)["attempt_rows"]) for j in ids}
        eq(got, {j: (2, [1, 2]) if j == failed else (1, [1]) for j in ids},
           "attempts counter and attempt rows")

    with t.setup("setup: %d queued tasks, the oldest held locked by another session"
                 % (BATCH + 5)):
        ids = [ws.task("task %d %s" % (i, token()))["id"] for i in range(BATCH + 5)]
        (held,), = s.sql("SELECT id FROM jobs WHERE workspace_id = ? AND status = 'queued' "
                         "ORDER BY priority DESC, run_at, id LIMIT 1", ws.id)
    lock = s.session()
    try:
        with t.setup("setup: the other session locks it"):
            lock.run("START TRANSACTION")
            eq(lock.run("SELECT id FROM jobs WHERE id = ? FOR UPDATE", held), [held],
               "the row the other session locked")
        with t("a claim meanwhile takes a full batch, not the held job"):
            out, rc = probe(s, ws.id)
            eq(rc, 0, "kr_queue_succeed_batch's result")
            eq(len(out), BATCH, "jobs claimed and stored")
            eq(held in out, False, "the held job among them")
            eq(set(out.values()), {"done"}, "their results")
            eq(s.sql("SELECT status FROM jobs WHERE id = ?", held), [("queued",)],
               "the held job's status")
    finally:
        lock.close()    # rolls back: the row is free when it returns
    with t("once the other session ends, the next claim takes the held job and the rest"):
        left = {r[0] for r in s.sql("SELECT id FROM jobs WHERE workspace_id = ? AND "
                                    "status = 'queued'", ws.id)}
        eq(len(left), 5, "jobs still queued")
        eq(held in left, True, "the held job among them")
        out, rc = probe(s, ws.id)
        eq(rc, 0, "kr_queue_succeed_batch's result")
        eq(out, {j: "done" for j in left}, "each job's result")


if __name__ == "__main__":
    run("batch", body)
