#!/usr/bin/env python3
"""Workspaces: GET lists only the caller's with role, newest first and paged (a token: its own
workspace); POST by instance admin (slug rules, duplicates); non-admin
refused; DELETE then 404.

Runs against the shared stack ($KEYRELAY_TEST_STACK); creates its own users and workspaces.
"""
import os
import secrets
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import krstack  # noqa: E402
from krclient import (Client, add_member, admin_client, all_pages,  # noqa: E402
                      check_pages, create_user, create_workspace, eq, expect, expect_error,
                      expect_time, run, true, unique_slug, user_client)


def listed(resp):
    wss = resp.json["workspaces"]
    true(isinstance(wss, list), "workspaces is not a list: %s" % resp.describe())
    return {w.get("slug"): w for w in wss}


def listed_all(client):
    """Every workspace of the caller (the shared stack's admin has many), by slug."""
    return {w.get("slug"): w for w in all_pages(client, "/api/workspaces", "workspaces")}


def body(t):
    s = krstack.Stack.from_env()
    base = s.base_url

    with t.setup("setup: admin, two workspaces, a member of one of them"):
        admin = admin_client(s)
        ws_a = create_workspace(admin, name="Alpha")
        ws_b = create_workspace(admin, name="Beta")
        ws_c = create_workspace(admin, name="Gamma")
        _, email, password = create_user(admin)
        add_member(admin, ws_a["slug"], email, "member")
        add_member(admin, ws_c["slug"], email, "viewer")
        uc = user_client(s, email, password)

    # -- listing ----------------------------------------------------------------------------
    with t("GET /api/workspaces lists exactly the caller's workspaces, each with its role"):
        r = uc.get("/api/workspaces")
        expect(200, r)
        got = listed(r)
        eq(sorted(got), sorted([ws_a["slug"], ws_c["slug"]]), "slugs listed")
        eq(got[ws_a["slug"]].get("role"), "member", "role in A")
        eq(got[ws_c["slug"]].get("role"), "viewer", "role in C")
        eq(got[ws_a["slug"]].get("name"), "Alpha", "name of A")

    with t("workspace list entries carry slug, name, role, createdAt (RFC 3339 UTC)"):
        r = uc.get("/api/workspaces")
        expect(200, r)
        for w in r.json["workspaces"]:
            for k in ("slug", "name", "role", "createdAt"):
                true(k in w, "entry lacks %r: %r" % (k, w))
            expect_time(w["createdAt"], "createdAt")

    with t("a user in no workspace gets {workspaces: []}"):
        _, e2, p2 = create_user(admin)
        r = user_client(s, e2, p2).get("/api/workspaces")
        expect(200, r)
        eq(r.json, {"workspaces": [], "nextCursor": None}, "answer")

    with t("GET /api/workspaces without authentication: 401 unauthorized"):
        expect_error(Client(base).get("/api/workspaces"), 401, "unauthorized")

    with t("GET /api/workspaces pages newest first (?limit, ?before, nextCursor); a bad "
           "limit or cursor is 422"):
        _, e4, p4 = create_user(admin)
        tag = secrets.token_hex(3)
        made = []
        for i in range(5):     # slugs rise with creation: a tie on createdAt sorts the same
            w = create_workspace(admin, slug="pg-%s-%d" % (tag, i))
            add_member(admin, w["slug"], e4, "viewer")
            made.append(w["slug"])
        check_pages(user_client(s, e4, p4), "/api/workspaces", "workspaces", "slug", made,
                    foreign_id=ws_b["slug"])

    with t("GET /api/workspaces with an API token: its own workspace alone, with the "
           "token's role"):
        r = admin.post("/api/workspaces/%s/tokens" % ws_b["slug"],
                       json={"name": "lister", "role": "member"})
        expect(201, r)
        r = Client(base, bearer=r.json["secret"]).get("/api/workspaces")
        expect(200, r)
        eq([(w["slug"], w["role"]) for w in r.json["workspaces"]], [(ws_b["slug"], "member")],
           "workspaces")
        eq(r.json["nextCursor"], None, "nextCursor")

    # -- create ---------------------------------------------------------------------------------
    slug = unique_slug("wsnew")
    with t("POST /api/workspaces by the instance admin: 201 workspace object"):
        r = admin.post("/api/workspaces", json={"slug": slug, "name": "New One"})
        expect(201, r)
        eq(r.json.get("slug"), slug, "slug")
        eq(r.json.get("name"), "New One", "name")
        expect_time(r.json.get("createdAt"), "createdAt")

    with t("the creator is the new workspace's admin"):
        got = listed_all(admin)
        true(slug in got, "new workspace not in the creator's list")
        eq(got[slug].get("role"), "admin", "creator's role")
        m = admin.get("/api/workspaces/%s/members" % slug)
        expect(200, m)
        mine = [x for x in m.json["members"] if x.get("email") == s.admin_email]
        eq([x.get("role") for x in mine], ["admin"], "creator's membership")

    with t("the new workspace is not in another user's list"):
        r = uc.get("/api/workspaces")
        expect(200, r)
        true(slug not in listed(r), "foreign workspace listed")

    bad_slugs = [
        ("upper case", "Bad" + secrets.token_hex(3)),
        ("leading hyphen", "-" + secrets.token_hex(3)),
        ("underscore", "a_" + secrets.token_hex(3)),
        ("space", "a " + secrets.token_hex(3)),
        ("dot", "a." + secrets.token_hex(3)),
        ("slash", "a/" + secrets.token_hex(3)),
        ("non-ASCII", "\u00e9" + secrets.token_hex(3)),
        ("empty", ""),
        ("64 characters", "a" + secrets.token_hex(3) + "b" * 57),
    ]
    for label, bad in bad_slugs:
        with t("slug %s (%r): 422 field slug" % (label, bad[:20])):
            expect_error(admin.post("/api/workspaces", json={"slug": bad, "name": "x"}),
                         422, "validation_failed", field="slug")

    with t("slug of 63 characters: 201"):
        long_slug = ("z" + secrets.token_hex(4) + "-" * 10 + "9" * 52)[:63]
        eq(len(long_slug), 63, "length")
        r = admin.post("/api/workspaces", json={"slug": long_slug, "name": "Long"})
        expect(201, r)
        eq(r.json.get("slug"), long_slug, "slug")

    with t("slug starting with a digit: 201"):
        expect(201, admin.post("/api/workspaces",
                               json={"slug": "7" + secrets.token_hex(4), "name": "Digit"}))

    with t("missing slug: 422 field slug"):
        expect_error(admin.post("/api/workspaces", json={"name": "x"}),
                     422, "validation_failed", field="slug")

    with t("missing name: 422 field name"):
        expect_error(admin.post("/api/workspaces", json={"slug": unique_slug("noname")}),
                     422, "validation_failed", field="name")

    with t("duplicate slug: 409 conflict, the original unchanged"):
        expect_error(admin.post("/api/workspaces", json={"slug": slug, "name": "Hijack"}),
                     409, "conflict")
        got = listed_all(admin)
        eq(got.get(slug, {}).get("name"), "New One", "name after the duplicate attempt")

    with t("non-admin POST /api/workspaces: 403 forbidden, nothing created"):
        s2 = unique_slug("nope")
        expect_error(uc.post("/api/workspaces", json={"slug": s2, "name": "x"}),
                     403, "forbidden")
        expect(201, admin.post("/api/workspaces", json={"slug": s2, "name": "proof"}),
               "the slug is still free")

    with t("workspace admin who is not an instance admin cannot DELETE it: 403"):
        _, e3, p3 = create_user(admin)
        add_member(admin, ws_b["slug"], e3, "admin")
        wadmin = user_client(s, e3, p3)
        expect_error(wadmin.delete("/api/workspaces/%s" % ws_b["slug"]), 403, "forbidden")
        expect(200, admin.get("/api/workspaces/%s/members" % ws_b["slug"]), "still there")

    # -- delete ---------------------------------------------------------------------------------
    with t("DELETE /api/workspaces/{ws}: 204, then its paths answer 404"):
        r = admin.delete("/api/workspaces/%s" % ws_a["slug"])
        expect(204, r)
        eq(r.raw, b"", "204 body")
        expect_error(admin.get("/api/workspaces/%s/members" % ws_a["slug"]), 404, "not_found")

    with t("a deleted workspace disappears from its members' lists"):
        r = uc.get("/api/workspaces")
        expect(200, r)
        eq(sorted(listed(r)), [ws_c["slug"]], "remaining slugs")

    with t("DELETE of the deleted workspace again: 404 not_found"):
        expect_error(admin.delete("/api/workspaces/%s" % ws_a["slug"]), 404, "not_found")

    with t("DELETE of a never-existing workspace: 404 not_found"):
        expect_error(admin.delete("/api/workspaces/%s" % unique_slug("never")), 404,
                     "not_found")


if __name__ == "__main__":
    run("workspaces", body)
