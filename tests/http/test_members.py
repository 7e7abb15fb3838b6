#!/usr/bin/env python3
"""Members: a workspace admin adds, re-roles and removes members; members and viewers cannot;
another workspace answers exactly like a nonexistent one; a workspace keeps at least one admin,
also when its two admins demote or remove each other at the same moment.

Runs against the shared stack ($KEYRELAY_TEST_STACK); creates its own users and workspaces.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import krstack  # noqa: E402
from krclient import (admins_only_workspace, at_once, check_pages, CheckError,  # noqa: E402
                      add_member, admin_client, create_user, create_workspace, eq, expect,
                      expect_error, run, true, unique_email, unique_slug, user_client)


def members_of(client, ws):
    r = client.get("/api/workspaces/%s/members" % ws)
    expect(200, r, "GET members of %s" % ws)
    lst = r.json["members"]
    true(isinstance(lst, list), "members is not a list: %s" % r.describe())
    return {m.get("email"): m for m in lst}


def member_id(m):
    """The user id of a member object (userId, or id)."""
    return m.get("userId", m.get("id"))


def same_answer(a, b, slugs):
    """a and b are the same answer once the workspace slugs in them are blanked out."""
    def norm(r):
        text = r.text
        for sl in slugs:
            text = text.replace(sl, "{ws}")
        return r.status, r.content_type, text
    na, nb = norm(a), norm(b)
    if na != nb:
        raise CheckError("answers differ:\n  other workspace: %s\n  no such workspace: %s"
                         % (a.describe(), b.describe()))


RACE_ROUNDS = 8


def admins_of(client, ws):
    return sorted(e for e, m in members_of(client, ws).items() if m.get("role") == "admin")


def race_each_other(s, admin, change, ok, late):
    """RACE_ROUNDS rounds, each with a fresh workspace whose two admins apply change(client,
    path of the other's membership) to each other at the same moment: exactly one answers ok;
    the other 409 conflict, or late (the status once the winner's change reached the loser's
    own membership first); the winner stays the only admin. Answers the number of rounds in
    which the loser got 409 (its change really overlapped the winner's)."""
    overlapped = 0
    for n in range(RACE_ROUNDS):
        ws, pair = admins_only_workspace(s, admin, 2)
        base = "/api/workspaces/%s/members" % ws
        calls = [lambda me=me, other=other: change(me[2], "%s/%s" % (base, other[0]))
                 for me, other in ((pair[0], pair[1]), (pair[1], pair[0]))]
        rs = at_once(calls)
        won = [i for i, r in enumerate(rs) if r.status == ok]
        if len(won) != 1:
            raise CheckError("round %d: %d of the 2 changes answered %d (%s | %s); admins "
                             "left: %s" % (n + 1, len(won), ok, rs[0].describe(),
                                           rs[1].describe(), admins_of(admin, ws)))
        loser = rs[1 - won[0]]
        code = {409: "conflict", 403: "forbidden", 404: "not_found"}.get(loser.status)
        true(loser.status in (409, late), "round %d: the other change: %s"
             % (n + 1, loser.describe()))
        expect_error(loser, loser.status, code, what="round %d, the other change" % (n + 1))
        if loser.status == 409:
            eq(loser.json["error"]["message"], "a workspace keeps at least one admin",
               "round %d: message" % (n + 1))
            overlapped += 1
        eq(admins_of(admin, ws), [pair[won[0]][1]], "round %d: admins left" % (n + 1))
    return overlapped


def body(t):
    s = krstack.Stack.from_env()

    with t.setup("setup: workspaces A and B, a workspace admin, member, viewer, outsider"):
        admin = admin_client(s)
        ws_a = create_workspace(admin)["slug"]
        ws_b = create_workspace(admin)["slug"]
        users = {}
        for role in ("wadmin", "member", "viewer", "outsider", "newbie"):
            users[role] = create_user(admin, name="Members " + role)
        add_member(admin, ws_a, users["wadmin"][1], "admin")
        add_member(admin, ws_a, users["member"][1], "member")
        add_member(admin, ws_a, users["viewer"][1], "viewer")
        add_member(admin, ws_b, users["outsider"][1], "member")
        cl = {k: user_client(s, v[1], v[2])
              for k, v in users.items() if k != "newbie"}
    wadmin, member, viewer, outsider = cl["wadmin"], cl["member"], cl["viewer"], cl["outsider"]
    newbie_user, newbie_email, newbie_pw = users["newbie"]
    newbie_id = newbie_user["id"]
    base_a = "/api/workspaces/%s/members" % ws_a

    # -- the workspace admin manages members ------------------------------------------------
    with t("GET members: {members:[...]} with email and role of each"):
        got = members_of(wadmin, ws_a)
        for who, role in (("wadmin", "admin"), ("member", "member"), ("viewer", "viewer")):
            m = got.get(users[who][1])
            true(m is not None, "%s missing from members" % who)
            eq(m.get("role"), role, "role of %s" % who)
            eq(member_id(m), users[who][0]["id"], "user id of %s" % who)
        eq(got.get(s.admin_email, {}).get("role"), "admin", "creator's role")
        true(users["outsider"][1] not in got, "a member of B is listed in A")

    with t("workspace admin POST members {email, role}: 201 member object"):
        r = wadmin.post(base_a, json={"email": newbie_email, "role": "member"})
        expect(201, r)
        eq(r.json.get("email"), newbie_email, "email")
        eq(r.json.get("role"), "member", "role")
        eq(member_id(r.json), newbie_id, "user id")

    with t("the added user sees the workspace with role member"):
        nc = user_client(s, newbie_email, newbie_pw)
        r = nc.get("/api/workspaces")
        expect(200, r)
        eq([(w.get("slug"), w.get("role")) for w in r.json["workspaces"]], [(ws_a, "member")],
           "workspaces of the new member")
        expect(200, nc.get(base_a), "new member reads members")

    with t("adding the same user again: 409 conflict"):
        expect_error(wadmin.post(base_a, json={"email": newbie_email, "role": "viewer"}),
                     409, "conflict")
        eq(members_of(wadmin, ws_a)[newbie_email].get("role"), "member", "role unchanged")

    with t("adding with an invalid role: 422 field role"):
        _, e, _ = create_user(admin)
        expect_error(wadmin.post(base_a, json={"email": e, "role": "owner"}),
                     422, "validation_failed", field="role")
        true(e not in members_of(wadmin, ws_a), "added despite 422")

    with t("adding an e-mail with no user: 404 or 422, error shape, nobody added"):
        ghost = unique_email("ghost")
        r = wadmin.post(base_a, json={"email": ghost, "role": "member"})
        true(r.status in (404, 422), "expected 404 or 422, got %s" % r.describe())
        expect_error(r, r.status, "not_found" if r.status == 404 else "validation_failed")
        true(ghost not in members_of(wadmin, ws_a), "ghost added")

    with t("PATCH members/{userId} {role: viewer}: 200 with the new role"):
        r = wadmin.patch("%s/%s" % (base_a, newbie_id), json={"role": "viewer"})
        expect(200, r)
        eq(r.json.get("role"), "viewer", "role in answer")
        eq(members_of(wadmin, ws_a)[newbie_email].get("role"), "viewer", "role in list")

    with t("the role change takes effect on the member's next request"):
        r = nc.get("/api/workspaces")
        expect(200, r)
        eq([w.get("role") for w in r.json["workspaces"]], ["viewer"], "role seen by the member")

    with t("PATCH with an invalid role: 422 field role"):
        expect_error(wadmin.patch("%s/%s" % (base_a, newbie_id), json={"role": "root"}),
                     422, "validation_failed", field="role")

    with t("PATCH of a member of another workspace: 404 not_found, B unchanged"):
        oid = users["outsider"][0]["id"]
        expect_error(wadmin.patch("%s/%s" % (base_a, oid), json={"role": "admin"}),
                     404, "not_found")
        eq(members_of(admin, ws_b)[users["outsider"][1]].get("role"), "member", "role in B")

    with t("DELETE members/{userId}: 204, gone from the list"):
        r = wadmin.delete("%s/%s" % (base_a, newbie_id))
        expect(204, r)
        eq(r.raw, b"", "204 body")
        true(newbie_email not in members_of(wadmin, ws_a), "still listed")

    with t("a removed member loses access on the next request (404), keeps their account"):
        expect_error(nc.get(base_a), 404, "not_found")
        r = nc.get("/api/workspaces")
        expect(200, r)
        eq(r.json["workspaces"], [], "workspaces after removal")

    with t("PATCH and DELETE of a removed member: 404 not_found"):
        expect_error(wadmin.patch("%s/%s" % (base_a, newbie_id), json={"role": "admin"}),
                     404, "not_found", what="PATCH")
        expect_error(wadmin.delete("%s/%s" % (base_a, newbie_id)), 404, "not_found",
                     what="DELETE")

    # -- members and viewers cannot --------------------------------------------------------
    with t("member reads the member list: 200"):
        true(users["member"][1] in members_of(member, ws_a), "member not listed")

    with t("member (not admin) POST members: 403 forbidden, nobody added"):
        expect_error(member.post(base_a, json={"email": newbie_email, "role": "member"}),
                     403, "forbidden")
        true(newbie_email not in members_of(wadmin, ws_a), "added by a member")

    with t("member PATCH of their own role to admin: 403, role unchanged"):
        mid = users["member"][0]["id"]
        expect_error(member.patch("%s/%s" % (base_a, mid), json={"role": "admin"}),
                     403, "forbidden")
        eq(members_of(wadmin, ws_a)[users["member"][1]].get("role"), "member", "role")

    with t("member DELETE of another member: 403, still a member"):
        vid = users["viewer"][0]["id"]
        expect_error(member.delete("%s/%s" % (base_a, vid)), 403, "forbidden")
        true(users["viewer"][1] in members_of(wadmin, ws_a), "viewer removed by a member")

    with t("viewer reads the member list: 200"):
        true(users["viewer"][1] in members_of(viewer, ws_a), "viewer not listed")

    with t("viewer write POST members: 403 forbidden"):
        expect_error(viewer.post(base_a, json={"email": newbie_email, "role": "viewer"}),
                     403, "forbidden")
        true(newbie_email not in members_of(wadmin, ws_a), "added by a viewer")

    with t("viewer write PATCH of their own role: 403, role unchanged"):
        vid = users["viewer"][0]["id"]
        expect_error(viewer.patch("%s/%s" % (base_a, vid), json={"role": "admin"}),
                     403, "forbidden")
        eq(members_of(wadmin, ws_a)[users["viewer"][1]].get("role"), "viewer", "role")

    with t("viewer write POST tokens: 403 forbidden"):
        expect_error(viewer.post("/api/workspaces/%s/tokens" % ws_a,
                                 json={"name": "v", "role": "viewer"}), 403, "forbidden")

    with t("viewer write DELETE member: 403 forbidden"):
        mid = users["member"][0]["id"]
        expect_error(viewer.delete("%s/%s" % (base_a, mid)), 403, "forbidden")

    # -- a workspace keeps at least one admin ------------------------------------------------
    with t("the only admin demotes or removes themself: 409 conflict, still admin"):
        ws, pair = admins_only_workspace(s, admin, 2)
        (a_id, a_email, a), (b_id, _, _) = pair
        bb = "/api/workspaces/%s/members" % ws
        expect(204, a.delete("%s/%s" % (bb, b_id)), "removing the other admin")
        for what, r in (("PATCH", a.patch("%s/%s" % (bb, a_id), json={"role": "member"})),
                        ("DELETE", a.delete("%s/%s" % (bb, a_id)))):
            err = expect_error(r, 409, "conflict", field=None, what=what)
            eq(err["message"], "a workspace keeps at least one admin", "%s message" % what)
        eq(admins_of(admin, ws), [a_email], "admins")
        expect(200, a.patch("%s/%s" % (bb, a_id), json={"role": "admin"}),
               "the only admin PATCHes themself to admin")

    with t("two admins demote each other at the same moment, %d rounds: one 200, the other "
           "409 (or 403 after), one admin left" % RACE_ROUNDS):
        n = race_each_other(s, admin, lambda c, p: c.patch(p, json={"role": "viewer"}),
                            200, 403)
        print("# PATCH race: %d of %d rounds overlapped (409)" % (n, RACE_ROUNDS), flush=True)

    with t("two admins remove each other at the same moment, %d rounds: one 204, the other "
           "409 (or 404 after), one admin left" % RACE_ROUNDS):
        n = race_each_other(s, admin, lambda c, p: c.delete(p), 204, 404)
        print("# DELETE race: %d of %d rounds overlapped (409)" % (n, RACE_ROUNDS), flush=True)

    # -- another workspace answers like a nonexistent one ---------------------------------------
    ghost_ws = unique_slug("nows")
    slugs = (ws_a, ghost_ws)
    with t("outsider GET A/members: 404 not_found"):
        expect_error(outsider.get(base_a), 404, "not_found")

    with t("outsider GET A/members answers exactly like a nonexistent workspace"):
        a = outsider.get(base_a)
        b = outsider.get("/api/workspaces/%s/members" % ghost_ws)
        same_answer(a, b, slugs)

    with t("outsider POST A/members answers exactly like a nonexistent workspace"):
        body_ = {"email": users["outsider"][1], "role": "admin"}
        a = outsider.post(base_a, json=body_)
        b = outsider.post("/api/workspaces/%s/members" % ghost_ws, json=body_)
        expect_error(a, 404, "not_found")
        same_answer(a, b, slugs)
        true(users["outsider"][1] not in members_of(wadmin, ws_a), "outsider added themself")

    with t("outsider PATCH A/members/{id} answers exactly like a nonexistent workspace"):
        mid = users["member"][0]["id"]
        a = outsider.patch("%s/%s" % (base_a, mid), json={"role": "viewer"})
        b = outsider.patch("/api/workspaces/%s/members/%s" % (ghost_ws, mid),
                           json={"role": "viewer"})
        expect_error(a, 404, "not_found")
        same_answer(a, b, slugs)
        eq(members_of(wadmin, ws_a)[users["member"][1]].get("role"), "member", "role")

    with t("outsider GET A/tokens answers exactly like a nonexistent workspace"):
        a = outsider.get("/api/workspaces/%s/tokens" % ws_a)
        b = outsider.get("/api/workspaces/%s/tokens" % ghost_ws)
        expect_error(a, 404, "not_found")
        same_answer(a, b, slugs)

    with t("GET members pages by membership, newest first; cursor userId; 422 for bad ones"):
        new_ids = []
        for i in range(3):
            u = create_user(admin, name="Pager %d" % i)
            add_member(admin, ws_a, u[1], "viewer")
            new_ids.append(u[0]["id"])
        check_pages(viewer, base_a, "members", "userId", new_ids,
                    foreign_id=users["outsider"][0]["id"])


if __name__ == "__main__":
    run("members", body)
