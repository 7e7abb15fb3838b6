#!/usr/bin/env python3
"""Answers outlive a database outage: the runner keeps the answers it could not store while
MariaDB was away and stores them once it is back, without calling the provider again.
Real MariaDB, nginx, keyrelay-fcgi, keyrelay-runner and the stub provider, on a PRIVATE stack
(60 s leases, so no lease expires during the outage and nothing is rescued).

5 task jobs run against a stub answering after 2.5 s; once all are running, MariaDB stops
for about 4 s (the answers arrive meanwhile) and starts again. Checks: every job succeeds
with one attempt and the stub's text, the stub saw exactly 5 calls, and the runner never
logged that an answer could not be stored.

KEYRELAY_TEST_KEEP=1 keeps the stack's directory. Stand-alone: needs KEYRELAY_BIN_DIR.
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from krclient import SetupError, eq, private_stack, run, wait_for  # noqa: E402
from test_runner import ENV, Ws, token  # noqa: E402

CONFIG = {"runner.lease_seconds": "60", "runner.heartbeat_seconds": "10",
          "runner.max_in_flight": "8"}
N = 5
DELAY_MS = 2500
DOWN_S = 4.0



def body(t):
    with private_stack(t, "krst-", "setup: private stack (60 s leases)", env=ENV,
                       config=CONFIG) as (s, admin):
        scenario(t, s, admin)


def scenario(t, s, admin):
    text = "stored after the outage " + token()
    with t.setup("setup: %d task jobs running, the stub answering after %d ms"
                 % (N, DELAY_MS)):
        ws = Ws(s, admin, "store")
        ws.add_keys("anthropic", [("ok", {"delay_ms": DELAY_MS, "text": text})])
        ws.providers("anthropic")
        ids = []
        for i in range(N):
            r = admin.post(ws.base + "/jobs", json={"type": "task", "input": "outage %d" % i})
            if r.status != 202 and r.status != 201:
                raise SetupError("create job: %s" % r.describe())
            ids.append(r.json["id"])

        def statuses():
            return [admin.get(ws.base + "/jobs/" + j).json for j in ids]
        wait_for("the jobs to run", lambda: all(j["status"] == "running" for j in statuses()),
                 20)
    with t.setup("setup: MariaDB away for %.0f s while the answers arrive" % DOWN_S):
        for p in s.stop_mariadb() or []:
            raise SetupError(p)
        time.sleep(DOWN_S)
        s.start_mariadb()
    with t("every job succeeds once the database is back, with one attempt and the answer"):
        final = wait_for("the jobs to end", lambda: (lambda js: js if all(
            j["status"] in ("succeeded", "failed", "cancelled") for j in js) else None)(
            statuses()), 40, 0.2)
        eq([(j["status"], j["attempts"], j.get("result") == text) for j in final],
           [("succeeded", 1, True)] * N, "status, attempts, result as stubbed")
    with t("the provider was called once per job (the kept answers were stored, not rerun)"):
        calls = [r for r in s.stub.requests() if r.get("method") == "POST"]
        eq(len(calls), N, "provider calls")
    with t("the runner never gave up on an answer"):
        log = open(s.p("logs", "runner.log"), encoding="utf-8", errors="replace").read()
        eq([line for line in log.splitlines() if "could not store" in line], [],
           "runner log lines")
    with t("no sanitizer report in the programs' logs"):
        eq(s.sanitizer_reports(), [], "sanitizer reports")


if __name__ == "__main__":
    run("store", body)
