#!/usr/bin/env python3
"""Events are pruned once older than events.retention_hours (72 by default): by each runner
when it starts and every 10 minutes after, workspace by workspace along the event ids.
Real MariaDB, nginx, keyrelay-fcgi and keyrelay-runner on a PRIVATE stack (its runner is
stopped and started again).

Setup, the runner stopped: three `settings_changed` events in workspace A and two in B
(PUT providers); all of them are then dated 100 hours back, and A gets two more, new ones.
When the runner starts, A keeps exactly its two new events and B has none left; the
runner's log counts the five it pruned. Ids go on from where they were: B's next event
takes the id after its last pruned one, so a stream resuming from an old id is told to
resync rather than handed a reused id.

KEYRELAY_TEST_KEEP=1 keeps the stack's directory. Stand-alone: needs KEYRELAY_BIN_DIR.
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from krclient import eq, private_stack, run, wait_for  # noqa: E402
from test_runner import ENV, Ws  # noqa: E402

OLD_HOURS = 100


def seqs(s, ws):
    return [int(r[0]) for r in s.sql(
        "SELECT seq FROM events WHERE workspace_id = ? ORDER BY seq", ws.id)]


def settings_changes(ws, n):
    """n settings_changed events in ws (PUT providers, alternating the system-key flag)."""
    for i in range(n):
        ws.providers(allow_system=i % 2 == 0)


def body(t):
    with private_stack(t, "krep-", "setup: private stack", env=ENV) as (s, admin):
        with t.setup("setup: its runner stopped; old events in A and B, new ones in A"):
            eq(s.stop_service("runner"), [], "problems stopping the runner")
            a, b = Ws(s, admin, "prune-a"), Ws(s, admin, "prune-b")
            settings_changes(a, 3)
            settings_changes(b, 2)
            old_a, old_b = seqs(s, a), seqs(s, b)
            s.sql("UPDATE events SET created_at = NOW(3) - INTERVAL %d HOUR "
                  "WHERE workspace_id IN (?, ?)" % OLD_HOURS, a.id, b.id)
            settings_changes(a, 2)
            new_a = seqs(s, a)[len(old_a):]
            eq(len(new_a), 2, "A's new events")
            log = s.p("logs", "runner.log")
            before = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""

        with t("the runner prunes at its start: A keeps its two new events, B none"):
            s.start_service("runner")
            wait_for("A with its new events alone, B with none",
                     lambda: (seqs(s, a), seqs(s, b)) == (new_a, []), 20)
        with t("the runner's log counts the pruned events"):
            text = log.read_text(encoding="utf-8", errors="replace")[len(before):]
            counts = [int(n) for n in re.findall(r"pruned (\d+) old event", text)]
            eq(sum(counts), len(old_a) + len(old_b), "events pruned, by the log: %r" % counts)
        with t("B's next event takes the id after its last pruned one"):
            settings_changes(b, 1)
            eq(seqs(s, b), [old_b[-1] + 1], "B's events")


if __name__ == "__main__":
    run("events_prune", body)
