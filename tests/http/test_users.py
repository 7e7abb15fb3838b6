#!/usr/bin/env python3
"""Users: instance-admin GET/POST/DELETE /api/users, password bounds, duplicates, deletion
ending sessions, non-admins refused; the only admin of a workspace cannot be deleted, also when
two instance admins, the two admins of a workspace, delete each other at the same moment.

Runs against the shared stack ($KEYRELAY_TEST_STACK); creates its own users.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import krstack  # noqa: E402
from krclient import (admins_only_workspace, at_once, check_pages, CheckError,  # noqa: E402
                      Client, admin_client, create_user, eq, expect, expect_error,
                      random_password, run, true, unique_email, user_client)

USER_KEYS = ("id", "email", "name", "isInstanceAdmin")


def find_user(resp, user_id):
    users = resp.json["users"]
    true(isinstance(users, list), "users is not a list: %s" % resp.describe())
    hits = [u for u in users if u.get("id") == user_id]
    return hits[0] if hits else None


RACE_ROUNDS = 8


def admins_of(client, ws):
    r = client.get("/api/workspaces/%s/members" % ws)
    expect(200, r, "GET members of %s" % ws)
    return sorted(m["email"] for m in r.json["members"] if m.get("role") == "admin")


def sole_admin_refused(r, what):
    err = expect_error(r, 409, "conflict", field=None, what=what)
    eq(err["message"], "this user is the only admin of 1 workspace(s): make someone else "
       "admin there first", what + ": message")


def body(t):
    s = krstack.Stack.from_env()
    base = s.base_url

    with t.setup("setup: instance admin login"):
        admin = admin_client(s)

    # -- create --------------------------------------------------------------------------------
    email = unique_email("usr")
    password = random_password()
    with t("POST /api/users: 201 user object"):
        r = admin.post("/api/users", json={"email": email, "name": "Ada Lovelace",
                                           "password": password})
        expect(201, r)
        u = r.json
        for k in USER_KEYS:
            true(k in u, "user lacks %r: %s" % (k, r.describe()))
        true(isinstance(u["id"], str) and u["id"], "id %r" % (u["id"],))
        eq(u["email"], email, "email")
        eq(u["name"], "Ada Lovelace", "name")
        eq(u["isInstanceAdmin"], False, "isInstanceAdmin default")
        leaked = [k for k in u if "password" in k.lower() or "hash" in k.lower()]
        eq(leaked, [], "password-like fields")
        true(password not in r.text, "password echoed in the answer")
        uid = u["id"]

    with t("the new user can log in"):
        uc = Client(base)
        expect(200, uc.login(email, password))
        eq(uc.user["id"], uid, "login user.id")

    with t("GET /api/users: {users:[...]} holds the new user and the admin"):
        r = admin.get_all("/api/users", "users")
        expect(200, r)
        got = find_user(r, uid)
        true(got is not None, "new user missing from %s" % r.describe())
        eq(got["email"], email, "email in list")
        eq(got["name"], "Ada Lovelace", "name in list")
        eq(got["isInstanceAdmin"], False, "isInstanceAdmin in list")
        true(any(x.get("email") == s.admin_email and x.get("isInstanceAdmin") is True
                 for x in r.json["users"]), "instance admin missing or not admin in list")
        true(password not in r.text, "password in the list")
        for x in r.json["users"]:
            bad = [k for k in x if "password" in k.lower() or "hash" in k.lower()]
            eq(bad, [], "password-like fields in list entry")

    with t("POST /api/users with isInstanceAdmin:true makes an instance admin"):
        iu, iemail, ipw = create_user(admin, instance_admin=True)
        eq(iu["isInstanceAdmin"], True, "isInstanceAdmin")
        ic = user_client(s, iemail, ipw)
        eq(ic.user["isInstanceAdmin"], True, "login user.isInstanceAdmin")
        expect(200, ic.get("/api/users"), "second instance admin lists users")

    # -- non-admins ---------------------------------------------------------------------------
    with t("non-admin GET /api/users: 403 forbidden"):
        expect_error(uc.get("/api/users"), 403, "forbidden")

    with t("non-admin POST /api/users: 403 forbidden, user not created"):
        e2 = unique_email("sneaky")
        expect_error(uc.post("/api/users", json={"email": e2, "name": "x",
                                                 "password": random_password()}),
                     403, "forbidden")
        lst = admin.get_all("/api/users", "users")
        expect(200, lst)
        eq([x for x in lst.json["users"] if x.get("email") == e2], [], "users with that e-mail")

    with t("non-admin DELETE /api/users/{id}: 403 forbidden, user kept"):
        victim, _, _ = create_user(admin)
        expect_error(uc.delete("/api/users/%s" % victim["id"]), 403, "forbidden")
        lst = admin.get_all("/api/users", "users")
        expect(200, lst)
        true(find_user(lst, victim["id"]) is not None, "user deleted by a non-admin")

    with t("unauthenticated GET /api/users: 401 unauthorized"):
        expect_error(Client(base).get("/api/users"), 401, "unauthorized")

    # -- passwords ------------------------------------------------------------------------------
    def try_password(pw):
        return admin.post("/api/users", json={"email": unique_email("pw"), "name": "pw",
                                              "password": pw})

    with t("password of 11 bytes: 422 validation_failed, field password"):
        expect_error(try_password("a" * 11), 422, "validation_failed", field="password")

    with t("password of 12 bytes: 201"):
        expect(201, try_password("b" * 12))

    with t("password of 11 characters but 12 bytes (one 'é'): 201 (bytes are counted)"):
        expect(201, try_password("é" + "c" * 10))

    with t("password of 1024 bytes: 201"):
        expect(201, try_password("d" * 1024))

    with t("password of 1025 bytes, ASCII or not: 422 field password, the same message "
           "(in bytes)"):
        a = expect_error(try_password("e" * 1025), 422, "validation_failed", field="password")
        b = expect_error(try_password("\u00e9" * 513), 422, "validation_failed",
                         field="password")
        eq((a.get("message"), b.get("message")), ("password must be 12 to 1024 bytes",) * 2,
           "messages")

    with t("missing password: 422 field password"):
        expect_error(admin.post("/api/users", json={"email": unique_email("nopw"),
                                                    "name": "x"}),
                     422, "validation_failed", field="password")

    with t("missing email: 422 field email"):
        expect_error(admin.post("/api/users", json={"name": "x", "password": random_password()}),
                     422, "validation_failed", field="email")

    # -- duplicates ---------------------------------------------------------------------------
    with t("duplicate e-mail: 409 conflict"):
        expect_error(admin.post("/api/users", json={"email": email, "name": "Other",
                                                    "password": random_password()}),
                     409, "conflict")

    with t("the duplicate attempt changed nothing: original password still works"):
        expect(200, Client(base).login(email, password))

    # -- delete ---------------------------------------------------------------------------------
    with t("DELETE /api/users/{id}: 204, and the user's sessions end (cookie -> 401)"):
        expect(200, uc.get("/api/auth/me"), "session works before deletion")
        uc2 = user_client(s, email, password)
        r = admin.delete("/api/users/%s" % uid)
        expect(204, r)
        eq(r.raw, b"", "204 body")
        expect_error(uc.get("/api/auth/me"), 401, "unauthorized", what="first session")
        expect_error(uc2.get("/api/workspaces"), 401, "unauthorized", what="second session")

    with t("deleted user: gone from GET /api/users, cannot log in"):
        lst = admin.get_all("/api/users", "users")
        expect(200, lst)
        true(find_user(lst, uid) is None, "deleted user still listed")
        expect_error(Client(base).login(email, password), 401, "unauthorized")

    with t("DELETE of a deleted user: 404 not_found"):
        expect_error(admin.delete("/api/users/%s" % uid), 404, "not_found")

    with t("DELETE of a made-up user id: 404 not_found"):
        expect_error(admin.delete("/api/users/00000000-0000-4000-8000-000000000000"),
                     404, "not_found")

    # -- the only admin of a workspace --------------------------------------------------------
    with t("DELETE of the only admin of a workspace: 409 conflict, user and membership kept"):
        ws, [(a_id, a_email, _)] = admins_only_workspace(s, admin, 1, instance_admin=True)
        sole_admin_refused(admin.delete("/api/users/%s" % a_id), "DELETE")
        eq(admins_of(admin, ws), [a_email], "admins")
        lst = admin.get_all("/api/users", "users")
        expect(200, lst)
        true(find_user(lst, a_id) is not None, "the only admin was deleted")

    with t("the two admins of a workspace, instance admins, delete each other at the same "
           "moment, %d rounds: one 204, the other 409 (or 401 after), one admin left"
           % RACE_ROUNDS):
        overlapped = 0
        for n in range(RACE_ROUNDS):
            ws, pair = admins_only_workspace(s, admin, 2, instance_admin=True)
            calls = [lambda me=me, other=other: me[2].delete("/api/users/%s" % other[0])
                     for me, other in ((pair[0], pair[1]), (pair[1], pair[0]))]
            rs = at_once(calls)
            won = [i for i, r in enumerate(rs) if r.status == 204]
            if len(won) != 1:
                raise CheckError("round %d: %d of the 2 deletions answered 204 (%s | %s); "
                                 "admins left: %s" % (n + 1, len(won), rs[0].describe(),
                                                      rs[1].describe(), admins_of(admin, ws)))
            loser = rs[1 - won[0]]
            what = "round %d, the other deletion" % (n + 1)
            true(loser.status in (409, 401), "%s: %s" % (what, loser.describe()))
            if loser.status == 409:
                sole_admin_refused(loser, what)
                overlapped += 1
            else:
                expect_error(loser, 401, "unauthorized", what=what)
            eq(admins_of(admin, ws), [pair[won[0]][1]], "round %d: admins left" % (n + 1))
        print("# DELETE users race: %d of %d rounds overlapped (409)" % (overlapped, RACE_ROUNDS),
              flush=True)

    with t("GET /api/users pages newest first: ?limit, ?before=nextCursor, 422 for bad ones"):
        new_ids = [create_user(admin, name="Pager %d" % i)[0]["id"] for i in range(3)]
        check_pages(admin, "/api/users", "users", "id", new_ids)


if __name__ == "__main__":
    run("users", body)
