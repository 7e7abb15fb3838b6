#!/usr/bin/env python3
"""Usage API: sums and latency percentiles of job_attempts per provider, model, key and day,
from/to filtering (dates include their day, RFC 3339 times with offsets), the default of the
last 30 days, fields outside the grouping null, 422 for bad parameters, and isolation: a
workspace sees only its own attempts.

Inserts attempts straight into job_attempts (for a job of a fresh workspace) with s.sql.
Runs against the shared stack ($KEYRELAY_TEST_STACK).
"""
import datetime as dt
import math
import os
import sys
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import krstack  # noqa: E402
from krclient import (add_member, admin_client, create_user, create_workspace, eq,  # noqa: E402
                      expect, expect_error, run, true, user_client)

UTC = dt.timezone.utc
KEYS = ("provider", "model", "keyId", "day", "calls", "successes", "failures", "inputTokens",
        "outputTokens", "costUsd", "p50LatencyMs", "p95LatencyMs")


def percentile_cont(values, q):
    """SQL PERCENTILE_CONT: linear interpolation between the closest ranks (the API rounds it
    to whole milliseconds)."""
    v = sorted(values)
    pos = q * (len(v) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def expected(attempts, key):
    groups = {}
    for a in attempts:
        groups.setdefault(key(a), []).append(a)
    out = {}
    for k, rows in groups.items():
        lat = [r["latency"] for r in rows]
        out[k] = {
            "calls": len(rows),
            "successes": sum(1 for r in rows if r["outcome"] == "ok"),
            "failures": sum(1 for r in rows if r["outcome"] != "ok"),
            "inputTokens": sum(r["in"] for r in rows),
            "outputTokens": sum(r["out"] for r in rows),
            "costUsd": round(sum(r["cost"] for r in rows), 6),
            "p50LatencyMs": percentile_cont(lat, 0.5),
            "p95LatencyMs": percentile_cont(lat, 0.95),
        }
    return out


GROUPINGS = {
    "provider": (lambda a: (a["provider"], None, None, None)),
    "model": (lambda a: (a["provider"], a["model"], None, None)),
    "key": (lambda a: (a["provider"], None, a["key"], None)),
    "day": (lambda a: (None, None, None, a["at"].date().isoformat())),
}


def row_key(r):
    return (r["provider"], r["model"], r["keyId"], r["day"])


def check_rows(resp, attempts, group):
    expect(200, resp)
    rows = resp.json.get("rows")
    true(isinstance(rows, list), "rows is not a list: %s" % resp.describe())
    want = expected(attempts, GROUPINGS[group])
    got = {}
    for r in rows:
        for k in KEYS:
            true(k in r, "row lacks %r: %r" % (k, r))
        got[row_key(r)] = r
    eq(sorted(got, key=repr), sorted(want, key=repr), "groups of groupBy=%s" % group)
    for k, w in want.items():
        r = got[k]
        for f in ("calls", "successes", "failures", "inputTokens", "outputTokens"):
            eq(r[f], w[f], "%s of %s" % (f, k))
        true(isinstance(r["costUsd"], (int, float)), "costUsd of %s is %r" % (k, r["costUsd"]))
        true(abs(r["costUsd"] - w["costUsd"]) < 1e-9, "costUsd of %s: expected %r, got %r"
             % (k, w["costUsd"], r["costUsd"]))
        for f in ("p50LatencyMs", "p95LatencyMs"):   # whole milliseconds
            true(isinstance(r[f], int), "%s of %s is %r" % (f, k, r[f]))
            true(abs(r[f] - w[f]) <= 0.5 + 1e-9, "%s of %s: expected %r, got %r"
                 % (f, k, w[f], r[f]))


def body(t):
    s = krstack.Stack.from_env()
    now = dt.datetime.strptime(s.sql("SELECT UTC_TIMESTAMP()")[0][0],
                               "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    d2 = (now - dt.timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0)
    d1 = (now - dt.timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
    old = (now - dt.timedelta(days=40)).replace(hour=10, minute=0, second=0, microsecond=0)

    with t.setup("setup: workspaces A and B, a viewer of A, a job in A and in B"):
        admin = admin_client(s)
        ws_a = create_workspace(admin)["slug"]
        ws_b = create_workspace(admin)["slug"]
        _, v_email, v_pw = create_user(admin)
        add_member(admin, ws_a, v_email, "viewer")
        viewer = user_client(s, v_email, v_pw)
        ids = dict(s.sql("SELECT slug, id FROM workspaces WHERE slug IN (?, ?)", ws_a, ws_b))
        job_a, job_b = s.sql("SELECT UUID(), UUID()")[0]
        for job, ws in ((job_a, ws_a), (job_b, ws_b)):
            s.sql("INSERT INTO jobs (id, workspace_id, type, input, status) "
                  "VALUES (?, ?, 'task', 'usage test', 'succeeded')", job, ids[ws])
        k1, k2, k3, k4 = s.sql("SELECT UUID(), UUID(), UUID(), UUID()")[0]

    attempts = [
        dict(provider="anthropic", model="claude-x", key=k1, at=d2, outcome="ok",
             **{"in": 100}, out=50, cost=0.0015, latency=100),
        dict(provider="anthropic", model="claude-x", key=k1, at=d2 + dt.timedelta(hours=1),
             outcome="ok", **{"in": 200}, out=80, cost=0.002, latency=200),
        dict(provider="anthropic", model="claude-x", key=k2, at=d1, outcome="rate",
             **{"in": 0}, out=0, cost=0.0, latency=50),
        dict(provider="anthropic", model="claude-y", key=k2, at=d1 + dt.timedelta(minutes=5),
             outcome="ok", **{"in": 300}, out=10, cost=0.003, latency=400),
        dict(provider="openai", model="gpt-4o-mini", key=k3, at=d2 + dt.timedelta(hours=2),
             outcome="ok", **{"in": 1000}, out=500, cost=0.00045, latency=1000),
        dict(provider="openai", model="gpt-4o-mini", key=k3, at=d1 + dt.timedelta(hours=3),
             outcome="transient", **{"in": 0}, out=0, cost=0.0, latency=3000),
        dict(provider="openai", model="gpt-4o-mini", key=None, at=d1 + dt.timedelta(hours=4),
             outcome="ok", **{"in": 10}, out=10, cost=0.00001, latency=700),
        dict(provider="openai", model="gpt-4o-mini", key=None, at=d1 + dt.timedelta(hours=5),
             outcome="ok", **{"in": 7}, out=3, cost=0.000123, latency=701),
        dict(provider="google", model="gemini-2.5-flash", key=k4, at=old, outcome="ok",
             **{"in": 5}, out=5, cost=0.1, latency=10),
    ]
    recent = [a for a in attempts if a["at"] != old]

    with t.setup("setup: %d attempts inserted into job_attempts" % len(attempts)):
        for i, a in enumerate(attempts, 1):
            started = a["at"].strftime("%Y-%m-%d %H:%M:%S")
            s.sql("INSERT INTO job_attempts (job_id, workspace_id, attempt, provider, key_id, "
                  "system_key, model, started_at, finished_at, outcome, input_tokens, "
                  "output_tokens, cost_usd, latency_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                  job_a, ids[ws_a], i, a["provider"], a["key"], a["key"] is None, a["model"],
                  started, started, a["outcome"], a["in"], a["out"], "%.6f" % a["cost"],
                  a["latency"])
        s.sql("INSERT INTO job_attempts (job_id, workspace_id, attempt, provider, model, "
              "started_at, finished_at, outcome, input_tokens, latency_ms) VALUES "
              "(?, ?, 1, 'zai', 'glm-5', ?, ?, 'ok', 99999, 5)", job_b, ids[ws_b],
              d1.strftime("%Y-%m-%d %H:%M:%S"), d1.strftime("%Y-%m-%d %H:%M:%S"))
    usage = "/api/workspaces/%s/usage" % ws_a

    for group in ("provider", "model", "key", "day"):
        with t("groupBy=%s: one row per group, sums and p50/p95 of the last 30 days" % group):
            check_rows(admin.get(usage + "?groupBy=" + group), recent, group)

    with t("without groupBy the rows are per day, oldest first"):
        r = admin.get(usage)
        check_rows(r, recent, "day")
        days = [x["day"] for x in r.json["rows"]]
        eq(days, sorted(days), "order of days")

    with t("fields outside the grouping are null"):
        for group, null in (("provider", ("model", "keyId", "day")), ("model", ("keyId", "day")),
                            ("key", ("model", "day")), ("day", ("provider", "model", "keyId"))):
            for row in admin.get(usage + "?groupBy=" + group).json["rows"]:
                for f in null:
                    eq(row[f], None, "%s of a groupBy=%s row" % (f, group))

    with t("the system key's calls form their own row (keyId null) under groupBy=key"):
        rows = admin.get(usage + "?groupBy=key").json["rows"]
        sys_rows = [x for x in rows if x["keyId"] is None]
        eq(len(sys_rows), 1, "rows without keyId")
        eq((sys_rows[0]["provider"], sys_rows[0]["calls"]), ("openai", 2), "system key row")
        eq(sys_rows[0]["p50LatencyMs"] in (700, 701), True, "p50 of 700 and 701 (700.5) rounded")

    with t("from/to as dates: only that day (to includes its day)"):
        day = d1.date().isoformat()
        r = admin.get(usage + "?groupBy=provider&from=%s&to=%s" % (day, day))
        check_rows(r, [a for a in attempts if a["at"].date() == d1.date()], "provider")

    with t("from as a date 50 days back includes the 40-day-old attempt"):
        frm = (now - dt.timedelta(days=50)).date().isoformat()
        check_rows(admin.get(usage + "?groupBy=model&from=" + frm), attempts, "model")

    with t("from/to as RFC 3339 times: from inclusive, to exclusive"):
        frm = d2.strftime("%Y-%m-%dT%H:%M:%SZ")
        to = (d2 + dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        r = admin.get(usage + "?groupBy=day&from=%s&to=%s" % (frm, to))
        check_rows(r, [a for a in attempts if d2 <= a["at"] < d2 + dt.timedelta(hours=2)],
                   "day")

    with t("from/to with a UTC offset (+02:00, percent-encoded) mean the same instant"):
        local = (d2 + dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S") + "+02:00"
        to = (d2 + dt.timedelta(hours=1, minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
        r = admin.get(usage + "?groupBy=key&from=%s&to=%s"
                      % (urllib.parse.quote(local, safe=""), to))
        check_rows(r, [a for a in attempts if d2 <= a["at"] < d2 + dt.timedelta(hours=1,
                                                                              minutes=30)], "key")

    with t("a range with no attempts: 200 {\"rows\": []}"):
        r = admin.get(usage + "?from=2001-01-01&to=2001-01-31")
        expect(200, r)
        eq(r.json, {"rows": []}, "answer")

    with t("another workspace sees only its own attempts"):
        r = admin.get("/api/workspaces/%s/usage?groupBy=provider" % ws_b)
        expect(200, r)
        eq([(x["provider"], x["calls"], x["inputTokens"]) for x in r.json["rows"]],
           [("zai", 1, 99999)], "B's rows")
        true(all(x["provider"] != "zai" for x in admin.get(usage + "?groupBy=provider")
                 .json["rows"]), "B's attempt in A's usage")

    with t("a viewer may read usage"):
        check_rows(viewer.get(usage + "?groupBy=provider"), recent, "provider")

    bad = [
        ("groupBy=week", "groupBy"), ("groupBy=", "groupBy"), ("groupBy=Provider", "groupBy"),
        ("from=yesterday", "from"), ("from=2026-02-30", "from"), ("from=2026-13-01", "from"),
        ("to=2026-01-01T25:00:00Z", "to"), ("to=2026-01-01T10:00:00", "to"),
        ("from=", "from"), ("from=2026-05-01&to=2026-04-01", "from"),
        ("from=2024-01-01&to=2026-01-01", "from"),
    ]
    for query, field in bad:
        with t("%s: 422 field %s" % (query, field)):
            expect_error(admin.get(usage + "?" + query), 422, "validation_failed", field=field)

    with t("usage of a workspace that does not exist: 404"):
        expect_error(admin.get("/api/workspaces/no-such-ws-usage/usage"), 404, "not_found")


if __name__ == "__main__":
    run("usage", body)
