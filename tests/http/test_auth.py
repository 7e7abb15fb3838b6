#!/usr/bin/env python3
"""Authentication: login, session cookie, me, logout, CSRF, login throttling, secrets in logs.

Runs against the shared stack ($KEYRELAY_TEST_STACK); creates its own users and workspace.
The throttling checks of malformed e-mails, parallel guesses and the per-address limit send
from loopback addresses of their own (127.x.y.z, see FromClient): the limit per address
then counts only their own attempts, and the other tests' logins from 127.0.0.1 never meet it.
"""
import concurrent.futures
import hashlib
import http.client
import json
import os
import re
import secrets
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import krstack  # noqa: E402
from krclient import (Client, CheckError, add_member, admin_client, create_user,  # noqa: E402
                      create_workspace, eq, expect, expect_error, fcgi_request,
                      parse_set_cookie, run, true, unique_email)

# Defaults of the configuration (auth.login_max_failures, per e-mail, and
# auth.login_max_failures_per_address, in the window).
MAX_FAILURES = 5
MAX_PER_ADDRESS = 50
MAX_TRIES = 12
PARALLEL = 16       # wrong passwords sent at once for one e-mail


class FromClient(Client):
    """A Client whose connections leave from the loopback address addr, which nginx passes
    on as REMOTE_ADDR: a fresh address has a throttling count of its own."""

    def __init__(self, base_url, addr):
        super().__init__(base_url)
        self.addr = addr

    def _conn(self):
        return http.client.HTTPConnection(self._host, self._port, timeout=self.timeout,
                                          source_address=(self.addr, 0))


def fresh_address():
    """A loopback address other than 127.0.0.1, random so that runs do not share one."""
    b = secrets.token_bytes(3)
    return "127.%d.%d.%d" % (1 + b[0] % 254, b[1], 1 + b[2] % 254)


def stored_failures(s, key):
    """The failure count kept for a throttling key ("e:" + e-mail, "a:" + address); 0 when
    there is no row."""
    rows = s.sql("SELECT failures FROM login_failures WHERE key_hash = ?",
                 hashlib.sha256(key.encode("utf-8")).hexdigest())
    return int(rows[0][0]) if rows else 0


def fcgi_login(s, addr, email, password):
    """A login sent straight to keyrelay-fcgi with REMOTE_ADDR addr (nginx here listens on
    IPv4 only): answers the HTTP status."""
    body = json.dumps({"email": email, "password": password}).encode()
    out = fcgi_request(s.p("api.sock"), {
        "REQUEST_METHOD": "POST", "REQUEST_URI": "/api/auth/login",
        "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
        "HTTP_HOST": "localhost", "SERVER_PORT": "80", "REMOTE_ADDR": addr}, body)
    m = re.match(r"Status: (\d{3})", out)
    if not m:
        raise CheckError("login from %s: no Status line in %r" % (addr, out[:200]))
    return int(m.group(1))


def until_429(client, attempts, what):
    """Sends the logins (email, password) of attempts one by one until one is answered
    429; answers the statuses and the 401 messages. Anything but 401 or 429 fails."""
    statuses, messages = [], set()
    for i, (em, pw) in enumerate(attempts):
        r = client.login(em, pw)
        statuses.append(r.status)
        if r.status == 429:
            expect_error(r, 429, "rate_limited", what="%s, attempt %d" % (what, i + 1))
            break
        messages.add(expect_error(r, 401, "unauthorized",
                                  what="%s, attempt %d" % (what, i + 1))["message"])
    return statuses, messages


def kr_session_cookie(resp):
    """(value, attrs) of the kr_session Set-Cookie of resp; fails unless exactly one."""
    found = [parse_set_cookie(v) for v in resp.header_all("Set-Cookie")]
    found = [(val, attrs) for name, val, attrs in found if name == "kr_session"]
    if len(found) != 1:
        raise CheckError("expected one Set-Cookie kr_session, got %r"
                         % resp.header_all("Set-Cookie"))
    return found[0]


def body(t):
    s = krstack.Stack.from_env()
    base = s.base_url
    secrets_seen = [s.admin_password]       # must never show up in the logs

    with t.setup("setup: admin login, a workspace and a member user"):
        admin = admin_client(s)
        secrets_seen.append(admin.session)
        ws = create_workspace(admin)
        user, email, password = create_user(admin, name="Auth Tester")
        secrets_seen.append(password)
        add_member(admin, ws["slug"], email, "member")

    c = Client(base)
    with t("login answers 200"):
        r = c.login(email, password)
        expect(200, r)
        login = r.json
        secrets_seen.append(c.session)

    with t("login answer: user {id,email,name,isInstanceAdmin}"):
        u = login["user"]
        true(isinstance(u, dict), "user is not an object: %r" % (u,))
        for k in ("id", "email", "name", "isInstanceAdmin"):
            true(k in u, "user lacks %r: %r" % (k, u))
        eq(u["id"], user["id"], "user.id (same as from POST /api/users)")
        eq(u["email"], email, "user.email")
        eq(u["name"], "Auth Tester", "user.name")
        eq(u["isInstanceAdmin"], False, "user.isInstanceAdmin")
        leaked = [k for k in u if "password" in k.lower() or "hash" in k.lower()]
        eq(leaked, [], "password-like fields in user")

    with t("login answer: workspaces [{slug,name,role}] lists exactly the user's workspace"):
        wss = login["workspaces"]
        true(isinstance(wss, list), "workspaces is not a list: %r" % (wss,))
        eq(len(wss), 1, "number of workspaces")
        eq(wss[0].get("slug"), ws["slug"], "workspaces[0].slug")
        eq(wss[0].get("name"), ws["name"], "workspaces[0].name")
        eq(wss[0].get("role"), "member", "workspaces[0].role")

    with t("login answer: csrfToken is a non-empty string"):
        tok = login["csrfToken"]
        true(isinstance(tok, str) and len(tok) >= 16, "csrfToken %r" % (tok,))
        secrets_seen.append(tok)

    with t("login sets kr_session; HttpOnly; SameSite=Strict; Path=/"):
        val, attrs = kr_session_cookie(r)
        true(len(val) >= 32, "session id too short for 256 random bits: %r" % val)
        true(attrs.get("httponly") is True, "no HttpOnly: %r" % attrs)
        eq(str(attrs.get("samesite", "")).lower(), "strict", "SameSite")
        eq(attrs.get("path"), "/", "Path")

    with t("no Secure attribute on a plain-HTTP login"):
        val, attrs = kr_session_cookie(r)
        true("secure" not in attrs, "Secure set over plain HTTP: %r" % r.header_all("Set-Cookie"))

    with t("a second login gets a new session id and both sessions work"):
        c2 = Client(base)
        r2 = c2.login(email, password)
        expect(200, r2)
        secrets_seen.append(c2.session)
        true(c2.session and c2.session != c.session, "same session id twice: %r" % c2.session)
        true(r2.json["csrfToken"] != login["csrfToken"], "same csrfToken for two sessions")
        expect(200, c.get("/api/auth/me"), "first session")
        expect(200, c2.get("/api/auth/me"), "second session")

    # -- wrong credentials ------------------------------------------------------------------
    with t("wrong password and unknown e-mail: both 401 unauthorized, identical message"):
        _, email_w, password_w = create_user(admin)
        secrets_seen.append(password_w)
        wrong_pw = "wrong-" + password_w
        secrets_seen.append(wrong_pw)
        a = Client(base).login(email_w, wrong_pw)
        b = Client(base).login(unique_email("nobody"), wrong_pw)
        ea = expect_error(a, 401, "unauthorized", what="wrong password")
        eb = expect_error(b, 401, "unauthorized", what="unknown e-mail")
        eq(ea["message"], eb["message"], "messages of wrong password vs unknown e-mail")
        eq(a.header_all("Set-Cookie"), [], "Set-Cookie on failed login")
    wrong_message = ea["message"]

    with t("login without a password field: 422 (or 401), never 200"):
        r3 = Client(base).post("/api/auth/login", json={"email": email})
        true(r3.status in (401, 422), "got %s" % r3.describe())
        expect_error(r3, r3.status, {401: "unauthorized", 422: "validation_failed"}[r3.status])

    # -- me -----------------------------------------------------------------------------------
    with t("GET /api/auth/me answers like login, without Set-Cookie"):
        m = c.get("/api/auth/me")
        expect(200, m)
        eq(m.json.get("user"), login["user"], "me.user")
        eq(m.json.get("workspaces"), login["workspaces"], "me.workspaces")
        eq(m.header_all("Set-Cookie"), [], "Set-Cookie on me")

    with t("GET /api/auth/me carries the session's csrfToken"):
        m = c.get("/api/auth/me")
        expect(200, m)
        eq(m.json.get("csrfToken"), login["csrfToken"], "me.csrfToken")

    with t("GET /api/auth/me without a session: 401 unauthorized"):
        expect_error(Client(base).get("/api/auth/me"), 401, "unauthorized")

    with t("GET /api/auth/me with a made-up session id: 401 unauthorized"):
        fake = Client(base)
        fake.cookies["kr_session"] = "A" * 43
        expect_error(fake.get("/api/auth/me"), 401, "unauthorized")

    # -- CSRF ---------------------------------------------------------------------------------
    with t("cookie POST without X-CSRF-Token: 403 forbidden and nothing happens"):
        r4 = c.post("/api/auth/logout", csrf=None)
        expect_error(r4, 403, "forbidden")
        expect(200, c.get("/api/auth/me"), "session still alive after refused logout")

    with t("cookie POST with a wrong X-CSRF-Token: 403 forbidden"):
        right = login["csrfToken"]
        # One character changed (the token itself starts with "x" once in 64 logins).
        r5 = c.post("/api/auth/logout", csrf=("y" if right[0] == "x" else "x") + right[1:])
        expect_error(r5, 403, "forbidden")
        expect(200, c.get("/api/auth/me"), "session still alive after refused logout")

    with t("cookie POST with another session's X-CSRF-Token: 403 forbidden"):
        r6 = c.post("/api/auth/logout", csrf=c2.csrf_token)
        expect_error(r6, 403, "forbidden")
        expect(200, c.get("/api/auth/me"), "session still alive")

    with t("state change (admin POST tokens) without X-CSRF-Token: 403, token not created"):
        tname = "csrf-probe"
        r7 = admin.post("/api/workspaces/%s/tokens" % ws["slug"],
                        json={"name": tname, "role": "viewer"}, csrf=None)
        expect_error(r7, 403, "forbidden")
        lst = admin.get("/api/workspaces/%s/tokens" % ws["slug"])
        expect(200, lst)
        eq([x for x in lst.json["tokens"] if x.get("name") == tname], [], "tokens named csrf-probe")

    with t("state change (admin DELETE member) without X-CSRF-Token: 403"):
        r8 = admin.delete("/api/workspaces/%s/members/%s" % (ws["slug"], user["id"]), csrf=None)
        expect_error(r8, 403, "forbidden")
        mem = admin.get("/api/workspaces/%s/members" % ws["slug"])
        expect(200, mem)
        true(any(m.get("email") == email for m in mem.json["members"]),
             "member removed despite 403: %s" % mem.describe())

    # design.md: cookie writes also need no cross-site Sec-Fetch-Site and no foreign Origin.
    tok_path = "/api/workspaces/%s/tokens" % ws["slug"]
    for label, hdrs in (("Origin: http://evil.example", {"Origin": "http://evil.example"}),
                        ("Sec-Fetch-Site: cross-site", {"Sec-Fetch-Site": "cross-site"})):
        with t("cookie POST with the right CSRF token but %s: 403, nothing created" % label):
            tname = "xsite-" + label.split(":")[0].lower()
            rx = admin.post(tok_path, json={"name": tname, "role": "viewer"}, headers=hdrs)
            expect_error(rx, 403, "forbidden")
            lst = admin.get(tok_path)
            expect(200, lst)
            eq([x for x in lst.json["tokens"] if x.get("name") == tname], [], "tokens created")

    with t("cookie POST from its own origin (Origin = base URL, Sec-Fetch-Site: same-origin): 201"):
        rx = admin.post(tok_path, json={"name": "same-origin", "role": "viewer"},
                        headers={"Origin": base, "Sec-Fetch-Site": "same-origin"})
        expect(201, rx)
        secrets_seen.append(rx.json.get("secret"))

    # -- logout -------------------------------------------------------------------------------
    with t("logout with CSRF: 2xx; the old cookie is then 401 on me"):
        old = c.session
        r9 = c.logout()
        expect((200, 204), r9)
        stale = Client(base)
        stale.cookies["kr_session"] = old
        expect_error(stale.get("/api/auth/me"), 401, "unauthorized")

    with t("logout ends only its own session"):
        expect(200, c2.get("/api/auth/me"))

    # -- throttling ---------------------------------------------------------------------------
    with t("repeated wrong passwords for one e-mail end in 429 rate_limited"):
        _, email_t, password_t = create_user(admin)
        secrets_seen.append(password_t)
        statuses = []
        got = None
        for i in range(MAX_TRIES):
            bad = "bad-%d-%s" % (i, password_t)
            secrets_seen.append(bad)
            rr = Client(base).login(email_t, bad)
            statuses.append(rr.status)
            if rr.status == 429:
                got = rr
                break
            if rr.status != 401:
                raise CheckError("attempt %d: expected 401 or 429, got %s"
                                 % (i + 1, rr.describe()))
        true(got is not None, "no 429 after %d wrong passwords: %r" % (MAX_TRIES, statuses))
        expect_error(got, 429, "rate_limited")

    with t("the 429 comes right after login_max_failures (%d) failures" % MAX_FAILURES):
        true(len(statuses) == MAX_FAILURES + 1,
             "429 expected at attempt %d (login_max_failures=%d), came at attempt %d: %r"
             % (MAX_FAILURES + 1, MAX_FAILURES, len(statuses), statuses))

    with t("while throttled, the right password is refused with 429 too"):
        rr = Client(base).login(email_t, password_t)
        expect_error(rr, 429, "rate_limited")
        eq(rr.header_all("Set-Cookie"), [], "Set-Cookie while throttled")

    with t("throttling one e-mail does not lock out another user from the same address"):
        c3 = Client(base)
        expect(200, c3.login(email, password))
        secrets_seen.append(c3.session)

    # -- throttling: malformed e-mails, parallel guesses, the limit per address ---------------
    with t("one malformed e-mail, repeated from one address: %d x 401 like a wrong password, "
           "then 429" % MAX_FAILURES):
        junk = "zz-" + secrets.token_hex(4)         # no "@": kr_email_normalize refuses it
        cm = FromClient(base, fresh_address())
        statuses, messages = until_429(cm, [(junk, "bad-" + password_w)] * MAX_TRIES,
                                       "malformed e-mail %r" % junk)
        eq(messages, {wrong_message}, "401 messages (those of a wrong password)")
        eq(statuses, [401] * MAX_FAILURES + [429], "statuses")

    with t("malformed e-mails from one address: 429 right after "
           "login_max_failures_per_address (%d) failures" % MAX_PER_ADDRESS):
        addr = fresh_address()
        ca = FromClient(base, addr)
        tries = [("zz-%d-%s" % (i, secrets.token_hex(4)), "bad-" + password_w)
                 for i in range(MAX_PER_ADDRESS + 5)]
        statuses, messages = until_429(ca, tries, "malformed e-mails from %s" % addr)
        eq(messages, {wrong_message}, "401 messages (those of a wrong password)")
        eq(statuses, [401] * MAX_PER_ADDRESS + [429], "statuses")

    with t("that address is throttled for well-formed e-mails too, other addresses are not"):
        rr = ca.login(email, password)
        expect_error(rr, 429, "rate_limited", what="right password from %s" % addr)
        eq(rr.header_all("Set-Cookie"), [], "Set-Cookie while throttled")
        c4 = FromClient(base, fresh_address())
        expect(200, c4.login(email, password), "right password from another address")
        secrets_seen.append(c4.session)

    with t("IPv6 clients are counted by their /64: at the limit, another address of the "
           "same /64 gets 429, one of another /64 does not"):
        # no group 0, which the server writes "::" (the seeded key is its text)
        x, y = 1 + secrets.randbelow(0xfffe), 1 + secrets.randbelow(0xfffd)
        net, next_net = "2001:db8:%x:%x" % (x, y), "2001:db8:%x:%x" % (x, y + 1)
        s.sql("INSERT INTO login_failures (key_hash, failures, window_start) VALUES "
              "(?, ?, NOW(3))", hashlib.sha256(("a:%s::/64" % net).encode()).hexdigest(),
              MAX_PER_ADDRESS - 1)
        junk = "zz-" + secrets.token_hex(4)
        eq([fcgi_login(s, addr, junk, "bad") for addr in
            ("%s::1" % net, "%s:1:2:3:4" % net, "%s::1" % next_net)],
           [401, 429, 401], "the last failure allowed, then another address of the /64, "
           "then an address of the next /64")

    with t("%d wrong passwords at once for one e-mail: %d x 401, the rest 429, and the "
           "counts kept equal the 401s" % (PARALLEL, MAX_FAILURES)):
        _, email_p, password_p = create_user(admin)
        secrets_seen.append(password_p)
        addr = fresh_address()
        start = threading.Barrier(PARALLEL)

        def guess(i):
            cp = FromClient(base, addr)
            bad = "bad-%d-%s" % (i, password_p)
            start.wait()
            return cp.login(email_p, bad)
        with concurrent.futures.ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            answers = list(pool.map(guess, range(PARALLEL)))
        for r in answers:
            true(r.status in (401, 429), "parallel guess: %s" % r.describe())
            expect_error(r, r.status, {401: "unauthorized", 429: "rate_limited"}[r.status],
                         what="parallel guess")
        statuses = sorted(r.status for r in answers)
        eq(statuses, [401] * MAX_FAILURES + [429] * (PARALLEL - MAX_FAILURES), "statuses")
        eq(stored_failures(s, "e:" + email_p), statuses.count(401), "failures kept for the e-mail")
        eq(stored_failures(s, "a:" + addr), statuses.count(401), "failures kept for the address")

    with t("the right password after login_max_failures - 1 (%d) failures logs in, clears the "
           "e-mail's count and is not counted for the address" % (MAX_FAILURES - 1)):
        _, email_r, password_r = create_user(admin)
        secrets_seen.append(password_r)
        addr = fresh_address()
        cr = FromClient(base, addr)
        for rnd in (1, 2):
            for i in range(MAX_FAILURES - 1):
                expect_error(cr.login(email_r, "bad-%d-%s" % (i, password_r)), 401,
                             "unauthorized", what="round %d, wrong password %d" % (rnd, i + 1))
            expect(200, cr.login(email_r, password_r), "round %d, right password" % rnd)
            secrets_seen.append(cr.session)
            eq(stored_failures(s, "e:" + email_r), 0, "round %d, failures kept for the e-mail"
               % rnd)
            eq(stored_failures(s, "a:" + addr), rnd * (MAX_FAILURES - 1),
               "round %d, failures kept for the address" % rnd)

    # -- logs ---------------------------------------------------------------------------------
    with t("no password, session id or CSRF token in the stack logs"):
        logs = s.log_text()
        true(len(logs) > 0, "log_text() is empty: cannot check")
        leaked = [x for x in secrets_seen if x and x in logs]
        eq(["%s...(%d chars)" % (x[:6], len(x)) for x in leaked], [], "secrets found in logs")


if __name__ == "__main__":
    run("auth", body)
