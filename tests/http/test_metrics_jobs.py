#!/usr/bin/env python3
"""/metrics' keyrelay_jobs (jobs by status) counts every status exactly. Real MariaDB, nginx,
keyrelay-fcgi on a PRIVATE stack whose runner is stopped, so that the jobs stay as made.

The counts come from the jobs_stage index (migration 005): by stage, with the due jobs
(stage 1) split into queued and retrying, so each status is checked with its own count:
2 queued and 1 retrying (not due before tomorrow), 3 running, 4 succeeded, 1 failed and
5 cancelled, made in SQL in one workspace.

KEYRELAY_TEST_KEEP=1 keeps the stack's directory. Stand-alone: needs KEYRELAY_BIN_DIR.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from krclient import Client, eq, expect, parse_prometheus, private_stack, run  # noqa: E402
from test_runner import ENV, Ws  # noqa: E402

MADE = {"queued": 2, "retrying": 1, "running": 3, "succeeded": 4, "failed": 1, "cancelled": 5}


def body(t):
    with private_stack(t, "krmj-", "setup: private stack", env=ENV) as (s, admin):
        with t.setup("setup: its runner stopped; jobs in every status"):
            eq(s.stop_service("runner"), [], "problems stopping the runner")
            ws = Ws(s, admin, "metrics")
            for status, n in MADE.items():
                s.sql("INSERT INTO jobs (id, workspace_id, type, status, input, run_at, "
                      "lease_token, lease_expires_at) SELECT UUID(), ?, 'task', ?, 'x', "
                      "NOW(3) + INTERVAL 1 DAY, IF(? = 'running', UUID(), NULL), "
                      "IF(? = 'running', NOW(3) + INTERVAL 1 HOUR, NULL) FROM seq_1_to_%d" % n,
                      ws.id, status, status, status)

        with t("keyrelay_jobs counts each status"):
            r = Client(s.base_url).get("/metrics")
            expect(200, r, "GET /metrics")
            samples, _, problems = parse_prometheus(r.text)
            eq(problems, [], "unparsable lines")
            got = {labels.get("status"): int(v) for name, labels, v in samples
                   if name == "keyrelay_jobs"}
            eq(got, MADE, "keyrelay_jobs by status")


if __name__ == "__main__":
    run("metrics_jobs", body)
