#!/usr/bin/env python3
"""Key and provider-settings changes commit with their events and audit entries (design.md
"Events and server-sent events": events are written in the same transaction as what they
describe; README "Events": every change appends an event in the same transaction).

Every change through the API (POST keys, with and without validate, PATCH, rotate, POST test,
reorder, DELETE, PUT providers) leaves exactly its key_status_changed / settings_changed
events (payload: the key object of the answer, masked) and its audit entries, with event ids
that follow on without a gap; a refused change (409 duplicate, 404 unknown key, 422) leaves
neither. A database error in the middle of a change (a trigger refusing the workspace's
event rows, or its audit rows) answers 500 and leaves nothing of it: no change without its
event or audit entry, no event or audit entry without its change. The runner's status
changes (401 -> invalid) and `keyrelay-admin import-env` are held to the same: a refused
event leaves the key's status alone, a refused audit entry stores no imported key.

Runs against the shared stack ($KEYRELAY_TEST_STACK), its stub provider and its runner; its
own workspaces. The triggers it adds name one workspace each and are dropped again.
"""
import contextlib
import json
import os
import secrets
import string
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import krstack  # noqa: E402
from krclient import (SetupError, admin_client, create_workspace, eq,  # noqa: E402
                      expect, expect_error, fake_key, leaked_keys, run, true, wait_for)

ALNUM = string.ascii_letters + string.digits
SECRETS = []
ENV_VARS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "ZAI_API_KEY",
            "MOONSHOT_API_KEY")


def rnd(n):
    return "".join(secrets.choice(ALNUM) for _ in range(n))


def gen(provider="anthropic"):
    return fake_key(provider, SECRETS)


def leaks(text):
    return leaked_keys(text, SECRETS)


class Trail:
    """A workspace's events and audit entries, read from the database: mark() remembers
    where they end, new() answers what came after."""

    def __init__(self, s, slug):
        self.s = s
        rows = s.sql("SELECT id FROM workspaces WHERE slug = ?", slug)
        if len(rows) != 1:
            raise SetupError("workspace %s not in the database" % slug)
        self.wid = rows[0][0]
        self.mark()

    def seq(self):
        return int(self.s.sql("SELECT event_seq FROM workspaces WHERE id = ?", self.wid)[0][0])

    def audit_max(self):
        return int(self.s.sql("SELECT COALESCE(MAX(id), 0) FROM audit_log "
                              "WHERE workspace_id = ?", self.wid)[0][0])

    def mark(self):
        self.at_seq, self.at_audit = self.seq(), self.audit_max()

    def events(self, after=None):
        rows = self.s.sql("SELECT seq, type, payload FROM events WHERE workspace_id = ? "
                          "AND seq > ? ORDER BY seq", self.wid,
                          self.at_seq if after is None else after)
        return [(int(q), typ, json.loads(p)) for q, typ, p in rows]

    def audit(self):
        # Not auth.*: a login is recorded in each of the user's workspaces, and the admin is
        # the shared stack's, whom other tests running at the same time log in as.
        rows = self.s.sql("SELECT action, target, detail, actor_type FROM audit_log "
                          "WHERE workspace_id = ? AND id > ? AND action NOT LIKE 'auth.%' "
                          "ORDER BY id", self.wid, self.at_audit)
        return [(a, tg, json.loads(d) if d else None, at) for a, tg, d, at in rows]

    def new(self, types, actions, ordered=True):
        """Checks that exactly events of types and audit entries of actions (in this order,
        unless not ordered) came after mark(), with ids following on from the mark and the
        sequence at the last of them; answers (events, audit entries) and marks again."""
        ev, au = self.events(), self.audit()
        order = list if ordered else sorted
        eq(order(e[1] for e in ev), order(types), "types of the new events")
        eq(order(a[0] for a in au), order(actions), "actions of the new audit entries")
        eq([e[0] for e in ev], list(range(self.at_seq + 1, self.at_seq + 1 + len(ev))),
           "ids of the new events (following on, no gap)")
        eq(self.seq(), self.at_seq + len(ev), "the workspace's event sequence")
        for e in ev:
            eq((e[2].get("type"), "key" in e[2] or "settings" in e[2] or "keys" in e[2]),
               (e[1], True), "payload of event %d: %r" % (e[0], e[2]))
        self.mark()
        return ev, au

    def nothing(self):
        """Nothing came after mark(): no event, no audit entry, the sequence unchanged."""
        self.new([], [])

    def gapless(self):
        ids = [int(r[0]) for r in self.s.sql(
            "SELECT seq FROM events WHERE workspace_id = ? ORDER BY seq", self.wid)]
        eq(ids, list(range(1, self.seq() + 1)), "every event id of the workspace")


@contextlib.contextmanager
def refused(s, table, wid, event_type=None):
    """While inside: inserts into table (events or audit_log) for workspace wid (and, for
    events, of event_type when given) fail with an error, as a full disk or a bug would."""
    name = "kr_test_refuse_%s" % rnd(8)
    cond, params = "NEW.workspace_id = ?", [wid]
    if event_type is not None:
        cond += " AND NEW.type = ?"
        params.append(event_type)
    s.sql("DELIMITER //\nCREATE TRIGGER %s BEFORE INSERT ON %s FOR EACH ROW BEGIN "
          "IF %s THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by "
          "test_key_events'; END IF; END//\nDELIMITER ;" % (name, table, cond), *params)
    try:
        yield
    finally:
        s.sql("DROP TRIGGER IF EXISTS %s" % name)



def body(t):
    s = krstack.Stack.from_env()
    stub = s.stub

    with t.setup("setup: a workspace and its trail"):
        adm = admin_client(s)
        ws = create_workspace(adm)["slug"]
        tr = Trail(s, ws)
    K = "/api/workspaces/%s/keys" % ws
    P = "/api/workspaces/%s/providers" % ws

    def keys():
        r = adm.get(K)
        expect(200, r, "GET keys")
        return {k["id"]: k for k in r.json["keys"]}

    def add(secrets_, provider="anthropic", status=201, **kw):
        b = {"provider": provider, "keys": secrets_}
        b.update(kw)
        r = adm.post(K, json=b)
        expect(status, r, "POST keys")
        return r

    # -- create ------------------------------------------------------------------------------
    a1, a2 = gen(), gen()
    with t("POST 2 keys: 201; one key_status_changed per key carrying the answered key, one "
           "key.created each"):
        r = add([a1, a2], names=["one", "two"])
        ev, au = tr.new(["key_status_changed"] * 2, ["key.created"] * 2)
        eq([e[2]["key"] for e in ev], r.json["keys"], "event payloads")
        eq([a[1] for a in au], [k["id"] for k in r.json["keys"]], "audit targets")
        eq([a[2] for a in au], [{"provider": "anthropic", "name": k["name"],
                                 "maskedKey": k["maskedKey"]} for k in r.json["keys"]],
           "audit details")
        ids = [k["id"] for k in r.json["keys"]]
    k1, k2 = ids
    n_keys = 2

    with t("POST [new, stored]: 409 keys[1]; no event, no audit entry, no key stored"):
        expect_error(add([gen(), a1], status=409), 409, "conflict", field="keys[1]")
        tr.nothing()
        eq(len(keys()), n_keys, "keys stored")

    with t("POST the same new key twice: 409 keys[1]; nothing written"):
        k = gen()
        expect_error(add([k, k], status=409), 409, "conflict", field="keys[1]")
        tr.nothing()
        eq(len(keys()), n_keys, "keys stored")

    with t("POST a malformed entry: 422; nothing written"):
        expect_error(add([gen(), "short"], status=422), 422, "validation_failed",
                     field="keys[1]")
        tr.nothing()

    with t("POST validate:true, valid key: 201 valid; one event with status valid, one "
           "key.created"):
        v = gen()
        stub.set_key(v, "ok")
        r = add([v], validate=True)
        ev, _ = tr.new(["key_status_changed"], ["key.created"])
        eq(ev[0][2]["key"], r.json["keys"][0], "event payload")
        eq(ev[0][2]["key"]["status"], "valid", "status in the event")
        kv = r.json["keys"][0]["id"]
        n_keys += 1

    # -- PATCH -------------------------------------------------------------------------------
    with t("PATCH name: 200; one event carrying the answer, one key.updated"):
        r = adm.patch(K + "/" + k1, json={"name": "renamed"})
        expect(200, r)
        ev, au = tr.new(["key_status_changed"], ["key.updated"])
        eq(ev[0][2]["key"], r.json, "event payload")
        eq((au[0][1], au[0][2]), (k1, {"name": "renamed"}), "audit target and detail")

    with t("PATCH isEnabled false: one event with status disabled, one key.updated"):
        r = adm.patch(K + "/" + k2, json={"isEnabled": False})
        expect(200, r)
        ev, _ = tr.new(["key_status_changed"], ["key.updated"])
        eq(ev[0][2]["key"]["status"], "disabled", "status in the event")
        expect(200, adm.patch(K + "/" + k2, json={"isEnabled": True}))
        tr.new(["key_status_changed"], ["key.updated"])

    with t("PATCH an unknown key: 404; nothing written"):
        expect_error(adm.patch(K + "/00000000-0000-4000-8000-000000000000",
                               json={"name": "x"}), 404, "not_found")
        tr.nothing()

    with t("PATCH a bad priority: 422; nothing written"):
        expect_error(adm.patch(K + "/" + k1, json={"priority": -1}), 422, "validation_failed",
                     field="priority")
        tr.nothing()

    with t("PATCH a blank name: 422; nothing written"):
        expect_error(adm.patch(K + "/" + k1, json={"name": "  \t "}), 422, "validation_failed",
                     field="name")
        tr.nothing()

    with t("PATCH with no field to change: 200 the key as it is; nothing written"):
        before = keys()[k1]
        r = adm.patch(K + "/" + k1, json={"colour": "red"})
        expect(200, r)
        eq(r.json, before, "the answer")
        tr.nothing()

    with t("PATCH name and expiresAt: the name trimmed; the audit holds expiresAt as given"):
        r = adm.patch(K + "/" + k1, json={"name": "  spaced  ",
                                          "expiresAt": "2099-01-31T00:00:00Z"})
        expect(200, r)
        eq(r.json["name"], "spaced", "name")
        _, au = tr.new(["key_status_changed"], ["key.updated"])
        eq(au[0][2], {"name": "spaced", "expiresAt": "2099-01-31T00:00:00Z"}, "audit detail")
        expect(200, adm.patch(K + "/" + k1, json={"expiresAt": None}))
        _, au = tr.new(["key_status_changed"], ["key.updated"])
        eq(au[0][2], {"expiresAt": None}, "audit detail of a cleared expiresAt")

    # -- rotate ------------------------------------------------------------------------------
    with t("rotate: 200; one event carrying the answer, one key.rotated"):
        r = adm.post(K + "/" + k1 + "/rotate", json={"key": gen()})
        expect(200, r)
        ev, au = tr.new(["key_status_changed"], ["key.rotated"])
        eq(ev[0][2]["key"], r.json, "event payload")
        eq(au[0][1], k1, "audit target")

    with t("rotate to a key stored for the provider: 409 field key; nothing written, the key "
           "unchanged"):
        before = keys()[k1]
        expect_error(adm.post(K + "/" + k1 + "/rotate", json={"key": a2}), 409, "conflict",
                     field="key")
        tr.nothing()
        eq(keys()[k1], before, "the key")

    with t("rotate an unknown key: 404; nothing written"):
        expect_error(adm.post(K + "/00000000-0000-4000-8000-000000000000/rotate",
                              json={"key": gen()}), 404, "not_found")
        tr.nothing()

    # -- test --------------------------------------------------------------------------------
    t1 = gen()
    with t("setup: a key to test"):
        r = add([t1])
        kt = r.json["keys"][0]["id"]
        tr.new(["key_status_changed"], ["key.created"])
        n_keys += 1

    with t("POST test, untested -> valid: one event with the key as GET shows it, one "
           "key.tested"):
        stub.set_key(t1, "ok")
        r = adm.post(K + "/" + kt + "/test")
        expect(200, r)
        eq((r.json.get("valid"), r.json.get("status")), (True, "valid"), "answer")
        ev, au = tr.new(["key_status_changed"], ["key.tested"])
        eq(ev[0][2]["key"], keys()[kt], "event payload")
        eq((au[0][2]["outcome"], au[0][2]["status"]), ("ok", "valid"), "audit detail")

    with t("POST test again, still valid: no event, one key.tested"):
        expect(200, adm.post(K + "/" + kt + "/test"))
        tr.new([], ["key.tested"])

    with t("POST test, valid -> invalid (401): one event with status invalid, one key.tested"):
        stub.set_key(t1, "auth")
        r = adm.post(K + "/" + kt + "/test")
        expect(200, r)
        eq((r.json.get("valid"), r.json.get("status")), (False, "invalid"), "answer")
        ev, au = tr.new(["key_status_changed"], ["key.tested"])
        eq(ev[0][2]["key"]["status"], "invalid", "status in the event")
        eq(au[0][2]["status"], "invalid", "status in the audit detail")

    with t("POST test of an unknown key: 404; nothing written"):
        expect_error(adm.post(K + "/00000000-0000-4000-8000-000000000000/test"), 404,
                     "not_found")
        tr.nothing()

    # -- reorder -----------------------------------------------------------------------------
    with t("reorder: 200; one event {keys:[{id, priority}]}, one key.reordered"):
        order = [{"id": k2, "priority": 0}, {"id": k1, "priority": 1}]
        expect(200, adm.put(K + "/reorder", json={"keys": order}))
        ev, au = tr.new(["key_status_changed"], ["key.reordered"])
        eq(ev[0][2]["keys"], order, "event payload")
        eq(au[0][2], {"keys": order}, "audit detail")

    with t("reorder with an unknown key second: 404 keys[1].id; nothing written, priorities "
           "unchanged"):
        before = {i: k["priority"] for i, k in keys().items()}
        expect_error(adm.put(K + "/reorder", json={"keys": [
            {"id": k1, "priority": 7}, {"id": "00000000-0000-4000-8000-000000000000",
                                        "priority": 8}]}), 404, "not_found", field="keys[1].id")
        tr.nothing()
        eq({i: k["priority"] for i, k in keys().items()}, before, "priorities")

    # -- settings ----------------------------------------------------------------------------
    with t("PUT providers: 200; one settings_changed carrying what the audit entry holds, "
           "one settings.changed"):
        expect(200, adm.put(P, json={"primary": "anthropic", "fallbackChain": ["openai"]}))
        ev, au = tr.new(["settings_changed"], ["settings.changed"])
        eq(ev[0][2]["settings"], au[0][2], "event payload and audit detail")
        eq((au[0][2]["primary"], au[0][2]["fallbackChain"]), ("anthropic", ["openai"]),
           "settings in the audit detail")

    with t("PUT providers with the primary in the chain: 422; nothing written"):
        expect_error(adm.put(P, json={"fallbackChain": ["anthropic"]}), 422,
                     "validation_failed", field="fallbackChain")
        tr.nothing()

    # -- delete ------------------------------------------------------------------------------
    with t("DELETE: 204; one event {key:{id, deleted:true}}, one key.deleted"):
        expect(204, adm.delete(K + "/" + kv))
        ev, au = tr.new(["key_status_changed"], ["key.deleted"])
        eq(ev[0][2]["key"], {"id": kv, "deleted": True}, "event payload")
        eq(au[0][1], kv, "audit target")
        n_keys -= 1

    with t("DELETE it again: 404; nothing written"):
        expect_error(adm.delete(K + "/" + kv), 404, "not_found")
        tr.nothing()

    # -- a database error in the middle of a change ------------------------------------------
    def all_or_nothing(table):
        with refused(s, table, tr.wid):
            with t("%s refused: POST keys 500, no key stored, nothing written" % table):
                expect_error(add([gen()], status=500), 500, "internal")
                tr.nothing()
                eq(len(keys()), n_keys, "keys stored")
            with t("%s refused: PATCH 500, the key unchanged, nothing written" % table):
                before = keys()[k1]
                expect_error(adm.patch(K + "/" + k1, json={"name": "lost"}), 500, "internal")
                tr.nothing()
                eq(keys()[k1], before, "the key")
            with t("%s refused: rotate 500, the key unchanged, nothing written" % table):
                before = keys()[k1]
                expect_error(adm.post(K + "/" + k1 + "/rotate", json={"key": gen()}), 500,
                             "internal")
                tr.nothing()
                eq(keys()[k1], before, "the key")
            with t("%s refused: POST test 500, the status unchanged, nothing written" % table):
                stub.set_key(t1, "ok")
                before = keys()[kt]
                expect_error(adm.post(K + "/" + kt + "/test"), 500, "internal")
                tr.nothing()
                eq(keys()[kt]["status"], before["status"], "status")
            with t("%s refused: reorder 500, priorities unchanged, nothing written" % table):
                before = {i: k["priority"] for i, k in keys().items()}
                expect_error(adm.put(K + "/reorder", json={"keys": [
                    {"id": k1, "priority": 5}, {"id": k2, "priority": 6}]}), 500, "internal")
                tr.nothing()
                eq({i: k["priority"] for i, k in keys().items()}, before, "priorities")
            with t("%s refused: DELETE 500, the key still there, nothing written" % table):
                expect_error(adm.delete(K + "/" + k2), 500, "internal")
                tr.nothing()
                true(k2 in keys(), "the key is gone")
            with t("%s refused: PUT providers 500, settings unchanged, nothing written" % table):
                before = adm.get(P).json
                expect_error(adm.put(P, json={"primary": "openai", "fallbackChain": []}), 500,
                             "internal")
                tr.nothing()
                eq(adm.get(P).json, before, "settings")

    all_or_nothing("events")
    all_or_nothing("audit_log")

    with t("after the refusals: PATCH works again, one event and one key.updated"):
        expect(200, adm.patch(K + "/" + k1, json={"name": "back"}))
        tr.new(["key_status_changed"], ["key.updated"])

    # -- concurrent changes ------------------------------------------------------------------
    with t.setup("setup: 4 more keys"):
        r = add([gen("openai") for _ in range(4)], provider="openai")
        tr.new(["key_status_changed"] * 4, ["key.created"] * 4)
        extra = [k["id"] for k in r.json["keys"]]

    with t("8 PATCHes and 4 POSTs at once: all answered, one event and one audit entry "
           "each, ids without a gap"):
        targets = (extra + [k1, k2]) * 2
        answers = [None] * 12
        clients = [adm.clone() for _ in range(12)]

        def go(i):
            if i < 8:
                answers[i] = clients[i].patch(K + "/" + targets[i], json={"name": "p%d" % i})
            else:
                answers[i] = clients[i].post(K, json={"provider": "openai",
                                                      "keys": [gen("openai")]})
        th = [threading.Thread(target=go, args=(i,)) for i in range(12)]
        for x in th:
            x.start()
        for x in th:
            x.join(120)
        eq([a.status if a is not None else None for a in answers], [200] * 8 + [201] * 4,
           "statuses")
        tr.new(["key_status_changed"] * 12, ["key.updated"] * 8 + ["key.created"] * 4,
               ordered=False)

    with t("every event id of the workspace, 1 to its sequence, without a gap"):
        tr.gapless()

    # -- the runner ----------------------------------------------------------------------------
    with t.setup("setup: workspace R, primary anthropic, one key the provider refuses (401)"):
        ws_r = create_workspace(adm)["slug"]
        R = "/api/workspaces/%s" % ws_r
        tr_r = Trail(s, ws_r)
        bad = gen()
        stub.set_key(bad, "auth")
        r = adm.post(R + "/keys", json={"provider": "anthropic", "keys": [bad]})
        expect(201, r, "add key")
        kb = r.json["keys"][0]["id"]
        expect(200, adm.put(R + "/providers", json={"primary": "anthropic"}), "PUT providers")
        tr_r.mark()

    def run_job():
        r = adm.post(R + "/jobs", json={"type": "task", "input": "hello", "maxAttempts": 1})
        expect(202, r, "POST jobs")
        jid = r.json["id"]
        return wait_for("job %s to end" % jid, lambda: (lambda j: j if j["status"] in (
            "succeeded", "failed", "cancelled") else None)(adm.get(R + "/jobs/" + jid).json), 60)

    def status_events():
        return [e for e in tr_r.events() if e[1] == "key_status_changed"]

    with refused(s, "events", tr_r.wid, "key_status_changed"):
        with t("runner, key_status_changed refused: the 401 fails the job, the key's status "
               "is left as it was (untested), no key_status_changed"):
            j = run_job()
            eq(j["status"], "failed", "job status")
            eq([a["outcome"] for a in j.get("attemptsLog") or []], ["auth"], "attempts")
            k = adm.get(R + "/keys/" + kb).json
            eq((k["status"], k["lastError"], k["consecutiveFailures"]), ("untested", None, 0),
               "the key")
            eq(status_events(), [], "key_status_changed events")

    with t("runner: the next 401 marks the key invalid with exactly one key_status_changed, "
           "which carries the key as the API shows it"):
        j = run_job()
        eq(j["status"], "failed", "job status")
        k = adm.get(R + "/keys/" + kb).json
        eq(k["status"], "invalid", "the key's status")
        ev = status_events()
        eq([(e[2]["key"]["id"], e[2]["key"]["status"]) for e in ev], [(kb, "invalid")],
           "key_status_changed events")
        eq(ev[0][2]["key"] if ev else None, k, "the event's key object against GET key")
    with t("workspace R: every event id without a gap"):
        tr_r.gapless()

    # -- import-env ----------------------------------------------------------------------------
    with t.setup("setup: workspace I"):
        ws_i = create_workspace(adm)["slug"]
        tr_i = Trail(s, ws_i)
    imp = gen()

    def import_env():
        env = s._env() if hasattr(s, "_env") else dict(os.environ)
        for v in ENV_VARS:
            env.pop(v, None)
        env["ANTHROPIC_API_KEY"] = imp
        return subprocess.run([str(s.bin_dir / "keyrelay-admin"), "--config", s.config,
                               "import-env", "--workspace", ws_i], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, env=env, timeout=120)

    with refused(s, "audit_log", tr_i.wid):
        with t("import-env, audit refused: exit 1 'database error', no key stored"):
            p = import_env()
            eq(p.returncode, 1, "exit status (stderr %r)" % p.stderr)
            true("database error" in p.stderr, "no 'database error' in %r" % p.stderr)
            eq(adm.get("/api/workspaces/%s/keys" % ws_i).json["keys"], [], "keys")
            tr_i.nothing()

    with t("import-env: exit 0, the key stored with one key.created by the system"):
        p = import_env()
        eq(p.returncode, 0, "exit status (stderr %r)" % p.stderr)
        lst = adm.get("/api/workspaces/%s/keys" % ws_i).json["keys"]
        eq(len(lst), 1, "keys")
        au = tr_i.audit()
        eq([(a[0], a[1], a[3]) for a in au], [("key.created", lst[0]["id"], "system")],
           "audit entries")

    # -- secrets -----------------------------------------------------------------------------
    with t("no provider key in the events or audit entries of these workspaces"):
        text = json.dumps(s.sql("SELECT payload FROM events WHERE workspace_id IN (?, ?, ?)",
                                tr.wid, tr_r.wid, tr_i.wid))
        text += json.dumps(s.sql("SELECT detail FROM audit_log WHERE workspace_id IN "
                                 "(?, ?, ?)", tr.wid, tr_r.wid, tr_i.wid))
        eq(leaks(text), [], "secrets")

    with t("no provider key in the stack's logs"):
        eq(leaks(s.log_text()), [], "secrets in the logs")


if __name__ == "__main__":
    run("key_events", body)
