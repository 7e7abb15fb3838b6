#!/usr/bin/env python3
"""The runner's per-workspace cap end to end: runner.workspace_cap keeps one workspace from
starving the others. Real MariaDB, nginx, keyrelay-fcgi, keyrelay-runner and the stub
provider, on a PRIVATE stack with runner.max_in_flight = 4 and runner.workspace_cap = 2.

Workspaces A and B each have one Anthropic key on the stub, which answers every call after
2 s. With the runner stopped (so that the order of arrival decides, not the speed of the
POSTs), 8 task jobs are queued in A, then 2 in B; then the runner starts. Checks:

1. A never has more than 2 provider calls in flight: the calls the stub received with A's
   key, each in flight from its arrival until the stub's answer 2 s later, never overlap
   more than 2 deep (exactly 2: the cap binds, it is not lower), nor all calls more than 4
   deep (max_in_flight). Both limits are on calls: an answer waiting a few milliseconds to
   be stored no longer holds its place, so jobs' [startedAt, finishedAt) would not do.
2. B is not starved behind A's backlog: both of B's jobs started before A's last job started
   (startedAt), and the poller saw B's jobs started while A still had queued jobs.
3. All 10 jobs succeeded, each answered once: status succeeded, attempts 1, one ok (200)
   attempt in attemptsLog with the workspace's key, the stub's text as result, and exactly
   one provider call carrying the job's input.

Only ordering facts are asserted, never durations. KEYRELAY_TEST_KEEP=1 keeps the stack's
directory (logs). Stand-alone: needs KEYRELAY_BIN_DIR (or a shared stack's stack.json in
KEYRELAY_TEST_STACK to find the programs); the private stack lives in a temporary directory.
"""
import datetime
import json
import os
import secrets
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from krclient import (CheckError, SetupError, create_workspace,  # noqa: E402
                      eq, expect, private_stack, run, true)

MAX_IN_FLIGHT = 4
WORKSPACE_CAP = 2
CONFIG = {
    "runner.max_in_flight": str(MAX_IN_FLIGHT),
    "runner.workspace_cap": str(WORKSPACE_CAP),
    "runner.attempt_timeout_seconds": "30",
}
# No system keys from the caller's environment, and the caps as configured here even when
# the caller's environment sets KEYRELAY_RUNNER_* (the environment wins over the file).
ENV = {v: "" for v in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY",
                       "ZAI_API_KEY", "MOONSHOT_API_KEY")}
ENV.update({"KEYRELAY_RUNNER_MAX_IN_FLIGHT": CONFIG["runner.max_in_flight"],
            "KEYRELAY_RUNNER_WORKSPACE_CAP": CONFIG["runner.workspace_cap"]})
N_A, N_B = 8, 2
DELAY_MS = 2000
FINAL = ("succeeded", "failed", "cancelled")
RUN_TIMEOUT = 45        # seconds for all 10 jobs to finish (they need about 8 s)


def rnd(n=32):
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(n))


def parse_time(s):
    if s is None:
        raise CheckError("time is null")
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)


def key_of_request(r):
    h = r.get("headers") or {}
    return h.get("x-api-key")


def max_overlap(intervals):
    """The most intervals [start, end) open at one time (an end and a start at the same
    instant do not overlap)."""
    points = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals],
                    key=lambda p: (p[0], p[1]))
    depth = best = 0
    for _, d in points:
        depth += d
        best = max(best, depth)
    return best


class Ws:
    """One workspace of the test, driven through the API."""

    def __init__(self, s, admin, label):
        self.s = s
        self.admin = admin
        self.label = label
        self.slug = create_workspace(admin, slug="cap-%s-%s" % (label.lower(),
                                                                rnd(6).lower()))["slug"]
        self.base = "/api/workspaces/%s" % self.slug
        self.secret = None
        self.key_id = None
        self.text = "answer for %s %s" % (label, rnd(8))
        self.jobs = {}          # job id -> unique token in its input, in creation order

    def add_slow_key(self):
        self.secret = "sk-ant-api03-" + rnd(40)
        self.s.stub.set_key(self.secret, "ok", text=self.text, delay_ms=DELAY_MS)
        r = self.admin.post(self.base + "/keys", json={"provider": "anthropic",
                                                       "keys": [self.secret]})
        if r.status != 201:
            raise SetupError("add the key to %s: HTTP %d" % (self.slug, r.status))
        self.key_id = r.json["keys"][0]["id"]
        r = self.admin.put(self.base + "/providers", json={
            "primary": "anthropic", "fallbackChain": [], "allowSystemKeys": False})
        if r.status != 200:
            raise SetupError("PUT providers of %s: %s" % (self.slug, r.describe()))

    def task(self, i):
        tok = "%s%d-%s" % (self.label, i, rnd(12))
        r = self.admin.post(self.base + "/jobs", json={"type": "task",
                                                       "input": "cap test job " + tok})
        if r.status != 202:
            raise SetupError("create task in %s: %s" % (self.slug, r.describe()))
        self.jobs[r.json["id"]] = tok
        return r.json

    def list(self):
        """The workspace's jobs (one query, so one consistent snapshot): {id: job}."""
        r = self.admin.get(self.base + "/jobs?limit=200")
        expect(200, r, "GET jobs of %s" % self.label)
        return {j["id"]: j for j in r.json["jobs"] if j["id"] in self.jobs}

    def job(self, jid):
        r = self.admin.get(self.base + "/jobs/%s" % jid)
        expect(200, r, "GET job %s" % jid)
        return r.json


def count(jobs, status):
    return sum(1 for j in jobs.values() if j["status"] == status)


def body(t):
    with private_stack(t, "krcap-", "setup: private stack (max_in_flight %d, workspace_cap %d)"
                       % (MAX_IN_FLIGHT, WORKSPACE_CAP), env=ENV, config=CONFIG) as (s, admin):
        scenario(t, s, admin)


def scenario(t, s, admin):
    with t.setup("setup: workspaces A and B, one Anthropic key each on the stub (answers "
                 "after %d ms)" % DELAY_MS):
        wa = Ws(s, admin, "A")
        wb = Ws(s, admin, "B")
        wa.add_slow_key()
        wb.add_slow_key()
    with t.setup("setup: runner stopped; %d task jobs queued in A, then %d in B"
                 % (N_A, N_B)):
        for p in s.stop_service("runner"):
            raise SetupError(p)
        for i in range(N_A):
            wa.task(i)
        for i in range(N_B):
            wb.task(i)
        a, b = wa.list(), wb.list()
        eq((len(a), count(a, "queued"), len(b), count(b, "queued")), (N_A, N_A, N_B, N_B),
           "jobs listed and queued in A, in B")
        s.start_service("runner")

    # Poll both lists until every job is final. B is read before A: jobs never go back to
    # queued here, so A's queued jobs in the later read were queued at B's read too.
    samples = 0
    max_a_running = 0
    max_b_running = 0
    b_started_while_a_queued = None     # (B statuses, A queued count) of the first such sample
    deadline = time.monotonic() + RUN_TIMEOUT
    with t("all %d jobs reach a final status (polling the jobs lists)" % (N_A + N_B)):
        while True:
            b = wb.list()
            a = wa.list()
            samples += 1
            max_a_running = max(max_a_running, count(a, "running"))
            max_b_running = max(max_b_running, count(b, "running"))
            b_started = sum(1 for j in b.values() if j["status"] in ("running", "succeeded"))
            if (b_started_while_a_queued is None and b_started == N_B
                    and count(a, "queued") > 0):
                b_started_while_a_queued = (sorted(j["status"] for j in b.values()),
                                            count(a, "queued"))
            if all(j["status"] in FINAL for j in list(a.values()) + list(b.values())):
                break
            if time.monotonic() >= deadline:
                raise CheckError("not all final after %d s: A %r, B %r" % (
                    RUN_TIMEOUT, sorted(j["status"] for j in a.values()),
                    sorted(j["status"] for j in b.values())))
            time.sleep(0.05)
        print("# %d polls; at most %d of A and %d of B seen running at once"
              % (samples, max_a_running, max_b_running), flush=True)

    details = {}
    with t.setup("setup: job details of all %d jobs" % (N_A + N_B)):
        for ws in (wa, wb):
            for jid in ws.jobs:
                details[jid] = ws.job(jid)

    # -- (1) the cap ------------------------------------------------------------------------
    calls = [r for r in s.stub.requests() if r.get("method") == "POST"]

    def in_flight(ws):
        """[arrival, arrival + delay) of each call the stub received with ws's key."""
        return [(c["time"], c["time"] + DELAY_MS / 1000.0) for c in calls
                if key_of_request(c) == ws.secret]

    with t("cap: A's provider calls were in flight exactly %d at a time at most"
           % WORKSPACE_CAP):
        eq(len(in_flight(wa)), N_A, "calls with A's key")
        eq(max_overlap(in_flight(wa)), WORKSPACE_CAP, "deepest overlap of A's calls")
    with t("cap: never more than %d calls in flight overall (max_in_flight)"
           % MAX_IN_FLIGHT):
        depth = max_overlap(in_flight(wa) + in_flight(wb))
        true(depth <= MAX_IN_FLIGHT, "%d calls overlapped (max_in_flight %d)"
             % (depth, MAX_IN_FLIGHT))

    # -- (2) no starvation -----------------------------------------------------------------
    with t("no starvation: both of B's jobs started before A's last job started"):
        a_starts = sorted(parse_time(details[j]["startedAt"]) for j in wa.jobs)
        b_last = max(parse_time(details[j]["startedAt"]) for j in wb.jobs)
        after = sum(1 for x in a_starts if x > b_last)
        true(after >= 1, "every job of A started before B's last one (B's last start %s, "
             "A's starts %s)" % (b_last.isoformat(), [x.isoformat() for x in a_starts]))
        print("# %d of A's %d jobs started after both of B's" % (after, N_A), flush=True)
    with t("no starvation: a poll saw both of B's jobs started while A still had queued "
           "jobs"):
        true(b_started_while_a_queued is not None,
             "no poll saw B's %d jobs running or done while A had queued jobs (%d polls)"
             % (N_B, samples))
        print("# first such poll: B %s, A %d queued" % b_started_while_a_queued, flush=True)

    # -- (3) every job answered once -------------------------------------------------------
    with t("all %d jobs succeeded, each with one ok attempt (200) on its workspace's key "
           "and the stub's answer" % (N_A + N_B)):
        problems = []
        for ws in (wa, wb):
            for jid in ws.jobs:
                j = details[jid]
                log = [(a["attempt"], a["provider"], a["keyId"], a["outcome"], a["httpStatus"])
                       for a in j.get("attemptsLog") or []]
                got = (j["status"], j["attempts"], j["result"] == ws.text, log)
                want = ("succeeded", 1, True, [(1, "anthropic", ws.key_id, "ok", 200)])
                if got != want:
                    problems.append("%s job %s: status %s, attempts %s, result as stubbed %s, "
                                    "attemptsLog %r (error %r)"
                                    % (ws.label, jid, got[0], got[1], got[2], got[3],
                                       j.get("error")))
        eq(problems, [], "jobs not answered as expected")
    with t("each job made exactly one provider call (the stub saw its input once)"):
        calls = [r for r in s.stub.requests() if r.get("method") == "POST"]
        problems = []
        for ws in (wa, wb):
            mine = [c for c in calls if key_of_request(c) == ws.secret]
            if len(mine) != len(ws.jobs):
                problems.append("%d calls with %s's key for %d jobs"
                                % (len(mine), ws.label, len(ws.jobs)))
            dumps = [json.dumps(c.get("body")) for c in mine]
            for jid, tok in ws.jobs.items():
                n = sum(1 for d in dumps if tok in d)
                if n != 1:
                    problems.append("%s job %s: %d calls carry its input" % (ws.label, jid, n))
        eq(problems, [], "provider calls")

    with t("no sanitizer report in the programs' logs"):
        eq(s.sanitizer_reports(), [], "sanitizer reports")


if __name__ == "__main__":
    run("caps", body)
