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
The same pass deletes expired sessions and login counters whose window closed (migration
012): two expired sessions and an old counter go, a live session and a fresh counter stay.

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
            (uid,), = s.sql("SELECT id FROM users LIMIT 1")
            gone = ["%064x" % (0xdead0 + i) for i in range(2)]
            for h in gone:
                s.sql("INSERT INTO sessions (id_hash, user_id, expires_at, ip) VALUES "
                      "(?, ?, NOW(3) - INTERVAL 1 DAY, '192.0.2.1')", h, uid)
            live = int(s.sql("SELECT COUNT(*) FROM sessions WHERE expires_at > NOW(3)")[0][0])
            s.sql("INSERT INTO login_failures (key_hash, failures, window_start) VALUES "
                  "(?, 3, NOW(3) - INTERVAL 2 DAY), (?, 1, NOW(3))", "%064x" % 0xbad1,
                  "%064x" % 0xbad2)
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
        with t("the same pass deleted the expired sessions and the old login counter; the "
               "live sessions and the fresh counter stay"):
            def rows():
                return (int(s.sql("SELECT COUNT(*) FROM sessions WHERE id_hash IN (?, ?)",
                                  *gone)[0][0]),
                        int(s.sql("SELECT COUNT(*) FROM sessions WHERE expires_at > NOW(3)"
                                  )[0][0]) >= live,
                        sorted(r[0] for r in s.sql(
                            "SELECT key_hash FROM login_failures WHERE key_hash IN (?, ?)",
                            "%064x" % 0xbad1, "%064x" % 0xbad2)))
            eq(wait_for("the expired rows to go", lambda: rows()[0] == 0 and rows(), 30),
               (0, True, ["%064x" % 0xbad2]), "expired sessions left, live ones kept, counters")
            true(re.search(r"deleted \d+ expired session", log.read_text(
                encoding="utf-8", errors="replace")[len(before):]), "no deletion in the log")
        with t("B's next event takes the id after its last pruned one"):
            settings_changes(b, 1)
            eq(seqs(s, b), [old_b[-1] + 1], "B's events")


if __name__ == "__main__":
    run("events_prune", body)
