#!/usr/bin/env python3
"""Notification targets (Telegram): CRUD with the bot token sealed and never returned or
logged (only maskedToken), validation, roles (admin only for changes), workspace isolation,
the test endpoint against a stub of the Bot API (tests/stub/telegram_stub.py) with errors
scrubbed of the token; and the runner's outbox: a queued answer is delivered to the chat,
a failing send is retried after its back-off, a refused one (400) or one for a disabled
target is given up, flood control (429) only puts one off, a group that became a supergroup
is followed to its new chat id (test and delivery), each outcome recorded on the row and
the target. End to end: a chat message's answer reaches a Telegram target once, and a
target that keeps failing changes nothing of the web chat.

Starts a private stack (krstack.Stack.start) whose programs get the stub's URL through
KEYRELAY_TELEGRAM_BASE_URL and its origin allowlisted (it is plain http on loopback);
needs KEYRELAY_BIN_DIR like krstack.py itself.
"""
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "stub"))

import krstack  # noqa: E402
from krclient import (check_pages, add_member, admin_client, create_user,  # noqa: E402
                      create_workspace, eq, expect, expect_error, expect_time, run, true,
                      user_client, wait_for)
from telegram_stub import TelegramStub  # noqa: E402

KRSTACK = os.path.join(HERE, "..", "lib", "krstack.py")
TARGET_KEYS = ("id", "type", "chatId", "maskedToken", "isEnabled", "lastError",
               "lastDeliveredAt")
DELIVERY_WAIT = 20      # the runner looks every second; a send takes milliseconds here
RETRY_WAIT = 40         # first retry after 10 s
LONG_TEXT = "\U0001F600" * 2500 + "tail"    # 5004 UTF-16 units, over Telegram's 4096


def token(tail=""):
    import secrets
    return "%d:AA%s%s" % (secrets.randbelow(10 ** 9) + 10 ** 9, secrets.token_urlsafe(24)
                          .replace("-", "x"), tail)



def body(t):
    tmp = tempfile.mkdtemp(prefix="kr-notify-")
    stub = s = None
    try:
        with t.setup("setup: the Telegram stub and a private stack pointed at it"):
            stub = TelegramStub.start(os.path.join(tmp, "telegram"))
            s = krstack.Stack.start(os.path.join(tmp, "stack"), env={
                "KEYRELAY_TELEGRAM_BASE_URL": stub.url,
                "KEYRELAY_BASE_URL_ALLOWLIST": stub.url})
        checks(t, s, stub)
    finally:
        finish(t, tmp, s, stub)



def checks(t, s, stub):
    secrets_seen = []

    with t.setup("setup: workspaces A and B, a member and a viewer of A"):
        admin = admin_client(s)
        ws_a = create_workspace(admin)["slug"]
        ws_b = create_workspace(admin)["slug"]
        _, m_email, m_pw = create_user(admin)
        _, v_email, v_pw = create_user(admin)
        add_member(admin, ws_a, m_email, "member")
        add_member(admin, ws_a, v_email, "viewer")
        member = user_client(s, m_email, m_pw)
        viewer = user_client(s, v_email, v_pw)
        ws_ids = dict(s.sql("SELECT slug, id FROM workspaces WHERE slug IN (?, ?)", ws_a, ws_b))
    na = "/api/workspaces/%s/notifications" % ws_a
    nb = "/api/workspaces/%s/notifications" % ws_b

    def add(chat, tok=None, client=None, **extra):
        tok = tok or token()
        secrets_seen.append(tok)
        doc = {"type": "telegram", "botToken": tok, "chatId": chat}
        doc.update(extra)
        return (client or admin).post(na, json=doc), tok

    def count():
        return int(s.sql("SELECT COUNT(*) FROM notification_targets WHERE workspace_id = ?",
                         ws_ids[ws_a])[0][0])

    # -- create and read ---------------------------------------------------------------------
    with t("POST notifications: 201 target with maskedToken, never the token"):
        r, tok = add("-1001234567890")
        expect(201, r)
        tg = r.json
        for k in TARGET_KEYS:
            true(k in tg, "target lacks %r: %s" % (k, r.describe()))
        eq(tg["type"], "telegram", "type")
        eq(tg["chatId"], "-1001234567890", "chatId")
        eq(tg["isEnabled"], True, "isEnabled")
        eq(tg["lastError"], None, "lastError")
        eq(tg["lastDeliveredAt"], None, "lastDeliveredAt")
        true(tok not in r.text and tok.split(":")[1] not in r.text, "the token is in the answer")
        true("botToken" not in tg and "secret" not in tg, "a token field: %r" % tg)
        true(isinstance(tg["maskedToken"], str) and tok.endswith(tg["maskedToken"][-4:])
             and "\u2026" in tg["maskedToken"], "maskedToken %r" % tg["maskedToken"])
    tid, tok_ok = tg["id"], tok

    with t("the token is stored sealed: the row holds neither it nor its secret part"):
        hexed = s.sql("SELECT HEX(secret) FROM notification_targets WHERE id = ?", tid)[0][0]
        true(tok_ok.encode().hex().upper() not in hexed, "plaintext token in the row")
        true(tok_ok.split(":")[1].encode().hex().upper() not in hexed, "secret part in the row")

    with t("a numeric chatId is taken and answered as a string"):
        r, _ = add(-100777)
        expect(201, r)
        eq(r.json["chatId"], "-100777", "chatId")

    with t("GET notifications lists the targets, newest first, without any token"):
        r = admin.get(na)
        expect(200, r)
        ids = [x["id"] for x in r.json["targets"]]
        true(tid in ids and ids.index(tid) == len(ids) - 1, "list: %s" % ids)
        for x in secrets_seen:
            true(x not in r.text and x.split(":")[1] not in r.text, "a token in the list")

    with t("a viewer may list targets"):
        expect(200, viewer.get(na))

    # -- validation ---------------------------------------------------------------------------
    n = count()
    bad = [
        ("botToken without a colon: 422", {"botToken": "justsomething123456"}, "botToken"),
        ("botToken with a slash: 422", {"botToken": "123:abc/../x"}, "botToken"),
        ("botToken with a space: 422", {"botToken": "123:abc def"}, "botToken"),
        ("botToken missing: 422", {"botToken": None}, "botToken"),
        ("chatId missing: 422", {"chatId": None}, "chatId"),
        ("chatId with a space: 422", {"chatId": "my chat"}, "chatId"),
        ("chatId over 64 characters: 422", {"chatId": "1" * 65}, "chatId"),
        ("chatId empty: 422", {"chatId": ""}, "chatId"),
        ("type slack: 422", {"type": "slack"}, "type"),
    ]
    for what, fields, field in bad:
        with t(what):
            doc = {"type": "telegram", "botToken": token(), "chatId": "12345"}
            doc.update(fields)
            for k in [k for k, v in doc.items() if v is None]:
                del doc[k]
            expect_error(admin.post(na, json=doc), 422, "validation_failed", field=field)
    with t("the refused requests stored nothing"):
        eq(count(), n, "targets")

    # -- roles and isolation ------------------------------------------------------------------
    with t("a member may not add, change, test or delete targets (403)"):
        expect_error(add("12345", client=member)[0], 403, "forbidden", what="POST")
        expect_error(member.patch("%s/%s" % (na, tid), json={"isEnabled": False}), 403,
                     "forbidden", what="PATCH")
        expect_error(member.post("%s/%s/test" % (na, tid)), 403, "forbidden", what="test")
        expect_error(member.delete("%s/%s" % (na, tid)), 403, "forbidden", what="DELETE")
        eq(count(), n, "targets")

    with t("a viewer may not test a target (403)"):
        expect_error(viewer.post("%s/%s/test" % (na, tid)), 403, "forbidden")

    with t("A's target through B's path: 404 for PATCH, test and DELETE; B lists none"):
        expect_error(admin.patch("%s/%s" % (nb, tid), json={"isEnabled": False}), 404,
                     "not_found")
        expect_error(admin.post("%s/%s/test" % (nb, tid)), 404, "not_found")
        expect_error(admin.delete("%s/%s" % (nb, tid)), 404, "not_found")
        eq(admin.get(nb).json["targets"], [], "B's targets")

    # -- PATCH --------------------------------------------------------------------------------
    with t("PATCH isEnabled false, then chatId: 200 with the change"):
        r = admin.patch("%s/%s" % (na, tid), json={"isEnabled": False})
        expect(200, r)
        eq(r.json["isEnabled"], False, "isEnabled")
        r = admin.patch("%s/%s" % (na, tid), json={"chatId": "@keyrelay_news", "isEnabled": True})
        expect(200, r)
        eq((r.json["chatId"], r.json["isEnabled"]), ("@keyrelay_news", True), "chatId, isEnabled")
        eq(r.json["maskedToken"], tg["maskedToken"], "maskedToken")

    with t("PATCH with a bad chatId: 422, unchanged"):
        expect_error(admin.patch("%s/%s" % (na, tid), json={"chatId": "a b"}), 422,
                     "validation_failed", field="chatId")
        eq([x["chatId"] for x in admin.get(na).json["targets"] if x["id"] == tid],
           ["@keyrelay_news"], "chatId")

    # -- test endpoint ------------------------------------------------------------------------
    with t("POST …/test: {\"ok\": true}, and the stub got the test message with the token"):
        stub.clear()
        r = admin.post("%s/%s/test" % (na, tid))
        expect(200, r)
        eq(r.json, {"ok": True}, "answer")
        msgs = stub.messages()
        eq(len(msgs), 1, "messages at the stub")
        eq((msgs[0]["token"], msgs[0]["chat_id"], msgs[0]["text"]),
           (tok_ok, "@keyrelay_news", "keyrelay test message"), "message")
        true((msgs[0]["content_type"] or "").startswith("application/json"),
             "content type %r" % msgs[0]["content_type"])

    with t("test of a chat Telegram does not know: {\"ok\": false, \"error\"} naming why"):
        r, _ = add("fail400-chat")
        r = admin.post("%s/%s/test" % (na, r.json["id"]))
        expect(200, r)
        eq(r.json.get("ok"), False, "ok")
        true("chat not found" in (r.json.get("error") or ""), "error %r" % r.json.get("error"))

    with t("test of a group that became a supergroup: the target follows Telegram's "
           "migrate_to_chat_id and the test goes there: ok true"):
        r, _ = add("migrate7001")
        moved = r.json["id"]
        stub.clear()
        r = admin.post("%s/%s/test" % (na, moved))
        expect(200, r)
        eq(r.json, {"ok": True}, "answer")
        eq([(m["chat_id"], m["status"]) for m in stub.messages()],
           [("migrate7001", 400), ("-1007001", 200)], "sends at the stub")
        x = [x for x in admin.get(na).json["targets"] if x["id"] == moved][0]
        eq(x["chatId"], "-1007001", "the target's chatId")
        r = admin.get("/api/workspaces/%s/audit?limit=200" % ws_a)
        expect(200, r, "GET audit")
        eq([((e.get("actor") or {}).get("type"), e.get("detail"))
            for e in r.json["entries"]
            if e.get("action") == "notification.updated" and e.get("target") == moved],
           [("system", {"chatId": "-1007001", "previousChatId": "migrate7001"})],
           "the move in the audit trail")

    with t("test with a revoked bot token: ok false, Unauthorized"):
        r, _ = add("12345", tok=token().split(":")[0] + ":bad" + "x" * 30)
        r = admin.post("%s/%s/test" % (na, r.json["id"]))
        eq(r.json.get("ok"), False, "ok")
        true("Unauthorized" in (r.json.get("error") or ""), "error %r" % r.json.get("error"))

    with t("an error that repeats the token comes back scrubbed"):
        r, tok = add("echo-chat")
        r = admin.post("%s/%s/test" % (na, r.json["id"]))
        expect(200, r)
        err = r.json.get("error") or ""
        eq(r.json.get("ok"), False, "ok")
        true(tok not in err and tok.split(":")[1] not in err, "token in the error %r" % err)
        true("[redacted]" in err, "error %r" % err)

    with t("test of an unknown target: 404"):
        expect_error(admin.post("%s/%s/test" % (na, "0190a0a0-0000-7000-8000-000000000000")),
                     404, "not_found")

    outbox_checks(t, s, stub, admin, na, ws_ids[ws_a], add)
    job_checks(t, s, stub, admin, ws_b, secrets_seen)

    # -- delete -------------------------------------------------------------------------------
    with t("DELETE: 204, then 404; the target is gone from the list"):
        r = admin.delete("%s/%s" % (na, tid))
        expect(204, r)
        eq(r.raw, b"", "body")
        expect_error(admin.delete("%s/%s" % (na, tid)), 404, "not_found")
        true(tid not in [x["id"] for x in admin.get(na).json["targets"]], "still listed")

    with t("GET notifications pages newest first: ?limit, ?before=nextCursor, 422 for bad "
           "ones"):
        new_ids = []
        for i in range(3):
            r, _ = add("-10055500%d" % i)
            expect(201, r)
            new_ids.append(r.json["id"])
        tok = token()
        secrets_seen.append(tok)
        rb = admin.post(nb, json={"type": "telegram", "botToken": tok, "chatId": "-1009"})
        expect(201, rb, "target in B")
        check_pages(viewer, na, "targets", "id", new_ids, foreign_id=rb.json["id"])

    with t("no bot token in the stack logs"):
        logs = s.log_text()
        true(len(logs) > 0, "log_text() is empty: cannot check")
        leaked = [x[:6] + "..." for x in secrets_seen if x in logs or x.split(":")[1] in logs]
        eq(leaked, [], "tokens in the logs")


def outbox_checks(t, s, stub, admin, na, ws_id, add):
    """The runner's kr_notify_deliver_due sends what kr_notify_enqueue queued."""
    job = s.sql("SELECT UUID()")[0][0]
    s.sql("INSERT INTO jobs (id, workspace_id, type, input, status, result) VALUES "
          "(?, ?, 'task', 'q', 'succeeded', 'the answer')", job, ws_id)

    def queue(target_id, text):
        s.sql("INSERT INTO notification_outbox (target_id, workspace_id, job_id, text) "
              "VALUES (?, ?, ?, ?)", target_id, ws_id, job, text)

    def row(target_id):
        return s.sql("SELECT delivered_at, attempts, last_error, YEAR(next_try_at) "
                     "FROM notification_outbox WHERE target_id = ? AND job_id = ?",
                     target_id, job)[0]

    def target(target_id):
        return [x for x in admin.get(na).json["targets"] if x["id"] == target_id][0]

    with t.setup("runner setup: targets for delivery, retry, refusal and a disabled one"):
        ok_t = add("555001")[0].json["id"]
        flaky_t = add("flaky1-chat")[0].json["id"]
        refused_t = add("fail400-out")[0].json["id"]
        off_t = add("555002", isEnabled=False)[0].json["id"]
        long_t = add("555003")[0].json["id"]
        rate_t = add("rate-chat")[0].json["id"]
        moved_t = add("migrate7002")[0].json["id"]
        stub.clear()
        for tid, text in ((ok_t, "answer one"), (flaky_t, "answer two"),
                          (refused_t, "answer three"), (off_t, "answer four"),
                          (long_t, LONG_TEXT), (rate_t, "answer five"),
                          (moved_t, "answer six")):
            queue(tid, text)
        # at its last ordinary attempt: a 429 must not use it up
        s.sql("UPDATE notification_outbox SET attempts = 9 WHERE target_id = ?", rate_t)

    with t("runner: a queued answer reaches the Telegram chat (delivered_at set, 1 attempt)"):
        wait_for("delivery (is kr_notify_deliver_due wired into the runner?)",
                 lambda: row(ok_t)[0], DELIVERY_WAIT, 0.25)
        eq(row(ok_t)[1], "1", "attempts")
        got = [(m["chat_id"], m["text"]) for m in stub.messages() if m["status"] == 200]
        true(("555001", "answer one") in got, "stub got %r" % got)

    with t("runner: the target shows lastDeliveredAt and no lastError"):
        x = target(ok_t)
        expect_time(x["lastDeliveredAt"], "lastDeliveredAt")
        eq(x["lastError"], None, "lastError")

    with t("runner: a failed send (500) is recorded on the row and the target, then retried "
           "and delivered"):
        wait_for("the first failure", lambda: row(flaky_t)[2], DELIVERY_WAIT, 0.25)
        true("500" in row(flaky_t)[2], "last_error %r" % row(flaky_t)[2])
        true("500" in (target(flaky_t)["lastError"] or ""), "target lastError %r"
             % target(flaky_t)["lastError"])
        wait_for("the retry", lambda: row(flaky_t)[0], RETRY_WAIT, 0.25)
        eq(row(flaky_t)[1], "2", "attempts")
        eq(target(flaky_t)["lastError"], None, "target lastError after delivery")

    with t("runner: a refused send (400) is given up after one attempt, with its error"):
        wait_for("the refusal", lambda: row(refused_t)[2], DELIVERY_WAIT, 0.25)
        delivered, attempts, err, year = row(refused_t)
        eq((delivered, attempts, year), (None, "1", "9999"), "delivered_at, attempts, parked")
        true("chat not found" in err, "last_error %r" % err)
        true("chat not found" in (target(refused_t)["lastError"] or ""), "target lastError")

    with t("runner: flood control (429) at the 10th attempt is put off, not given up"):
        wait_for("the 429", lambda: row(rate_t)[2], DELIVERY_WAIT, 0.25)
        delivered, attempts, err, year = row(rate_t)
        eq((delivered, attempts), (None, "10"), "delivered_at, attempts")
        true(year != "9999", "given up (next_try_at parked)")
        true("429" in err, "last_error %r" % err)

    with t("runner: a group that became a supergroup (400 with migrate_to_chat_id): the "
           "target follows the new chat id and the answer goes there at once"):
        wait_for("the answer in the new chat", lambda: row(moved_t)[0], DELIVERY_WAIT, 0.25)
        eq(row(moved_t)[1], "2", "attempts")
        eq([(m["chat_id"], m["status"]) for m in stub.messages() if m["text"] == "answer six"],
           [("migrate7002", 400), ("-1007002", 200)], "sends at the stub")
        x = target(moved_t)
        eq((x["chatId"], x["lastError"]), ("-1007002", None), "the target's chatId, lastError")

    with t("runner: nothing goes to a disabled target"):
        wait_for("the disabled target's row", lambda: row(off_t)[2], DELIVERY_WAIT, 0.25)
        eq(row(off_t)[0], None, "delivered_at")
        true(all(m["chat_id"] != "555002" for m in stub.messages()), "sent to a disabled target")

    with t("runner: an answer longer than Telegram takes is cut to 4096 UTF-16 units, "
           "ending in an ellipsis"):
        wait_for("the long answer", lambda: row(long_t)[0], DELIVERY_WAIT, 0.25)
        got = [m["text"] for m in stub.messages() if m["chat_id"] == "555003"]
        eq(len(got), 1, "messages to the chat")
        units = len(got[0].encode("utf-16-le")) // 2
        true(got[0].endswith("\u2026") and LONG_TEXT.startswith(got[0][:-1]),
             "not a cut of the answer: %r..." % got[0][:40])
        true(4090 <= units <= 4096, "%d UTF-16 units" % units)

    with t("runner: each answer went out once, and the job was left as it was"):
        sent = [m["text"] for m in stub.messages() if m["status"] == 200]
        eq(len(sent), 4, "messages delivered")
        eq(sorted(x for x in sent if x.startswith("answer")),
           ["answer one", "answer six", "answer two"], "delivered answers")
        eq(s.sql("SELECT status, result FROM jobs WHERE id = ?", job), [("succeeded",
                                                                        "the answer")], "job")


def job_checks(t, s, stub, admin, ws, secrets_seen):
    """From a chat message to Telegram: the job's answer is queued in the transaction that
    stores it and sent to each enabled target once; a target that keeps failing changes
    nothing of the web chat."""
    base = "/api/workspaces/%s" % ws
    answer = "the answer for telegram " + token().split(":")[1][:8]
    with t.setup("setup: workspace B with a provider key, a working and a failing target"):
        key = "sk-ant-api03-" + token().split(":")[1] + "AA"
        s.stub.set_key(key, "ok", text=answer)
        expect(201, admin.post(base + "/keys", json={"provider": "anthropic", "keys": [key]}))
        expect(200, admin.put(base + "/providers", json={"primary": "anthropic",
                                                         "fallbackChain": []}))
        for chat in ("777001", "fail500-e2e"):
            tok = token()
            secrets_seen.append(tok)
            expect(201, admin.post(base + "/notifications", json={
                "type": "telegram", "botToken": tok, "chatId": chat}))
        r = admin.post(base + "/chats", json={"title": "to telegram"})
        expect(201, r)
        chat = r.json["id"]
        r = admin.post(base + "/chats/%s/messages" % chat, json={"content": "hello"})
        expect(202, r)
        job = r.json["job"]["id"]

    with t("a chat answer reaches the working Telegram target once; the failing one is "
           "retried on its own; the web chat has the answer once"):
        def done():
            j = admin.get(base + "/jobs/" + job).json
            return j if j["status"] in ("succeeded", "failed") else None
        j = wait_for("the job", done, 30, 0.2)
        eq((j["status"], j.get("result")), ("succeeded", answer), "the job")
        wait_for("the Telegram message", lambda: [
            m for m in stub.messages() if m["chat_id"] == "777001"], DELIVERY_WAIT, 0.25)
        wait_for("the failing target's first try", lambda: [
            m for m in stub.messages() if m["chat_id"] == "fail500-e2e"], DELIVERY_WAIT, 0.25)
        eq([(m["text"], m["status"]) for m in stub.messages() if m["chat_id"] == "777001"],
           [(answer, 200)], "messages to the working target")
        outs = [m for m in admin.get(base + "/chats/%s/messages" % chat).json["messages"]
                if m["direction"] == "out"]
        eq([(m["content"], m["jobId"]) for m in outs], [(answer, job)], "web answers")
        eq(admin.get(base + "/jobs/" + job).json["status"], "succeeded", "the job later")


def finish(t, tmp, s, stub):
    try:
        if s is not None:
            problems = s.down()
            t.check("private stack stops cleanly (no sanitizer report, nothing killed)",
                    not problems, " || ".join(str(x)[:1500] for x in problems or []))
        else:
            subprocess.run([sys.executable, KRSTACK, "down", os.path.join(tmp, "stack")],
                           check=False, timeout=120)
    except Exception as exc:   # noqa: BLE001
        t.not_ok("stack down", repr(exc))
    if stub is not None:
        stub.stop()
    if t.failed == 0:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        shutil.rmtree(os.path.join(tmp, "stack", "mariadb"), ignore_errors=True)
        print("# logs of the private stack left in %s" % tmp, flush=True)


if __name__ == "__main__":
    run("notifications", body)
