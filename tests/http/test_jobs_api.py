#!/usr/bin/env python3
"""Chats, messages and jobs through the API: create a task (with idempotencyKey), bad input
gives 422 naming the field and stores nothing, list filters and pagination, job detail,
cancel and retry, chats and posted messages (which make a chat job), another workspace's
ids answer like missing ones, viewers cannot write.

Runs against the shared stack ($KEYRELAY_TEST_STACK); creates its own workspaces. A runner is
running and takes queued jobs soon: jobs that must stay queued are created with runAt some
minutes ahead.
"""
import datetime
import os
import sys
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import krstack  # noqa: E402
from krclient import (CheckError, Client, admin_client, create_workspace, eq,  # noqa: E402
                      expect, expect_error, expect_time, run, true)

JOB_KEYS = ("id", "type", "status", "input", "chatId", "systemPrompt", "scheduleId",
            "schedule", "priority", "attempts", "maxAttempts", "runAt", "startedAt",
            "finishedAt", "deliveredAt", "provider", "model", "keyId", "usedFallback",
            "result", "error", "usage", "createdAt")
ATTEMPT_KEYS = ("attempt", "provider", "keyId", "model", "startedAt", "finishedAt", "outcome",
                "error", "httpStatus")
MESSAGE_KEYS = ("id", "chatId", "direction", "sender", "content", "jobId", "createdAt")
STATUSES = ("queued", "running", "retrying", "succeeded", "failed", "cancelled")
INPUT_MAX = 256 * 1024


def rfc3339(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (dt.microsecond // 1000)


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def parse_time(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)


def later(minutes=10):
    """A runAt far enough ahead that the runner leaves the job queued during the test."""
    return rfc3339(utcnow() + datetime.timedelta(minutes=minutes))


def check_job(j, what="job"):
    true(isinstance(j, dict), "%s is not an object: %r" % (what, j))
    for k in JOB_KEYS:
        true(k in j, "%s lacks %r: %r" % (what, k, j))
    true(j["status"] in STATUSES, "%s status %r" % (what, j["status"]))
    expect_time(j["createdAt"], what + " createdAt")
    expect_time(j["runAt"], what + " runAt")
    u = j["usage"]
    true(isinstance(u, dict) and set(("inputTokens", "outputTokens", "costUsd")) <= set(u),
         "%s usage %r" % (what, u))
    true(isinstance(u["costUsd"], (int, float)) and not isinstance(u["costUsd"], bool),
         "%s usage.costUsd is not a number: %r" % (what, u["costUsd"]))
    true(isinstance(j["usedFallback"], bool), "%s usedFallback %r" % (what, j["usedFallback"]))
    for k in ("priority", "attempts", "maxAttempts"):
        true(isinstance(j[k], int) and not isinstance(j[k], bool), "%s %s %r" % (what, k, j[k]))


def same_answer(a, b, ids):
    """a and b are the same answer once the given ids are blanked out."""
    def norm(r):
        text = r.text
        for x in ids:
            text = text.replace(x, "{id}")
        return r.status, r.content_type, text
    if norm(a) != norm(b):
        raise CheckError("answers differ:\n  other workspace's: %s\n  nonexistent: %s"
                         % (a.describe(), b.describe()))


def body(t):
    s = krstack.Stack.from_env()

    def count(table, ws):
        rows = s.sql("SELECT COUNT(*) FROM %s x JOIN workspaces w ON w.id = x.workspace_id "
                     "WHERE w.slug = ?" % table, ws)
        return int(rows[0][0])

    with t.setup("setup: admin, workspaces A, B, P, viewer and member tokens of A"):
        admin = admin_client(s)
        ws_a = create_workspace(admin)["slug"]
        ws_b = create_workspace(admin)["slug"]
        ws_p = create_workspace(admin)["slug"]
        toks = {}
        for role in ("viewer", "member"):
            r = admin.post("/api/workspaces/%s/tokens" % ws_a,
                           json={"name": "jobs " + role, "role": role})
            expect(201, r, "create %s token" % role)
            toks[role] = Client(s.base_url, bearer=r.json["secret"])
        viewer, member = toks["viewer"], toks["member"]
    A = "/api/workspaces/%s" % ws_a
    B = "/api/workspaces/%s" % ws_b
    P = "/api/workspaces/%s" % ws_p

    with t.setup("setup: a chat in A and a chat and a job in B"):
        r = admin.post(A + "/chats", json={"title": "chat A"})
        expect(201, r)
        chat_a = r.json["id"]
        r = admin.post(B + "/chats", json={"title": "chat B"})
        expect(201, r)
        chat_b = r.json["id"]
        r = admin.post(B + "/jobs", json={"type": "task", "input": "b job", "runAt": later()})
        expect(202, r)
        job_b = r.json["id"]

    # -- create -----------------------------------------------------------------------------
    run_at = later()
    with t("POST jobs task: 202 with the job object, queued until runAt"):
        r = admin.post(A + "/jobs", json={"type": "task", "input": "summarise this",
                                          "systemPrompt": "be brief", "priority": 7,
                                          "maxAttempts": 3, "runAt": run_at,
                                          "provider": "openai", "model": "gpt-4o-mini"})
        expect(202, r)
        job = r.json
        check_job(job)
        eq(job["type"], "task", "type")
        eq(job["status"], "queued", "status")
        eq(job["input"], "summarise this", "input")
        eq(job["systemPrompt"], "be brief", "systemPrompt")
        eq((job["priority"], job["maxAttempts"], job["attempts"]), (7, 3, 0),
           "priority, maxAttempts, attempts")
        eq((job["chatId"], job["scheduleId"], job["schedule"]), (None, None, None),
           "chatId, scheduleId, schedule")
        eq((job["startedAt"], job["finishedAt"], job["deliveredAt"], job["result"],
            job["error"]), (None,) * 5, "times and outcome of a new job")
        eq(job["usage"], {"inputTokens": 0, "outputTokens": 0, "costUsd": 0}, "usage")
        eq(job["usedFallback"], False, "usedFallback")
        true(abs((parse_time(job["runAt"]) - parse_time(run_at)).total_seconds()) < 0.01,
             "runAt %s, asked %s" % (job["runAt"], run_at))
    job_id = job["id"]

    with t("POST jobs without type, maxAttempts or priority: defaults task, 5, 0"):
        r = admin.post(A + "/jobs", json={"input": "defaults", "runAt": later()})
        expect(202, r)
        check_job(r.json)
        eq((r.json["type"], r.json["maxAttempts"], r.json["priority"]), ("task", 5, 0),
           "type, maxAttempts, priority")

    with t("runAt in the past means now"):
        before = utcnow() - datetime.timedelta(seconds=5)
        r = admin.post(A + "/jobs", json={"type": "task", "input": "past",
                                          "runAt": "2020-01-01T00:00:00Z"})
        expect(202, r)
        true(parse_time(r.json["runAt"]) >= before, "runAt %s is in the past" % r.json["runAt"])

    with t("runAt with a numeric offset is converted to UTC"):
        local = (utcnow() + datetime.timedelta(minutes=30)).astimezone(
            datetime.timezone(datetime.timedelta(hours=2)))
        r = admin.post(A + "/jobs", json={"input": "offset", "runAt": local.isoformat()})
        expect(202, r)
        true(abs((parse_time(r.json["runAt"]) - local).total_seconds()) < 0.01,
             "runAt %s for %s" % (r.json["runAt"], local.isoformat()))

    with t("input of exactly 256 KiB is accepted"):
        r = admin.post(A + "/jobs", json={"input": "x" * INPUT_MAX, "runAt": later()})
        expect(202, r)
        eq(len(r.json["input"]), INPUT_MAX, "input length")

    key = "idem-" + uuid.uuid4().hex
    with t("idempotencyKey: first 202, the same key again 200 with the same job"):
        r1 = admin.post(A + "/jobs", json={"input": "once", "idempotencyKey": key,
                                           "runAt": later()})
        expect(202, r1, "first")
        n = count("jobs", ws_a)
        r2 = admin.post(A + "/jobs", json={"input": "twice", "idempotencyKey": key,
                                           "runAt": later()})
        expect(200, r2, "second")
        eq(r2.json["id"], r1.json["id"], "id of the second answer")
        eq(r2.json["input"], "once", "input of the second answer")
        eq(count("jobs", ws_a), n, "jobs in A after the repeat")

    with t("idempotencyKey compares byte for byte: the key in other case, with a trailing "
           "space or an accent makes a job of its own"):
        ids = {r1.json["id"]}
        for other in (key.upper(), key + " ", key.replace("idem", "\u00eddem")):
            r = admin.post(A + "/jobs", json={"input": "other key", "idempotencyKey": other,
                                              "runAt": later()})
            expect(202, r, "key %r" % other)
            ids.add(r.json["id"])
        eq(len(ids), 4, "distinct jobs")

    with t("idempotencyKey is per workspace: the same key in B makes B's own job"):
        r = admin.post(B + "/jobs", json={"input": "b", "idempotencyKey": key, "runAt": later()})
        expect(202, r)
        true(r.json["id"] != r1.json["id"], "B got A's job")

    # -- bad input: 422 naming the field, nothing stored -------------------------------------
    bad = [
        ("unknown chatId", {"chatId": str(uuid.uuid4())}, "chatId"),
        ("chatId of another workspace", {"chatId": chat_b}, "chatId"),
        ("chatId not an id", {"chatId": "chat-1"}, "chatId"),
        ("chatId a number", {"chatId": 12}, "chatId"),
        ("negative maxAttempts", {"maxAttempts": -1}, "maxAttempts"),
        ("maxAttempts 0", {"maxAttempts": 0}, "maxAttempts"),
        ("maxAttempts 21", {"maxAttempts": 21}, "maxAttempts"),
        ("maxAttempts a string", {"maxAttempts": "3"}, "maxAttempts"),
        ("maxAttempts 1.5", {"maxAttempts": 1.5}, "maxAttempts"),
        ("runAt more than a year ahead",
         {"runAt": rfc3339(utcnow() + datetime.timedelta(days=400))}, "runAt"),
        ("runAt not a time", {"runAt": "tomorrow"}, "runAt"),
        ("runAt not a real date", {"runAt": "2027-02-30T10:00:00Z"}, "runAt"),
        ("runAt without a zone", {"runAt": "2027-01-01T10:00:00"}, "runAt"),
        ("runAt a number", {"runAt": 1767225600}, "runAt"),
        ("input over 256 KiB", {"input": "x" * (INPUT_MAX + 1)}, "input"),
        ("input over 256 KiB in bytes (UTF-8)", {"input": "\u00e9" * (INPUT_MAX // 2 + 1)},
         "input"),
        ("input empty", {"input": ""}, "input"),
        ("input missing", {"input": None}, "input"),
        ("input a number", {"input": 42}, "input"),
        ("input an object", {"input": {"text": "x"}}, "input"),
        ("systemPrompt over 256 KiB", {"systemPrompt": "s" * (INPUT_MAX + 1)}, "systemPrompt"),
        ("systemPrompt a list", {"systemPrompt": ["a"]}, "systemPrompt"),
        ("type chat", {"type": "chat"}, "type"),
        ("type a number", {"type": 1}, "type"),
        ("priority 101", {"priority": 101}, "priority"),
        ("priority a string", {"priority": "high"}, "priority"),
        ("priority true", {"priority": True}, "priority"),
        ("unknown provider", {"provider": "acme"}, "provider"),
        ("model too long", {"model": "m" * 129}, "model"),
        ("idempotencyKey too long", {"idempotencyKey": "k" * 201}, "idempotencyKey"),
        ("idempotencyKey empty", {"idempotencyKey": ""}, "idempotencyKey"),
    ]
    # Only the API's own events count here: the runner is working on the "past" job above
    # meanwhile and appends job_started / job_failed for it whenever it gets there.
    def api_events(ws):
        rows = s.sql("SELECT COUNT(*) FROM events x JOIN workspaces w ON w.id = x.workspace_id "
                     "WHERE w.slug = ? AND x.type IN ('job_queued', 'message_created')", ws)
        return int(rows[0][0])

    jobs_before = count("jobs", ws_a)
    events_before = api_events(ws_a)
    for what, patch, field in bad:
        with t("POST jobs with %s: 422 field %s" % (what, field)):
            b = {"type": "task", "input": "bad input test", "runAt": later()}
            b.update(patch)
            b = {k: v for k, v in b.items() if v is not None}
            expect_error(admin.post(A + "/jobs", json=b), 422, "validation_failed", field=field)
    with t("the rejected jobs stored nothing: no job, no event"):
        eq(count("jobs", ws_a), jobs_before, "jobs in A")
        eq(api_events(ws_a), events_before, "job_queued and message_created events in A")

    # -- read ---------------------------------------------------------------------------------
    with t("GET jobs/{id}: the job with attemptsLog [] before any attempt"):
        r = admin.get(A + "/jobs/" + job_id)
        expect(200, r)
        check_job(r.json)
        eq(r.json["id"], job_id, "id")
        eq(r.json["attemptsLog"], [], "attemptsLog")

    with t("list entries carry no attemptsLog"):
        r = admin.get(A + "/jobs?limit=5")
        expect(200, r)
        true(all("attemptsLog" not in j for j in r.json["jobs"]), "attemptsLog in a list entry")

    with t("attemptsLog shows a job's attempts, oldest first, with the contract's fields"):
        r = admin.post(A + "/jobs", json={"input": "tried", "runAt": later()})
        expect(202, r)
        tried = r.json["id"]
        for n, outcome, status, cost in ((1, "transient", 529, "0"),
                                         (2, "ok", None, "0.001250")):
            s.sql("INSERT INTO job_attempts (job_id, workspace_id, attempt, provider, key_id, "
                  "model, is_fallback, started_at, finished_at, outcome, http_status, error, "
                  "input_tokens, output_tokens, cost_usd, latency_ms) SELECT id, workspace_id, "
                  "?, 'google', NULL, 'gemini-2.5-flash', ?, NOW(3), NOW(3), ?, ?, ?, 10, 20, "
                  "?, 345 FROM jobs WHERE id = ?", n, n - 1, outcome, status,
                  "overloaded" if status else None, cost, tried)
        got = admin.get(A + "/jobs/" + tried)
        expect(200, got)
        log = got.json["attemptsLog"]
        eq([a["attempt"] for a in log], [1, 2], "attempts")
        for a in log:
            for k in ATTEMPT_KEYS:
                true(k in a, "attempt lacks %r: %r" % (k, a))
            expect_time(a["startedAt"], "startedAt")
            expect_time(a["finishedAt"], "finishedAt")
        eq((log[0]["provider"], log[0]["model"], log[0]["outcome"], log[0]["httpStatus"],
            log[0]["error"], log[0]["keyId"]),
           ("google", "gemini-2.5-flash", "transient", 529, "overloaded", None), "first attempt")
        eq((log[1]["outcome"], log[1]["httpStatus"], log[1]["error"]), ("ok", None, None),
           "second attempt")
        true(abs(log[1].get("costUsd", 0) - 0.00125) < 1e-9, "costUsd %r" % log[1].get("costUsd"))

    with t.setup("setup: workspace P with 5 jobs for pagination"):
        made = []
        for i in range(5):
            r = admin.post(P + "/jobs", json={"input": "page %d" % i, "runAt": later()})
            expect(202, r)
            made.append(r.json["id"])

    with t("GET jobs?limit=2 pages newest first with nextCursor, null at the end"):
        seen, cursor, pages = [], None, 0
        while True:
            r = admin.get(P + "/jobs?limit=2" + ("&before=" + cursor if cursor else ""))
            expect(200, r)
            true(len(r.json["jobs"]) <= 2, "page of %d" % len(r.json["jobs"]))
            seen += [j["id"] for j in r.json["jobs"]]
            pages += 1
            cursor = r.json["nextCursor"]
            if cursor is None or pages > 5:
                break
        eq(seen, list(reversed(made)), "ids over all pages")
        eq(pages, 3, "pages")

    with t("GET jobs without limit: {jobs, nextCursor null} when all fit"):
        r = admin.get(P + "/jobs")
        expect(200, r)
        eq(r.json["nextCursor"], None, "nextCursor")
        eq(len(r.json["jobs"]), 5, "jobs")

    with t("bad list parameters: 422 naming them"):
        expect_error(admin.get(A + "/jobs?status=done"), 422, "validation_failed", "status")
        expect_error(admin.get(A + "/jobs?limit=0"), 422, "validation_failed", "limit")
        expect_error(admin.get(A + "/jobs?limit=201"), 422, "validation_failed", "limit")
        expect_error(admin.get(A + "/jobs?chatId=x"), 422, "validation_failed", "chatId")
        expect_error(admin.get(A + "/jobs?before=" + job_b), 422, "validation_failed", "before")

    # -- cancel and retry ----------------------------------------------------------------------
    with t("POST jobs/{id}/cancel of a queued job: 200, cancelled, finishedAt set"):
        r = admin.post(A + "/jobs/%s/cancel" % job_id)
        expect(200, r)
        check_job(r.json)
        eq(r.json["status"], "cancelled", "status")
        expect_time(r.json["finishedAt"], "finishedAt")

    with t("cancel again: 409 conflict"):
        expect_error(admin.post(A + "/jobs/%s/cancel" % job_id), 409, "conflict")

    with t("GET jobs?status=cancelled lists it, ?status=queued does not"):
        r = admin.get(A + "/jobs?status=cancelled&limit=200")
        expect(200, r)
        true(job_id in [j["id"] for j in r.json["jobs"]], "cancelled job not listed")
        true(all(j["status"] == "cancelled" for j in r.json["jobs"]), "other statuses listed")
        r = admin.get(A + "/jobs?status=queued&limit=200")
        expect(200, r)
        true(job_id not in [j["id"] for j in r.json["jobs"]], "cancelled job listed as queued")

    with t("the cancel appended job_cancelled with the job"):
        rows = s.sql("SELECT e.payload FROM events e JOIN workspaces w ON w.id = e.workspace_id "
                     "WHERE w.slug = ? AND e.type = 'job_cancelled'", ws_a)
        true(any(job_id in p[0] and '"cancelled"' in p[0] for p in rows),
             "no job_cancelled event for the job: %r" % rows)

    with t("POST jobs/{id}/retry of the cancelled job: 202, queued again, attempts 0"):
        r = admin.post(A + "/jobs/%s/retry" % job_id)
        expect(202, r)
        check_job(r.json)
        eq(r.json["id"], job_id, "id")
        true(r.json["status"] in ("queued", "running", "retrying", "succeeded", "failed"),
             "status %r" % r.json["status"])
        eq(r.json["error"], None, "error")
        if r.json["status"] == "queued":
            eq((r.json["attempts"], r.json["finishedAt"]), (0, None), "attempts, finishedAt")

    with t("retry of a failed job: 202, error cleared"):
        r = admin.post(A + "/jobs", json={"input": "will fail", "runAt": later()})
        expect(202, r)
        failed = r.json["id"]
        s.sql("UPDATE jobs SET status = 'failed', error = 'boom', attempts = 2, "
              "finished_at = NOW(3), provider = 'anthropic', model = 'm', used_fallback = 1 "
              "WHERE id = ?", failed)
        r = admin.post(A + "/jobs/%s/retry" % failed)
        expect(202, r)
        true(r.json["status"] != "failed" or r.json["error"] != "boom",
             "still the old failure: %r" % r.json)
        if r.json["status"] == "queued":
            eq((r.json["attempts"], r.json["error"], r.json["finishedAt"]), (0, None, None),
               "attempts, error, finishedAt")
            eq((r.json["provider"], r.json["model"], r.json["usedFallback"]),
               (None, None, False), "provider, model, usedFallback of the old run")

    with t("retry of a queued job: 409 conflict"):
        r = admin.post(A + "/jobs", json={"input": "stays queued", "runAt": later()})
        expect(202, r)
        expect_error(admin.post(A + "/jobs/%s/retry" % r.json["id"]), 409, "conflict")

    with t("unknown or malformed job ids: 404 for get, cancel and retry"):
        ghost = str(uuid.uuid4())
        for path in ("/jobs/" + ghost, "/jobs/not-an-id"):
            expect_error(admin.get(A + path), 404, "not_found", what="GET " + path)
        expect_error(admin.post(A + "/jobs/%s/cancel" % ghost), 404, "not_found")
        expect_error(admin.post(A + "/jobs/%s/retry" % ghost), 404, "not_found")

    with t("another workspace's job answers exactly like a missing one (get, cancel, retry)"):
        ghost = str(uuid.uuid4())
        same_answer(admin.get(A + "/jobs/" + job_b), admin.get(A + "/jobs/" + ghost),
                    [job_b, ghost])
        same_answer(admin.post(A + "/jobs/%s/cancel" % job_b),
                    admin.post(A + "/jobs/%s/cancel" % ghost), [job_b, ghost])
        same_answer(admin.post(A + "/jobs/%s/retry" % job_b),
                    admin.post(A + "/jobs/%s/retry" % ghost), [job_b, ghost])
        r = admin.get(B + "/jobs/" + job_b)
        expect(200, r, "B's job from B")
        eq(r.json["status"], "queued", "B's job after A's attempts")

    # -- chats and messages ----------------------------------------------------------------------
    with t("POST chats {title}: 201 {id, title, createdAt}"):
        r = admin.post(A + "/chats", json={"title": "Quarterly report"})
        expect(201, r)
        for k in ("id", "title", "createdAt"):
            true(k in r.json, "chat lacks %r: %r" % (k, r.json))
        eq(r.json["title"], "Quarterly report", "title")
        expect_time(r.json["createdAt"], "createdAt")
    chat = r.json["id"]

    with t("POST chats with a bad title: 422 field title"):
        for b in ({}, {"title": ""}, {"title": "t" * 201}, {"title": 5}):
            expect_error(admin.post(A + "/chats", json=b), 422, "validation_failed", "title",
                         what=repr(b)[:40])

    with t("GET chats: newest first, pages with limit and before"):
        r = admin.get(A + "/chats")
        expect(200, r)
        ids = [c["id"] for c in r.json["chats"]]
        eq(ids[:2], [chat, chat_a], "first chats")
        true(chat_b not in ids, "B's chat listed in A")
        r = admin.get(A + "/chats?limit=1")
        expect(200, r)
        eq([c["id"] for c in r.json["chats"]], [chat], "first page")
        r = admin.get(A + "/chats?limit=1&before=" + r.json["nextCursor"])
        expect(200, r)
        eq([c["id"] for c in r.json["chats"]], [chat_a], "second page")

    with t("POST chats/{id}/messages: 202 {message, job}: an `in` message and a chat job"):
        r = admin.post(A + "/chats/%s/messages" % chat,
                       json={"content": "What changed this quarter?",
                             "systemPrompt": "Answer in one line."})
        expect(202, r)
        msg, cjob = r.json["message"], r.json["job"]
        for k in MESSAGE_KEYS:
            true(k in msg, "message lacks %r: %r" % (k, msg))
        eq((msg["chatId"], msg["direction"], msg["content"]),
           (chat, "in", "What changed this quarter?"), "message chatId, direction, content")
        eq(msg["sender"], s.admin_email, "sender")
        expect_time(msg["createdAt"], "message createdAt")
        check_job(cjob, "job")
        eq((cjob["type"], cjob["chatId"], cjob["input"], cjob["systemPrompt"]),
           ("chat", chat, "What changed this quarter?", "Answer in one line."),
           "job type, chatId, input, systemPrompt")

    with t("GET chats/{id}/messages lists the `in` message, oldest first"):
        r = admin.get(A + "/chats/%s/messages" % chat)
        expect(200, r)
        lst = r.json["messages"]
        true(len(lst) >= 1, "no messages")
        eq(lst[0]["id"], msg["id"], "first message")
        eq(lst[0]["direction"], "in", "direction")
        times = [m["createdAt"] for m in lst]
        eq(times, sorted(times), "createdAt order")

    with t("the chat job is in GET jobs?chatId= and has the chatId"):
        r = admin.get(A + "/jobs?chatId=" + chat)
        expect(200, r)
        got = {j["id"]: j for j in r.json["jobs"]}
        true(cjob["id"] in got, "chat job not listed")
        eq(got[cjob["id"]]["chatId"], chat, "chatId")
        eq(set(j["chatId"] for j in r.json["jobs"]), {chat}, "chatIds listed")

    with t("the post appended message_created and job_queued"):
        rows = s.sql("SELECT e.type FROM events e JOIN workspaces w ON w.id = e.workspace_id "
                     "WHERE w.slug = ? AND (e.payload LIKE ? OR e.payload LIKE ?)",
                     ws_a, "%" + msg["id"] + "%", "%" + cjob["id"] + "%")
        types = [x[0] for x in rows]
        true("message_created" in types and "job_queued" in types, "events %r" % types)

    with t("messages ?after= pages forward; an unknown after is 422"):
        r2 = member.post(A + "/chats/%s/messages" % chat, json={"content": "and the next?"})
        expect(202, r2, "member posts")
        eq(r2.json["message"]["sender"], "jobs member", "sender of a token")
        r = admin.get(A + "/chats/%s/messages?after=%s" % (chat, msg["id"]))
        expect(200, r)
        true(r2.json["message"]["id"] in [m["id"] for m in r.json["messages"]],
             "second message missing after the first")
        true(msg["id"] not in [m["id"] for m in r.json["messages"]], "after repeats the first")
        expect_error(admin.get(A + "/chats/%s/messages?after=%s" % (chat, uuid.uuid4())),
                     422, "validation_failed", "after")

    with t("a bad message stores nothing: 422 field content"):
        m0, j0 = count("messages", ws_a), count("jobs", ws_a)
        for b in ({}, {"content": ""}, {"content": 7}, {"content": "x" * (INPUT_MAX + 1)}):
            expect_error(admin.post(A + "/chats/%s/messages" % chat, json=b), 422,
                         "validation_failed", "content", what=repr(b)[:40])
        eq((count("messages", ws_a), count("jobs", ws_a)), (m0, j0), "messages, jobs")

    with t("unknown chat: 404 for messages GET and POST"):
        ghost = str(uuid.uuid4())
        expect_error(admin.get(A + "/chats/%s/messages" % ghost), 404, "not_found")
        expect_error(admin.post(A + "/chats/%s/messages" % ghost, json={"content": ""}), 404,
                     "not_found", what="POST to a missing chat with a bad body")
        expect_error(admin.post(A + "/chats/%s/messages" % ghost, json={"content": "x"}),
                     404, "not_found")

    with t("another workspace's chat answers exactly like a missing one, and stores nothing"):
        ghost = str(uuid.uuid4())
        mb = count("messages", ws_b)
        same_answer(admin.get(A + "/chats/%s/messages" % chat_b),
                    admin.get(A + "/chats/%s/messages" % ghost), [chat_b, ghost])
        same_answer(admin.post(A + "/chats/%s/messages" % chat_b, json={"content": "x"}),
                    admin.post(A + "/chats/%s/messages" % ghost, json={"content": "x"}),
                    [chat_b, ghost])
        eq(count("messages", ws_b), mb, "messages in B")

    # -- roles ---------------------------------------------------------------------------------
    with t("viewer reads jobs and chats (200)"):
        expect(200, viewer.get(A + "/jobs"), "GET jobs")
        expect(200, viewer.get(A + "/jobs/" + job_id), "GET job")
        expect(200, viewer.get(A + "/chats"), "GET chats")
        expect(200, viewer.get(A + "/chats/%s/messages" % chat), "GET messages")

    with t("viewer cannot create, cancel or retry jobs, chats or messages (403)"):
        n = count("jobs", ws_a), count("chats", ws_a), count("messages", ws_a)
        expect_error(viewer.post(A + "/jobs", json={"type": "task", "input": "v"}),
                     403, "forbidden", what="POST jobs")
        expect_error(viewer.post(A + "/chats", json={"title": "v"}), 403, "forbidden",
                     what="POST chats")
        expect_error(viewer.post(A + "/chats/%s/messages" % chat, json={"content": "v"}),
                     403, "forbidden", what="POST messages")
        expect_error(viewer.post(A + "/jobs/%s/cancel" % job_id), 403, "forbidden",
                     what="cancel")
        expect_error(viewer.post(A + "/jobs/%s/retry" % job_id), 403, "forbidden",
                     what="retry")
        eq((count("jobs", ws_a), count("chats", ws_a), count("messages", ws_a)), n,
           "jobs, chats, messages")

    with t("member token creates a task (202)"):
        r = member.post(A + "/jobs", json={"type": "task", "input": "by member",
                                           "runAt": later()})
        expect(202, r)
        check_job(r.json)


if __name__ == "__main__":
    run("jobs_api", body)
