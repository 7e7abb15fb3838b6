#!/usr/bin/env python3
"""Schedules: CRUD, nextRunAt computed for the cron expression in its time zone (DST by the
season), 422 for a bad cron expression, time zone or chat with nothing stored, PATCH that
recomputes nextRunAt only when it must, disabled schedules without nextRunAt, workspace
isolation (404), roles (viewer 403, member may write); and the runner's side: a due
schedule fires once, with its job, its schedule_fires row and lastRunAt at the slot; after
downtime one catch-up fire, then the next slot after now; a slot fired already (by another
runner) is skipped, not fired twice.

Runs against the shared stack ($KEYRELAY_TEST_STACK); creates its own workspaces.
"""
import datetime as dt
import os
import sys
import time
from zoneinfo import ZoneInfo

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import krstack  # noqa: E402
from krclient import (check_pages, add_member, admin_client, create_user,  # noqa: E402
                      create_workspace, eq, expect, expect_error, expect_time, run, true,
                      unique, user_client, wait_for)

SCHEDULE_KEYS = ("id", "description", "cron", "timezone", "input", "chatId", "systemPrompt",
                 "enabled", "nextRunAt", "lastRunAt", "createdAt", "updatedAt")
UTC = dt.timezone.utc
FIRE_WAIT = 20          # seconds the runner gets to fire a due schedule (it looks every second)


def parse_time(s):
    return dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def fmt(t):
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


def next_daily(hour, minute, tz, after):
    """The first hour:minute wall-clock time in tz strictly after `after` (UTC)."""
    z = ZoneInfo(tz)
    day = after.astimezone(z).date()
    for i in range(3):
        cand = dt.datetime.combine(day + dt.timedelta(days=i), dt.time(hour, minute), tzinfo=z)
        if cand.astimezone(UTC) > after:
            return cand.astimezone(UTC)
    raise AssertionError("no slot")


def next_every(minutes, after):
    """The first whole multiple of `minutes` past the hour strictly after `after` (UTC)."""
    t = after.replace(second=0, microsecond=0)
    while True:
        t += dt.timedelta(minutes=1)
        if t.minute % minutes == 0:
            return t



def db_now(s):
    return dt.datetime.strptime(s.sql("SELECT UTC_TIMESTAMP(3)")[0][0],
                                "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)


def body(t):
    s = krstack.Stack.from_env()

    with t.setup("setup: admin, workspaces A and B, a member and a viewer of A, a chat in A and B"):
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
        chat_a = make_chat(s, admin, ws_a, ws_ids[ws_a])
        chat_b = make_chat(s, admin, ws_b, ws_ids[ws_b])
    sch_a = "/api/workspaces/%s/schedules" % ws_a
    sch_b = "/api/workspaces/%s/schedules" % ws_b

    def count_a():
        return int(s.sql("SELECT COUNT(*) FROM schedules WHERE workspace_id = ?",
                         ws_ids[ws_a])[0][0])

    def create(client, **fields):
        doc = {"description": "daily digest", "cron": "0 9 * * *", "timezone": "Europe/Berlin",
               "input": "Summarise the news"}
        doc.update(fields)
        before = db_now(s)
        r = client.post(sch_a, json=doc)
        return r, before, db_now(s)

    # -- create -----------------------------------------------------------------------------
    with t("POST schedules: 201 with every field, enabled by default"):
        r, before, after = create(admin, systemPrompt="Be brief", chatId=chat_a)
        expect(201, r)
        sc = r.json
        for k in SCHEDULE_KEYS:
            true(k in sc, "schedule lacks %r: %s" % (k, r.describe()))
        eq(sc["description"], "daily digest", "description")
        eq(sc["cron"], "0 9 * * *", "cron")
        eq(sc["timezone"], "Europe/Berlin", "timezone")
        eq(sc["input"], "Summarise the news", "input")
        eq(sc["chatId"], chat_a, "chatId")
        eq(sc["systemPrompt"], "Be brief", "systemPrompt")
        eq(sc["enabled"], True, "enabled")
        eq(sc["lastRunAt"], None, "lastRunAt")
        expect_time(sc["createdAt"], "createdAt")
        expect_time(sc["updatedAt"], "updatedAt")
    sid = sc["id"]

    with t("nextRunAt of \"0 9 * * *\" Europe/Berlin is the next 09:00 in Berlin: 08:00Z in "
           "winter, 07:00Z in summer"):
        expect_time(sc["nextRunAt"], "nextRunAt")
        want = {fmt(next_daily(9, 0, "Europe/Berlin", before)),
                fmt(next_daily(9, 0, "Europe/Berlin", after))}
        true(sc["nextRunAt"] in want, "nextRunAt %s, expected %s" % (sc["nextRunAt"], want))
        hour = parse_time(sc["nextRunAt"]).hour
        berlin = parse_time(sc["nextRunAt"]).astimezone(ZoneInfo("Europe/Berlin"))
        eq(hour, 7 if berlin.dst() else 8, "UTC hour of 09:00 Berlin (dst=%s)" % berlin.dst())

    with t("nextRunAt of \"*/15 * * * *\" UTC is the next quarter hour"):
        r, before, after = create(admin, cron="*/15 * * * *", timezone="UTC")
        expect(201, r)
        want = {fmt(next_every(15, before)), fmt(next_every(15, after))}
        true(r.json["nextRunAt"] in want, "nextRunAt %s, expected %s" % (r.json["nextRunAt"], want))
        quarter = r.json["id"]

    with t("nextRunAt of \"0 9 * * *\" Asia/Tokyo is 00:00Z (no daylight saving there)"):
        r, before, after = create(admin, timezone="Asia/Tokyo")
        expect(201, r)
        eq(r.json["nextRunAt"][11:], "00:00:00.000Z", "time of nextRunAt")

    with t("created disabled: nextRunAt null"):
        r, _, _ = create(admin, enabled=False)
        expect(201, r)
        eq(r.json["enabled"], False, "enabled")
        eq(r.json["nextRunAt"], None, "nextRunAt")
        disabled_id = r.json["id"]

    with t("GET schedules/{id} answers the same object; GET schedules lists it"):
        r = admin.get("%s/%s" % (sch_a, sid))
        expect(200, r)
        eq(r.json, sc, "GET by id")
        r = admin.get(sch_a)
        expect(200, r)
        ids = [x["id"] for x in r.json["schedules"]]
        true(sid in ids and quarter in ids and disabled_id in ids, "list: %s" % ids)
        true(ids.index(disabled_id) < ids.index(sid), "not newest first: %s" % ids)

    # -- validation ---------------------------------------------------------------------------
    n = count_a()
    bad = [
        ("bad cron (4 fields): 422 field cron", {"cron": "0 9 * *"}, "cron"),
        ("bad cron (minute 61): 422 field cron", {"cron": "61 * * * *"}, "cron"),
        ("bad cron (words): 422 field cron", {"cron": "every day"}, "cron"),
        ("a cron that never fires (Feb 30): 422 field cron", {"cron": "0 0 30 2 *"}, "cron"),
        ("bad time zone: 422 field timezone", {"timezone": "Europe/Atlantis"}, "timezone"),
        ("a path as time zone: 422 field timezone", {"timezone": "../../etc/passwd"}, "timezone"),
        ("time zone of the wrong type: 422", {"timezone": 1}, "timezone"),
        ("chat of another workspace: 422 field chatId", {"chatId": chat_b}, "chatId"),
        ("chatId that is no id: 422 field chatId", {"chatId": "nope"}, "chatId"),
        ("empty description: 422", {"description": ""}, "description"),
        ("description over 500 characters: 422", {"description": "x" * 501}, "description"),
        ("empty input: 422", {"input": ""}, "input"),
        ("enabled not a boolean: 422", {"enabled": "yes"}, "enabled"),
    ]
    for what, fields, field in bad:
        with t(what):
            r, _, _ = create(admin, **fields)
            err = expect_error(r, 422, "validation_failed", field=field)
            true(len(err["message"]) > 5, "message %r" % err["message"])
    for missing in ("description", "cron", "timezone", "input"):
        with t("POST without %s: 422 field %s" % (missing, missing)):
            doc = {"description": "d", "cron": "* * * * *", "timezone": "UTC", "input": "x"}
            del doc[missing]
            expect_error(admin.post(sch_a, json=doc), 422, "validation_failed", field=missing)
    with t("the bad requests stored nothing"):
        eq(count_a(), n, "schedules in A")

    with t("the 422 of a bad cron expression says what is wrong with it"):
        r, _, _ = create(admin, cron="0 25 * * *")
        err = expect_error(r, 422, "validation_failed", field="cron")
        true("hour" in err["message"].lower() or "25" in err["message"],
             "message %r names neither the field nor the value" % err["message"])

    # -- PATCH --------------------------------------------------------------------------------
    with t("PATCH description only: 200, nextRunAt unchanged, updatedAt moves"):
        time.sleep(0.01)
        r = admin.patch("%s/%s" % (sch_a, sid), json={"description": "morning digest"})
        expect(200, r)
        eq(r.json["description"], "morning digest", "description")
        eq(r.json["nextRunAt"], sc["nextRunAt"], "nextRunAt")
        eq(r.json["cron"], sc["cron"], "cron")
        eq(r.json["chatId"], chat_a, "chatId kept")
        true(r.json["updatedAt"] >= sc["updatedAt"], "updatedAt went back")

    with t("PATCH enabled false: nextRunAt null"):
        r = admin.patch("%s/%s" % (sch_a, sid), json={"enabled": False})
        expect(200, r)
        eq(r.json["enabled"], False, "enabled")
        eq(r.json["nextRunAt"], None, "nextRunAt")

    with t("PATCH enabled true: nextRunAt computed again"):
        before = db_now(s)
        r = admin.patch("%s/%s" % (sch_a, sid), json={"enabled": True})
        after = db_now(s)
        expect(200, r)
        want = {fmt(next_daily(9, 0, "Europe/Berlin", before)),
                fmt(next_daily(9, 0, "Europe/Berlin", after))}
        true(r.json["nextRunAt"] in want, "nextRunAt %s, expected %s" % (r.json["nextRunAt"], want))

    with t("PATCH timezone: nextRunAt follows it (09:00 in New York)"):
        before = db_now(s)
        r = admin.patch("%s/%s" % (sch_a, sid), json={"timezone": "America/New_York"})
        after = db_now(s)
        expect(200, r)
        want = {fmt(next_daily(9, 0, "America/New_York", before)),
                fmt(next_daily(9, 0, "America/New_York", after))}
        true(r.json["nextRunAt"] in want, "nextRunAt %s, expected %s" % (r.json["nextRunAt"], want))

    with t("PATCH cron: nextRunAt follows it"):
        before = db_now(s)
        r = admin.patch("%s/%s" % (sch_a, sid), json={"cron": "30 6 * * *"})
        after = db_now(s)
        expect(200, r)
        want = {fmt(next_daily(6, 30, "America/New_York", before)),
                fmt(next_daily(6, 30, "America/New_York", after))}
        true(r.json["nextRunAt"] in want, "nextRunAt %s, expected %s" % (r.json["nextRunAt"], want))
        patched = r.json

    with t("PATCH chatId null and systemPrompt null clear them"):
        r = admin.patch("%s/%s" % (sch_a, sid), json={"chatId": None, "systemPrompt": None})
        expect(200, r)
        eq(r.json["chatId"], None, "chatId")
        eq(r.json["systemPrompt"], None, "systemPrompt")
        eq(r.json["nextRunAt"], patched["nextRunAt"], "nextRunAt")

    with t("PATCH with a bad cron, time zone or chat: 422, the schedule unchanged"):
        before = admin.get("%s/%s" % (sch_a, sid)).json
        expect_error(admin.patch("%s/%s" % (sch_a, sid), json={"cron": "* * *"}),
                     422, "validation_failed", field="cron")
        expect_error(admin.patch("%s/%s" % (sch_a, sid), json={"timezone": "Mars/Base"}),
                     422, "validation_failed", field="timezone")
        expect_error(admin.patch("%s/%s" % (sch_a, sid), json={"chatId": chat_b}),
                     422, "validation_failed", field="chatId")
        eq(admin.get("%s/%s" % (sch_a, sid)).json, before, "schedule after refused PATCHes")

    with t("PATCH of a disabled schedule keeps nextRunAt null"):
        r = admin.patch("%s/%s" % (sch_a, disabled_id), json={"cron": "*/5 * * * *"})
        expect(200, r)
        eq(r.json["nextRunAt"], None, "nextRunAt")
        eq(r.json["cron"], "*/5 * * * *", "cron")

    # -- isolation and roles ------------------------------------------------------------------
    with t("A's schedule through B's path: 404 for GET, PATCH, DELETE; B's list is empty"):
        for r in (admin.get("%s/%s" % (sch_b, sid)),
                  admin.patch("%s/%s" % (sch_b, sid), json={"description": "x"}),
                  admin.delete("%s/%s" % (sch_b, sid))):
            expect_error(r, 404, "not_found")
        r = admin.get(sch_b)
        expect(200, r)
        eq(r.json["schedules"], [], "B's schedules")
        expect(200, admin.get("%s/%s" % (sch_a, sid)), "still there in A")

    with t("an unknown or malformed id: 404"):
        expect_error(admin.get("%s/%s" % (sch_a, "0190a0a0-0000-7000-8000-000000000000")),
                     404, "not_found")
        expect_error(admin.get("%s/not-an-id" % sch_a), 404, "not_found")

    with t("viewer: reads (200), every write 403"):
        expect(200, viewer.get(sch_a))
        expect(200, viewer.get("%s/%s" % (sch_a, sid)))
        n = count_a()
        expect_error(viewer.post(sch_a, json={"description": "v", "cron": "* * * * *",
                                              "timezone": "UTC", "input": "x"}),
                     403, "forbidden", what="POST")
        expect_error(viewer.patch("%s/%s" % (sch_a, sid), json={"enabled": False}),
                     403, "forbidden", what="PATCH")
        expect_error(viewer.delete("%s/%s" % (sch_a, sid)), 403, "forbidden", what="DELETE")
        eq(count_a(), n, "schedules in A")

    with t("member: creates (201), changes and deletes"):
        r, _, _ = create(member, description="member's")
        expect(201, r)
        expect(200, member.patch("%s/%s" % (sch_a, r.json["id"]), json={"enabled": False}))
        expect(204, member.delete("%s/%s" % (sch_a, r.json["id"])))

    with t("DELETE: 204 with no body, then GET and DELETE 404"):
        r = admin.delete("%s/%s" % (sch_a, quarter))
        expect(204, r)
        eq(r.raw, b"", "body")
        expect_error(admin.get("%s/%s" % (sch_a, quarter)), 404, "not_found")
        expect_error(admin.delete("%s/%s" % (sch_a, quarter)), 404, "not_found")

    with t("GET schedules pages newest first: ?limit, ?before=nextCursor, 422 for bad ones"):
        new_ids = []
        for i in range(3):
            r, _, _ = create(admin, description="pager %d" % i)
            expect(201, r)
            new_ids.append(r.json["id"])
        doc = {"description": "pager of B", "cron": "0 9 * * *", "timezone": "UTC",
               "input": "x"}
        rb = admin.post(sch_b, json=doc)
        expect(201, rb, "schedule in B")
        check_pages(viewer, sch_a, "schedules", "id", new_ids, foreign_id=rb.json["id"])

    runner_checks(t, s, admin, sch_a, ws_ids[ws_a], chat_a)


def make_chat(s, admin, ws, ws_id):
    """A chat of ws: through the API, or straight into the table if chats are not served."""
    r = admin.post("/api/workspaces/%s/chats" % ws, json={"title": "schedules test"})
    if r.status == 201 and isinstance(r.json, dict) and r.json.get("id"):
        return r.json["id"]
    cid = s.sql("SELECT UUID()")[0][0]
    s.sql("INSERT INTO chats (id, workspace_id, title) VALUES (?, ?, 'schedules test')",
          cid, ws_id)
    return cid



def runner_checks(t, s, admin, sch_a, ws_id, chat_a):
    """The runner fires due schedules (kr_schedules_fire_due, called every second)."""

    def make(cron, tz="UTC", **extra):
        doc = {"description": unique("fire"), "cron": cron, "timezone": tz,
               "input": "input " + unique("i"), "chatId": chat_a, "systemPrompt": "sp"}
        doc.update(extra)
        r = admin.post(sch_a, json=doc)
        expect(201, r, "create schedule")
        return r.json

    def jobs_of(sid):
        return s.sql("SELECT id, type, input, chat_id, system_prompt, max_attempts, status "
                     "FROM jobs WHERE schedule_id = ?", sid)

    def fires_of(sid):
        return s.sql("SELECT DATE_FORMAT(fire_time, '%Y-%m-%d %H:%i:%s.%f'), job_id "
                     "FROM schedule_fires WHERE schedule_id = ?", sid)

    # A yearly schedule whose slot was three days ago: the runner was "down" since then.
    with t.setup("runner setup: a yearly schedule made due three days ago"):
        yearly = make("0 0 1 1 *")
        slot = s.sql("SELECT DATE_FORMAT(UTC_TIMESTAMP() - INTERVAL 3 DAY, "
                     "'%Y-%m-%d %H:%i:00')")[0][0]
        s.sql("UPDATE schedules SET next_run_at = ? WHERE id = ?", slot, yearly["id"])

    with t("runner: the due schedule fires within %d s (lastRunAt = the slot)" % FIRE_WAIT):
        got = wait_for("lastRunAt of the due schedule (is kr_schedules_fire_due wired into "
                       "the runner?)", lambda: admin.get("%s/%s" % (sch_a, yearly["id"])).json
                       .get("lastRunAt"), FIRE_WAIT, 0.25)
        eq(got, slot.replace(" ", "T") + ".000Z", "lastRunAt")

    with t("runner: exactly one job, type scheduled, with the schedule's input, chat and "
           "system prompt, maxAttempts 5"):
        time.sleep(2)
        jobs = jobs_of(yearly["id"])
        eq(len(jobs), 1, "jobs of the schedule")
        _, jtype, jinput, jchat, jsp, jmax, _ = jobs[0]
        eq(jtype, "scheduled", "type")
        eq(jinput, yearly["input"], "input")
        eq(jchat, chat_a, "chat_id")
        eq(jsp, "sp", "system_prompt")
        eq(jmax, "5", "max_attempts")

    with t("runner: one schedule_fires row, fire_time = the slot, job_id = the job"):
        fires = fires_of(yearly["id"])
        eq(len(fires), 1, "fires")
        eq(fires[0][0], slot + ".000000", "fire_time")
        eq(fires[0][1], jobs_of(yearly["id"])[0][0], "job_id")

    with t("runner: after downtime the next slot is the next one after now (1 January), "
           "not a burst of missed ones"):
        r = admin.get("%s/%s" % (sch_a, yearly["id"]))
        now = db_now(s)
        want = "%04d-01-01T00:00:00.000Z" % (now.year + 1)
        eq(r.json["nextRunAt"], want, "nextRunAt")

    with t("runner: an every-5-minutes schedule three days overdue fires once, then waits for "
           "the next slot after now"):
        five = make("*/5 * * * *")
        slot5 = s.sql("SELECT DATE_FORMAT(UTC_TIMESTAMP() - INTERVAL 3 DAY - INTERVAL "
                      "MINUTE(UTC_TIMESTAMP()) % 5 MINUTE, '%Y-%m-%d %H:%i:00')")[0][0]
        s.sql("UPDATE schedules SET next_run_at = ? WHERE id = ?", slot5, five["id"])
        wait_for("the overdue schedule to fire",
                 lambda: admin.get("%s/%s" % (sch_a, five["id"])).json.get("lastRunAt"),
                 FIRE_WAIT, 0.25)
        now = db_now(s)
        sc = admin.get("%s/%s" % (sch_a, five["id"])).json
        nxt = parse_time(sc["nextRunAt"])
        true(nxt.minute % 5 == 0 and nxt.second == 0, "nextRunAt %s is no slot" % sc["nextRunAt"])
        true(now - dt.timedelta(minutes=5) < nxt <= now + dt.timedelta(minutes=5),
             "nextRunAt %s is not the slot after now (%s)" % (sc["nextRunAt"], now))
        # A natural slot may pass during the check: then two, never the 860 missed ones.
        true(1 <= len(jobs_of(five["id"])) <= 2, "jobs: %d" % len(jobs_of(five["id"])))

    with t("runner: a slot another runner fired already is skipped: no second job"):
        dup = make("0 0 1 1 *")
        slot_d = s.sql("SELECT DATE_FORMAT(UTC_TIMESTAMP() - INTERVAL 1 HOUR, "
                       "'%Y-%m-%d %H:%i:00')")[0][0]
        s.sql("INSERT INTO schedule_fires (schedule_id, fire_time, job_id) VALUES (?, ?, UUID())",
              dup["id"], slot_d)
        s.sql("UPDATE schedules SET next_run_at = ? WHERE id = ?", slot_d, dup["id"])
        wait_for("the slot to be skipped",
                 lambda: admin.get("%s/%s" % (sch_a, dup["id"])).json.get("nextRunAt")
                 != slot_d.replace(" ", "T") + ".000Z", FIRE_WAIT, 0.25)
        eq(jobs_of(dup["id"]), [], "jobs of the schedule")
        eq(len(fires_of(dup["id"])), 1, "fires")
        sc = admin.get("%s/%s" % (sch_a, dup["id"])).json
        eq(sc["nextRunAt"], "%04d-01-01T00:00:00.000Z" % (db_now(s).year + 1), "nextRunAt")

    with t("runner: neither a disabled schedule (even with a past next_run_at) nor one not yet "
           "due fires"):
        off = make("0 0 1 1 *", enabled=False)
        later = make("0 0 1 1 *")
        s.sql("UPDATE schedules SET next_run_at = UTC_TIMESTAMP() - INTERVAL 1 DAY WHERE id = ?",
              off["id"])
        time.sleep(4)
        eq(jobs_of(off["id"]), [], "jobs of the disabled schedule")
        eq(jobs_of(later["id"]), [], "jobs of the schedule not yet due")


if __name__ == "__main__":
    run("schedules", body)
