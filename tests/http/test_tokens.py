#!/usr/bin/env python3
"""Workspace API tokens: create (secret shown once), list without secrets, bearer use only in
its own workspace, roles, revocation effective on the next request, no secret in the logs.

Runs against the shared stack ($KEYRELAY_TEST_STACK); creates its own workspaces.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import krstack  # noqa: E402
from krclient import (check_pages, CheckError, Client, admin_client, create_workspace, eq,  # noqa: E402
                      expect, expect_error, expect_time, run, true, unique_slug)

TOKEN_KEYS = ("id", "name", "role", "prefix", "createdAt", "lastUsedAt")


def token_list(client, ws):
    r = client.get("/api/workspaces/%s/tokens" % ws)
    expect(200, r, "GET tokens of %s" % ws)
    lst = r.json["tokens"]
    true(isinstance(lst, list), "tokens is not a list: %s" % r.describe())
    return r, {x.get("id"): x for x in lst}



def body(t):
    s = krstack.Stack.from_env()
    base = s.base_url
    secrets_seen = []

    with t.setup("setup: admin and workspaces A, B"):
        admin = admin_client(s)
        ws_a = create_workspace(admin)["slug"]
        ws_b = create_workspace(admin)["slug"]
    tok_a = "/api/workspaces/%s/tokens" % ws_a
    mem_a = "/api/workspaces/%s/members" % ws_a

    def make(ws, name, role, client=None):
        r = (client or admin).post("/api/workspaces/%s/tokens" % ws,
                                   json={"name": name, "role": role})
        expect(201, r, "create token %s" % name)
        sec = r.json.get("secret")
        if isinstance(sec, str):
            secrets_seen.append(sec)
        return r

    # -- create ---------------------------------------------------------------------------
    with t("POST tokens {name, role}: 201 token object with secret krt_..."):
        r = make(ws_a, "ci deploy", "admin")
        tk = r.json
        for k in TOKEN_KEYS + ("secret",):
            true(k in tk, "token lacks %r: %s" % (k, r.describe()))
        eq(tk["name"], "ci deploy", "name")
        eq(tk["role"], "admin", "role")
        true(isinstance(tk["secret"], str) and tk["secret"].startswith("krt_"),
             "secret %r" % (tk["secret"],))
        true(len(tk["secret"]) >= 4 + 43, "secret too short for 32 random bytes: %d chars"
             % len(tk["secret"]))
        expect_time(tk["createdAt"], "createdAt")
        eq(tk["lastUsedAt"], None, "lastUsedAt of a new token")
    admin_secret = tk["secret"]
    admin_tid = tk["id"]

    with t("the token's prefix is the start of its secret, and much shorter"):
        true(isinstance(tk["prefix"], str) and len(tk["prefix"]) >= 4, "prefix %r" % tk["prefix"])
        true(admin_secret.startswith(tk["prefix"]), "secret does not start with prefix %r"
             % tk["prefix"])
        true(len(tk["prefix"]) <= len(admin_secret) - 32, "prefix gives away the secret: %r"
             % tk["prefix"])

    with t("two tokens get different secrets"):
        r2 = make(ws_a, "second", "viewer")
        true(r2.json["secret"] != admin_secret, "same secret twice")

    with t("GET tokens lists the token without its secret"):
        r, got = token_list(admin, ws_a)
        true(admin_tid in got, "token missing from %s" % r.describe())
        x = got[admin_tid]
        for k in TOKEN_KEYS:
            true(k in x, "list entry lacks %r: %r" % (k, x))
        eq(x["name"], "ci deploy", "name")
        eq(x["role"], "admin", "role")
        eq(x["prefix"], tk["prefix"], "prefix")
        for e in r.json["tokens"]:
            true("secret" not in e, "list entry has a secret field: %r" % e)

    with t("the secret never appears in GET tokens"):
        r, _ = token_list(admin, ws_a)
        leaked = [sx for sx in secrets_seen if sx in r.text]
        eq(len(leaked), 0, "secrets in GET tokens")
        true(admin_secret[4:] not in r.text, "secret body in GET tokens")

    with t("token role invalid: 422 field role"):
        expect_error(admin.post(tok_a, json={"name": "x", "role": "superuser"}),
                     422, "validation_failed", field="role")

    with t("token without name: 422 field name"):
        expect_error(admin.post(tok_a, json={"role": "viewer"}),
                     422, "validation_failed", field="name")

    # -- bearer use -------------------------------------------------------------------------
    bearer = Client(base, bearer=admin_secret)
    with t("bearer token GET /api/workspaces/{ws}/members: 200"):
        r = bearer.get(mem_a)
        expect(200, r)
        true(any(m.get("email") == s.admin_email for m in r.json["members"]),
             "members list lacks the admin: %s" % r.describe())

    with t("after use, the token's lastUsedAt is set"):
        _, got = token_list(admin, ws_a)
        expect_time(got[admin_tid].get("lastUsedAt"), "lastUsedAt")

    with t("bearer token under another existing workspace: 404 not_found"):
        expect_error(bearer.get("/api/workspaces/%s/members" % ws_b), 404, "not_found")

    with t("bearer token: another workspace answers exactly like a nonexistent one"):
        ghost = unique_slug("nows")
        a = bearer.get("/api/workspaces/%s/members" % ws_b)
        b = bearer.get("/api/workspaces/%s/members" % ghost)
        na = (a.status, a.text.replace(ws_b, "{ws}"))
        nb = (b.status, b.text.replace(ghost, "{ws}"))
        if na != nb:
            raise CheckError("answers differ: %s vs %s" % (a.describe(), b.describe()))

    with t("admin bearer token writes without X-CSRF-Token (201), and a cookie is not needed"):
        r = bearer.post(tok_a, json={"name": "made by token", "role": "viewer"})
        expect(201, r)
        true(str(r.json.get("secret", "")).startswith("krt_"), "secret %r" % r.json.get("secret"))
        secrets_seen.append(r.json["secret"])
        expect(204, bearer.delete("%s/%s" % (tok_a, r.json["id"])), "cleanup")

    with t("admin bearer token cannot write in another workspace: 404"):
        expect_error(bearer.post("/api/workspaces/%s/tokens" % ws_b,
                                 json={"name": "cross", "role": "admin"}), 404, "not_found")
        _, got_b = token_list(admin, ws_b)
        eq([x for x in got_b.values() if x.get("name") == "cross"], [], "tokens named cross in B")

    with t("a token of B cannot be deleted through A's path: 404, B's token still works"):
        rb = make(ws_b, "b token", "viewer")
        expect_error(admin.delete("%s/%s" % (tok_a, rb.json["id"])), 404, "not_found")
        expect(200, Client(base, bearer=rb.json["secret"]).get(
            "/api/workspaces/%s/members" % ws_b))

    with t("viewer token reads (200) and is refused a write (403 forbidden)"):
        vsec = make(ws_a, "reader", "viewer").json["secret"]
        v = Client(base, bearer=vsec)
        expect(200, v.get(mem_a), "read")
        expect_error(v.post(tok_a, json={"name": "escalate", "role": "admin"}),
                     403, "forbidden", what="POST tokens")
        expect_error(v.post(mem_a, json={"email": s.admin_email, "role": "viewer"}),
                     403, "forbidden", what="POST members")
        _, got = token_list(admin, ws_a)
        eq([x for x in got.values() if x.get("name") == "escalate"], [], "tokens named escalate")

    with t("member token is refused token changes (403 forbidden)"):
        msec = make(ws_a, "worker", "member").json["secret"]
        expect_error(Client(base, bearer=msec).post(tok_a, json={"name": "m2", "role": "viewer"}),
                     403, "forbidden")

    with t("a made-up krt_ token: 401 unauthorized"):
        expect_error(Client(base, bearer="krt_" + "A" * 43).get(mem_a), 401, "unauthorized")

    with t("a token with one character changed: 401 unauthorized"):
        last = admin_secret[-1]
        forged = admin_secret[:-1] + ("B" if last != "B" else "C")
        expect_error(Client(base, bearer=forged).get(mem_a), 401, "unauthorized")

    # -- revoke -----------------------------------------------------------------------------
    with t("DELETE tokens/{id}: 204, then the token is refused with 401 on the next request"):
        rr = make(ws_a, "short-lived", "admin")
        sec, tid = rr.json["secret"], rr.json["id"]
        live = Client(base, bearer=sec)
        expect(200, live.get(mem_a), "before revocation")
        r = admin.delete("%s/%s" % (tok_a, tid))
        expect(204, r)
        eq(r.raw, b"", "204 body")
        expect_error(live.get(mem_a), 401, "unauthorized")

    with t("a revoked token is gone from GET tokens, and DELETE again is 404"):
        _, got = token_list(admin, ws_a)
        true(tid not in got, "revoked token still listed")
        expect_error(admin.delete("%s/%s" % (tok_a, tid)), 404, "not_found")

    with t("a token can revoke itself, and is then refused (401)"):
        rr = make(ws_a, "self-revoking", "admin")
        me = Client(base, bearer=rr.json["secret"])
        expect(204, me.delete("%s/%s" % (tok_a, rr.json["id"])))
        expect_error(me.get(mem_a), 401, "unauthorized")

    with t("no token secret in the stack logs"):
        logs = s.log_text()
        true(len(logs) > 0, "log_text() is empty: cannot check")
        leaked = [x[:8] + "..." for x in secrets_seen if x and x in logs]
        eq(leaked, [], "token secrets in the logs")
        leaked_body = [x[:8] + "..." for x in secrets_seen if x and x[4:] in logs]
        eq(leaked_body, [], "token secrets (without krt_) in the logs")

    with t("GET tokens pages newest first: ?limit, ?before=nextCursor, 422 for bad ones"):
        new_ids = [make(ws_a, "pager %d" % i, "viewer").json["id"] for i in range(3)]
        foreign = make(ws_b, "pager of B", "viewer").json["id"]
        check_pages(admin, tok_a, "tokens", "id", new_ids, foreign_id=foreign)


if __name__ == "__main__":
    run("tokens", body)
