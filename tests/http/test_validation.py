#!/usr/bin/env python3
"""Input validation and error answers: invalid JSON, wrong types, content types, body size,
methods, unknown paths, strings stored verbatim, and the exact error shape everywhere.

Runs against the shared stack ($KEYRELAY_TEST_STACK); creates its own users and workspaces.
"""
import json
import os
import socket
import sys
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import krstack  # noqa: E402
from krclient import (CheckError, Client, all_pages, create_workspace, eq,  # noqa: E402
                      error_shape_problems, expect, expect_error, random_password, run,
                      true, unique_email, unique_slug, user_client)

MIB = 1024 * 1024

TRICKY = [
    ("SQL fragment", "'); DROP TABLE users; --"),
    ("quote, backslash, e-acute, emoji", "\"\\\u00e9\U0001F4A5"),
    ("literal backslash-u escape text", "\"\\\\\\u00e9\U0001F4A5"),
    ("SQL with quotes", "Robert'); DELETE FROM workspaces WHERE '1'='1"),
    ("format directives", "%s%s%s %n %x %p {0} ${x}"),
    ("markup and CJK", "<b>&amp;</b> \u65e5\u672c\u8a9e \u00fcn\u00efc\u00f8d\u00e9"),
    ("many emoji", "\U0001F600\U0001F680\U0001F4A9" * 16),
]


class RecordingClient(Client):
    """Keeps every error answer (status >= 400) for the final shape check."""
    errors = []

    def request(self, *a, **kw):
        r = super().request(*a, **kw)
        if r.status >= 400:
            RecordingClient.errors.append(r)
        return r


def rec_admin(s):
    c = RecordingClient(s.base_url)
    expect(200, c.login(s.admin_email, s.admin_password), "admin login")
    return c


def raw_http(base, request):
    """Send request (bytes) as it is to nginx; answer (status, headers dict, body bytes)."""
    u = urllib.parse.urlsplit(base)
    out = b""
    with socket.create_connection((u.hostname, u.port), timeout=10) as sk:
        sk.sendall(request)
        while True:
            b = sk.recv(65536)
            if not b:
                break
            out += b
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs.setdefault(k.strip().lower(), []).append(v.strip())
    return int(lines[0].split()[1]), hdrs, body


def ws_names(client):
    return {w["slug"]: w["name"] for w in all_pages(client, "/api/workspaces", "workspaces")}


def body(t):
    s = krstack.Stack.from_env()
    base = s.base_url

    with t.setup("setup: admin session and a workspace"):
        admin = rec_admin(s)
        ws = create_workspace(admin)["slug"]       # the creator is its admin
    anon = RecordingClient(base)

    # -- invalid JSON ---------------------------------------------------------------------------
    bad_json = [
        ("truncated object", b'{"slug": "x", "name": '),
        ("trailing garbage", b'{"slug": "x", "name": "y"} xyz'),
        ("single quotes", b"{'slug': 'x'}"),
        ("invalid UTF-8", b'{"slug": "' + unique_slug("u8").encode() + b'", "name": "\xff\xfe"}'),
    ]
    for label, raw in bad_json:
        with t("invalid JSON (%s) on POST /api/workspaces: 400 invalid_json" % label):
            r = admin.post("/api/workspaces", body=raw, content_type="application/json")
            expect_error(r, 400, "invalid_json")

    with t("empty body declared as JSON on POST /api/workspaces: 400 invalid_json or 422"):
        # An empty body is not JSON, but a server may read it as "no fields" (422 slug).
        r = admin.post("/api/workspaces", body=b"", content_type="application/json")
        true(r.status in (400, 422), "expected 400/422, got %s" % r.describe())
        expect_error(r, r.status, "invalid_json" if r.status == 400 else "validation_failed")

    with t("invalid JSON on POST /api/auth/login (no session): 400 invalid_json"):
        expect_error(anon.post("/api/auth/login", body=b'{"email":', content_type="application/json"),
                     400, "invalid_json")

    with t("deeply nested JSON: 400, and the service still answers"):
        r = admin.post("/api/workspaces", body=b"[" * 200000 + b"]" * 200000,
                       content_type="application/json")
        true(r.status in (400, 422), "expected 400/422, got %s" % r.describe())
        expect_error(r, r.status, "invalid_json" if r.status == 400 else "validation_failed")
        expect(200, Client(base).get("/healthz"), "healthz afterwards")

    with t("a JSON array instead of an object: 400 or 422, error shape"):
        r = admin.post("/api/workspaces", json=[{"slug": unique_slug(), "name": "x"}])
        true(r.status in (400, 422), "expected 400/422, got %s" % r.describe())
        true(not error_shape_problems(r), "shape: %s" % error_shape_problems(r))

    # -- wrong types ----------------------------------------------------------------------------
    with t('wrong type "name": 5 on POST /api/workspaces: 422 field name, nothing created'):
        sl = unique_slug("typ")
        expect_error(admin.post("/api/workspaces", json={"slug": sl, "name": 5}),
                     422, "validation_failed", field="name")
        true(sl not in ws_names(admin), "workspace created despite 422")

    with t('wrong type "slug": null: 422 field slug'):
        expect_error(admin.post("/api/workspaces", json={"slug": None, "name": "x"}),
                     422, "validation_failed", field="slug")

    with t('wrong type "isInstanceAdmin": "yes" on POST /api/users: 422 field isInstanceAdmin'):
        em = unique_email("typ")
        expect_error(admin.post("/api/users", json={"email": em, "name": "x",
                                                    "password": random_password(),
                                                    "isInstanceAdmin": "yes"}),
                     422, "validation_failed", field="isInstanceAdmin")
        r = admin.get_all("/api/users", "users")
        expect(200, r)
        eq([u for u in r.json["users"] if u.get("email") == em], [], "user created despite 422")

    with t('wrong type "isInstanceAdmin": 1: 422 field isInstanceAdmin'):
        expect_error(admin.post("/api/users", json={"email": unique_email("typ"), "name": "x",
                                                    "password": random_password(),
                                                    "isInstanceAdmin": 1}),
                     422, "validation_failed", field="isInstanceAdmin")

    with t('wrong type "password": 123456789012345: 422 field password'):
        expect_error(admin.post("/api/users", json={"email": unique_email("typ"), "name": "x",
                                                    "password": 123456789012345}),
                     422, "validation_failed", field="password")

    with t('wrong type token "name": ["x"]: 422 field name'):
        expect_error(admin.post("/api/workspaces/%s/tokens" % ws,
                                json={"name": ["x"], "role": "viewer"}),
                     422, "validation_failed", field="name")

    with t('wrong type member "role": 1: 422 field role'):
        expect_error(admin.post("/api/workspaces/%s/members" % ws,
                                json={"email": s.admin_email, "role": 1}),
                     422, "validation_failed", field="role")

    with t('wrong type member "email": {}: 422 field email'):
        expect_error(admin.post("/api/workspaces/%s/members" % ws,
                                json={"email": {}, "role": "viewer"}),
                     422, "validation_failed", field="email")

    with t("unknown fields are ignored: 201"):
        sl = unique_slug("unk")
        r = admin.post("/api/workspaces", json={"slug": sl, "name": "Unknown", "color": "red",
                                                "nested": {"a": [1, 2]}})
        expect(201, r)
        eq(r.json.get("slug"), sl, "slug")

    # -- content types ----------------------------------------------------------------------------
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                  None):
        with t("POST /api/workspaces with Content-Type %s: 415 unsupported_media_type" % ctype):
            sl = unique_slug("ct")
            raw = json.dumps({"slug": sl, "name": "ct"})
            r = admin.post("/api/workspaces", body=raw, content_type=ctype)
            expect_error(r, 415, "unsupported_media_type")
            true(sl not in ws_names(admin), "workspace created despite 415")

    with t("POST /api/auth/login with Content-Type text/plain: 415"):
        raw = json.dumps({"email": s.admin_email, "password": s.admin_password})
        r = anon.post("/api/auth/login", body=raw, content_type="text/plain")
        expect_error(r, 415, "unsupported_media_type")
        eq(r.header_all("Set-Cookie"), [], "Set-Cookie on a refused login")

    with t("Content-Type application/json; charset=utf-8 is accepted: 201"):
        sl = unique_slug("cs")
        r = admin.post("/api/workspaces", body=json.dumps({"slug": sl, "name": "charset"}),
                       content_type="application/json; charset=utf-8")
        expect(201, r)

    # -- body size ----------------------------------------------------------------------------
    def sized(total, slug):
        head = '{"slug": "%s", "name": "size", "pad": "' % slug
        tail = '"}'
        n = total - len(head) - len(tail)
        raw = (head + "a" * n + tail).encode()
        assert len(raw) == total
        return raw

    with t("body of exactly 1 MiB is accepted (unknown field ignored): 201"):
        sl = unique_slug("mib")
        r = admin.post("/api/workspaces", body=sized(MIB, sl), content_type="application/json")
        expect(201, r)

    with t("body of 1 MiB + 1 byte: 413 payload_too_large with the JSON error shape"):
        sl = unique_slug("big")
        r = admin.post("/api/workspaces", body=sized(MIB + 1, sl),
                       content_type="application/json")
        expect_error(r, 413, "payload_too_large")
        true(sl not in ws_names(admin), "workspace created from an oversized body")

    with t("body of 3 MiB: 413 payload_too_large with the JSON error shape"):
        r = admin.post("/api/workspaces", body=sized(3 * MIB, unique_slug("big")),
                       content_type="application/json")
        expect_error(r, 413, "payload_too_large")

    # -- what nginx refuses itself ---------------------------------------------------------------
    refused = [
        ("a request line over 8 KB", b"GET /api/" + b"a" * 9000 + b" HTTP/1.1\r\n"
         b"Host: localhost\r\nConnection: close\r\n\r\n", 400, "bad_request"),
        ("a 20 KB header", b"GET /api/workspaces HTTP/1.1\r\nHost: localhost\r\nX-Big: "
         + b"b" * 20000 + b"\r\nConnection: close\r\n\r\n", 400, "bad_request"),
        ("Transfer-Encoding: gzip", b"POST /api/workspaces HTTP/1.1\r\nHost: localhost\r\n"
         b"Transfer-Encoding: gzip\r\nConnection: close\r\n\r\n", 400, "bad_request"),
        ("a bad escape in the path", b"GET /api/%zz HTTP/1.1\r\nHost: localhost\r\n"
         b"Connection: close\r\n\r\n", 400, "bad_request"),
        ("a request line that is not HTTP", b"GARBAGE\r\n\r\n", 400, "bad_request"),
        ("a path outside the API and the pages", b"GET /no/such/file HTTP/1.1\r\n"
         b"Host: localhost\r\nConnection: close\r\n\r\n", 404, "not_found"),
        ("a declared body of 2 MB", b"POST /api/workspaces HTTP/1.1\r\nHost: localhost\r\n"
         b"Content-Type: application/json\r\nContent-Length: 2000000\r\n"
         b"Connection: close\r\n\r\n", 413, "payload_too_large"),
    ]
    for what, req, status, code in refused:
        with t("%s (nginx answers): %d %s in the JSON error shape, Cache-Control: no-store"
               % (what, status, code)):
            st, hdrs, raw = raw_http(base, req)
            eq(st, status, "status")
            eq(hdrs.get("content-type"), ["application/json"], "Content-Type")
            eq(hdrs.get("cache-control"), ["no-store"], "Cache-Control")
            eq(json.loads(raw.decode("utf-8"))["error"]["code"], code, "error code")

    for path, want in (("/", "no-store"), ("/index.html", "no-store"),
                       ("/app/main.js", "no-cache")):
        with t("admin pages: GET %s carries one Cache-Control, %s" % (path, want)):
            st, hdrs, _ = raw_http(base, b"GET " + path.encode() + b" HTTP/1.1\r\n"
                                   b"Host: localhost\r\nConnection: close\r\n\r\n")
            eq(st, 200, "status")
            eq(hdrs.get("cache-control"), [want], "Cache-Control")

    with t("the service still answers after oversized bodies"):
        expect(200, admin.get("/api/workspaces"))

    # -- methods and paths -------------------------------------------------------------------------
    wrong_methods = [
        ("PUT", "/api/users"),
        ("DELETE", "/api/workspaces"),
        ("PATCH", "/api/workspaces"),
        ("GET", "/api/auth/login"),
        ("PUT", "/api/workspaces/%s/members" % ws),
        ("PATCH", "/api/workspaces/%s/tokens" % ws),
        ("GET", "/api/auth/logout"),
    ]
    for method, path in wrong_methods:
        with t("%s %s: 405 method_not_allowed" % (method, path.replace(ws, "{ws}"))):
            kw = {"json": {}} if method in ("PUT", "PATCH") else {}
            r = admin.request(method, path, **kw)
            expect_error(r, 405, "method_not_allowed")

    with t("405 answers carry an Allow header naming the allowed methods"):
        r = admin.request("PUT", "/api/users", json={})
        expect(405, r)
        allow = [m.strip().upper() for m in (r.header("Allow") or "").split(",") if m.strip()]
        true("GET" in allow and "POST" in allow, "Allow: %r" % r.header("Allow"))

    for method, path in [("GET", "/api/nope"), ("POST", "/api/nope"),
                         ("GET", "/api/workspaces/%s/nope" % ws),
                         ("GET", "/api/users/x/y/z"),
                         ("GET", "/api/auth"),
                         ("GET", "/api/workspacesx")]:
        with t("%s %s: 404 not_found" % (method, path.replace(ws, "{ws}"))):
            kw = {"json": {}} if method == "POST" else {}
            expect_error(admin.request(method, path, **kw), 404, "not_found")

    # -- strings stored verbatim --------------------------------------------------------------------
    for label, val in TRICKY:
        for ascii_only in (False, True):
            enc = "\\u escapes" if ascii_only else "raw UTF-8"
            with t("workspace name (%s, %s) stored and returned verbatim" % (label, enc)):
                sl = unique_slug("vb")
                r = admin.post("/api/workspaces", json={"slug": sl, "name": val},
                               ensure_ascii=ascii_only)
                expect(201, r)
                eq(r.json.get("name"), val, "name in the 201 answer")
                eq(ws_names(admin).get(sl), val, "name in GET /api/workspaces")
                true(r.is_json(), "Content-Type %r" % r.content_type)

    for label, val in TRICKY:
        with t("user name (%s) stored and returned verbatim" % label):
            em = unique_email("vb")
            pw = random_password()
            r = admin.post("/api/users", json={"email": em, "name": val, "password": pw})
            expect(201, r)
            eq(r.json.get("name"), val, "name in the 201 answer")
            lst = admin.get_all("/api/users", "users")
            expect(200, lst)
            eq([u.get("name") for u in lst.json["users"] if u.get("email") == em], [val],
               "name in GET /api/users")
            if label == TRICKY[0][0]:
                uc = user_client(s, em, pw)
                eq(uc.user.get("name"), val, "name in the login answer")

    for label, val in TRICKY:
        with t("token name (%s) stored and returned verbatim" % label):
            r = admin.post("/api/workspaces/%s/tokens" % ws, json={"name": val, "role": "viewer"})
            expect(201, r)
            eq(r.json.get("name"), val, "name in the 201 answer")
            tid = r.json.get("id")
            lst = admin.get("/api/workspaces/%s/tokens" % ws)
            expect(200, lst)
            eq([x.get("name") for x in lst.json["tokens"] if x.get("id") == tid], [val],
               "name in GET tokens")

    with t("a name with a NUL character: refused (422) or stored whole, never cut"):
        val = "before\u0000after"
        sl = unique_slug("nul")
        r = admin.post("/api/workspaces", json={"slug": sl, "name": val})
        if r.status == 201:
            eq(r.json.get("name"), val, "name in the 201 answer")
            eq(ws_names(admin).get(sl), val, "name in GET /api/workspaces")
        else:
            expect_error(r, 422, "validation_failed", field="name")

    with t("SQL fragment as login e-mail and password: 401 unauthorized"):
        r = anon.post("/api/auth/login", json={"email": "' OR '1'='1' -- ",
                                               "password": "' OR '1'='1' -- pad"})
        expect_error(r, 401, "unauthorized")

    with t("after all that, the users table is intact: GET /api/users lists the admin"):
        r = admin.get_all("/api/users", "users")
        expect(200, r)
        true(any(u.get("email") == s.admin_email for u in r.json["users"]), r.describe())

    # -- success answers -------------------------------------------------------------------------
    with t("success answers are application/json"):
        for path in ("/api/workspaces", "/api/auth/me", "/api/users",
                     "/api/workspaces/%s/tokens" % ws):
            r = admin.get(path)
            expect(200, r)
            true(r.is_json(), "%s: Content-Type %r" % (path, r.content_type))

    # -- every error answer ---------------------------------------------------------------------------
    with t("every error answer of this test had exactly {error:{code,message[,field]}}, JSON"):
        bad = []
        for r in RecordingClient.errors:
            p = error_shape_problems(r)
            if p:
                bad.append("%s %s -> %d: %s" % (r.method, r.path.replace(ws, "{ws}"), r.status,
                                                "; ".join(p)))
        true(len(RecordingClient.errors) >= 30, "only %d error answers recorded"
             % len(RecordingClient.errors))
        if bad:
            raise CheckError("%d of %d: %s" % (len(bad), len(RecordingClient.errors),
                                               " || ".join(bad[:10])))


if __name__ == "__main__":
    run("validation", body)
