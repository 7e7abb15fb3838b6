#!/usr/bin/env python3
"""Events are pruned once older than events.retention_hours (72 by default): by each runner
when it starts and every 10 minutes after, workspace by workspace along the event ids.
Real MariaDB, nginx, keyrelay-fcgi and keyrelay-runner on a PRIVATE stack (its runner is
stopped and started again).

Setup, the runner stopped: three `settings_changed` events in workspace A and two in B
(PUT providers); all of them are then dated 100 hours back, and A gets two more, new ones.
Workspace C gets 12,000 old events (in SQL) and then one new one: more than one pass
prunes (a pass looks at 10,000 ids of a workspace at most and stops after 10,000 events;
the runner goes on a second later while there is more).
When the runner starts, A keeps exactly its two new events, B has none left and C only its
new one; the runner's log counts every pruned event. Ids go on from where they were: B's
next event takes the id after its last pruned one, so a stream resuming from an old id is
told to resync rather than handed a reused id.

KEYRELAY_TEST_KEEP=1 keeps the stack's directory. Stand-alone: needs KEYRELAY_BIN_DIR.
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from krclient import eq, private_stack, run, true, wait_for  # noqa: E402
from test_runner import ENV, Ws  # noqa: E402

OLD_HOURS = 100
BACKLOG = 12000


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
            a, b, c = (Ws(s, admin, "prune-" + x) for x in "abc")
            settings_changes(a, 3)
            settings_changes(b, 2)
            old_a, old_b, old_c = seqs(s, a), seqs(s, b), seqs(s, c)
            (last_c,), = s.sql("SELECT event_seq FROM workspaces WHERE id = ?", c.id)
            s.sql("INSERT INTO events (workspace_id, seq, type, payload) SELECT ?, ? + seq, "
                  "'settings_changed', '{}' FROM seq_1_to_%d" % BACKLOG, c.id, int(last_c))
            s.sql("UPDATE workspaces SET event_seq = event_seq + %d WHERE id = ?" % BACKLOG,
                  c.id)
            s.sql("UPDATE events SET created_at = NOW(3) - INTERVAL %d HOUR "
                  "WHERE workspace_id IN (?, ?, ?)" % OLD_HOURS, a.id, b.id, c.id)
            settings_changes(a, 2)
            settings_changes(c, 1)
            new_a = seqs(s, a)[len(old_a):]
            new_c = seqs(s, c)[len(old_c) + BACKLOG:]
            eq((len(new_a), new_c), (2, [int(last_c) + BACKLOG + 1]), "A's and C's new events")
            log = s.p("logs", "runner.log")
            before = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""

        with t("the runner prunes from its start on: A keeps its two new events, B none, "
               "C its new one"):
            s.start_service("runner")
            wait_for("A and C with their new events alone, B with none",
                     lambda: (seqs(s, a), seqs(s, b), seqs(s, c)) == (new_a, [], new_c), 30)
        with t("the runner's log counts the pruned events"):
            text = log.read_text(encoding="utf-8", errors="replace")[len(before):]
            counts = [int(n) for n in re.findall(r"pruned (\d+) old event", text)]
            eq(sum(counts), len(old_a) + len(old_b) + len(old_c) + BACKLOG,
               "events pruned, by the log: %r" % counts)
            true(len(counts) >= 2, "one pass pruned all %d: %r" % (sum(counts), counts))
        with t("B's next event takes the id after its last pruned one"):
            settings_changes(b, 1)
            eq(seqs(s, b), [old_b[-1] + 1], "B's events")


if __name__ == "__main__":
    run("events_prune", body)
