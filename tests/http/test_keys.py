#!/usr/bin/env python3
"""Provider keys (api.md "Provider keys", issue 3) through nginx, with every role:
masked list only; bulk add as a comma string, a newline string and arrays, with names;
all-or-nothing on a bad entry (empty, bad format, Anthropic OAuth token, zai key without '.');
duplicates 409 naming the index (also within one request), the same key in another workspace
fine; validate-before-save against the stub provider for each protocol and error class; POST
test (valid, invalid, exhausted, transient/network leaving the status alone, provider messages
scrubbed of the key); PATCH, rotate, reorder, DELETE; another workspace's key id answers like
a nonexistent one and stays untouched; member and viewer refused every write; audit entries;
no secret in any answer, in the audit trail or in the stack's logs.

Runs against the shared stack ($KEYRELAY_TEST_STACK), whose stub provider it drives through
s.stub; creates its own workspaces, users and tokens. One private stack (its stub stopped)
covers network failures.
"""
import os
import secrets
import shutil
import string
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import krstack  # noqa: E402
from krclient import (CheckError, RecordingClient, create_user,  # noqa: E402
                      create_workspace, eq, expect, expect_error, expect_time,
                      fake_key, leaked_keys, run, true, user_client)

KEY_FIELDS = ("id", "provider", "name", "maskedKey", "status", "isEnabled", "priority",
              "lastError", "validatedAt", "lastUsedAt", "expiresAt", "consecutiveFailures",
              "cooldownUntil", "createdAt", "updatedAt")
STATUSES = ("untested", "valid", "invalid", "exhausted", "expired", "disabled")
PROVIDERS = ("anthropic", "openai", "google", "zai", "moonshot", "openai_compatible")
# One provider per wire protocol, and the failure modes of the stub with what they mean.
PROTOCOL_PROVIDERS = ("anthropic", "openai", "google")
FAILING_MODES = ("auth", "forbidden", "quota", "rate", "overloaded", "server_error",
                 "bad_request", "cutoff", "redirect", "echo_key")
ALNUM = string.ascii_letters + string.digits
ELLIPSIS = "\u2026"

SEEN = []       # every answer of the server: "METHOD path -> status body"
SECRETS = []    # every provider key this script made up


def login(base, email, password):
    """A client logged in as email whose answers are kept in SEEN."""
    return user_client(base, email, password, seen=SEEN)


def rnd(n):
    return "".join(secrets.choice(ALNUM) for _ in range(n))


def gen(provider):
    """A fresh made-up key of the provider (remembered as a secret)."""
    return fake_key(provider, SECRETS)


def masked(k):
    """api.md / providers.md: at most the first 7 characters, an ellipsis, the last 4; keys
    shorter than 16 characters show only the ellipsis and the last 2."""
    return (ELLIPSIS + k[-2:]) if len(k) < 16 else (k[:7] + ELLIPSIS + k[-4:])


def leaks(text, keys=None):
    """The keys (shortened) whose whole text or hidden middle appears in text."""
    return leaked_keys(text, SECRETS if keys is None else keys)


def same_answer(a, b, subst):
    """a and b are the same answer once the ids in subst are blanked out."""
    def norm(r):
        text = r.text
        for x in subst:
            text = text.replace(x, "{id}")
        return r.status, r.content_type.split(";")[0], text
    na, nb = norm(a), norm(b)
    if na != nb:
        raise CheckError("answers differ:\n  another workspace's key: %s\n  no such key: %s"
                         % (a.describe(), b.describe()))


def eq_keys(got, want, what):
    """Two key lists (or key objects) are equal; the difference, field by field, if not."""
    if isinstance(got, dict):
        got, want = [got], [want]
    diffs = []
    gi = {k.get("id"): k for k in got}
    wi = {k.get("id"): k for k in want}
    for i in sorted(set(gi) | set(wi), key=str):
        if i not in gi or i not in wi:
            diffs.append("%s %s" % (i, "gone" if i not in gi else "new"))
            continue
        d = {f: (wi[i].get(f), gi[i].get(f)) for f in set(gi[i]) | set(wi[i])
             if gi[i].get(f) != wi[i].get(f)}
        if d.get("cooldownUntil", (None, None))[1] is None:
            d.pop("cooldownUntil", None)     # a cooldown (from a rate-limit test) ran out
        if d:
            diffs.append("%s (%s): %s" % (i, wi[i].get("name"), ", ".join(
                "%s %r -> %r" % (f, a, b) for f, (a, b) in sorted(d.items()))))
    if [k.get("id") for k in got] != [k.get("id") for k in want]:
        diffs.append("order changed")
    if diffs:
        raise CheckError("%s changed: %s" % (what, "; ".join(diffs)))


def body(t):
    s = krstack.Stack.from_env()
    base = s.base_url
    stub = s.stub

    def K(ws):
        return "/api/workspaces/%s/keys" % ws

    def keys_of(client, ws, provider=None):
        path = K(ws) + ("?provider=%s" % provider if provider else "")
        r = client.get_all(path, "keys")
        expect(200, r, "GET %s" % path)
        true(isinstance(r.json, dict) and isinstance(r.json.get("keys"), list),
             "no keys list: %s" % r.describe())
        return r.json["keys"]

    def by_id(client, ws):
        return {k["id"]: k for k in keys_of(client, ws)}

    def count(client, ws, provider):
        return len(keys_of(client, ws, provider))

    def add(client, ws, provider, keys, names=None, validate=None, status=201):
        b = {"provider": provider, "keys": keys}
        if names is not None:
            b["names"] = names
        if validate is not None:
            b["validate"] = validate
        r = client.post(K(ws), json=b)
        expect(status, r, "POST keys (%s)" % provider)
        return r

    def add_one(client, ws, provider, mode="ok", name=None):
        k = gen(provider)
        stub.set_key(k, mode)
        r = add(client, ws, provider, [k], names=[name] if name else None)
        return k, r.json["keys"][0]

    def stub_saw(key):
        """Requests the stub saw carrying key in its auth header."""
        out = []
        for q in stub.requests():
            h = q.get("headers") or {}
            if key in (h.get("x-api-key"), h.get("x-goog-api-key"),
                       (h.get("authorization") or "")[7:]):
                out.append(q)
        return out

    # ---------------------------------------------------------------------------------------
    with t.setup("setup: workspaces A and B, users admin/member/viewer of A, tokens of A"):
        adm = login(base, s.admin_email, s.admin_password)
        ws_a = create_workspace(adm)["slug"]
        ws_b = create_workspace(adm)["slug"]
        users = {}
        for role in ("admin", "member", "viewer"):
            u, email, pw = create_user(adm, name="Keys " + role)
            expect(201, adm.post("/api/workspaces/%s/members" % ws_a,
                                 json={"email": email, "role": role}), "add " + role)
            users[role] = (u, login(base, email, pw))
        toks = {}
        for role in ("admin", "member", "viewer"):
            r = adm.post("/api/workspaces/%s/tokens" % ws_a,
                         json={"name": "keys " + role, "role": role})
            expect(201, r, "token " + role)
            toks[role] = RecordingClient(base, SEEN, bearer=r.json["secret"])
    wadm = users["admin"][1]
    wadm_id = users["admin"][0]["id"]
    roles = {"admin session": wadm, "member session": users["member"][1],
             "viewer session": users["viewer"][1], "admin token": toks["admin"],
             "member token": toks["member"], "viewer token": toks["viewer"]}
    readers = {k: v for k, v in roles.items() if not k.startswith("admin")}

    # -- list -------------------------------------------------------------------------------
    for name, c in roles.items():
        with t("GET keys of a new workspace as %s: 200 {\"keys\": []}" % name):
            r = c.get(K(ws_a))
            expect(200, r)
            eq(r.json, {"keys": [], "nextCursor": None}, "answer")

    with t("GET keys without a session or token: 401 unauthorized"):
        expect_error(RecordingClient(base, SEEN).get(K(ws_a)), 401, "unauthorized")

    with t("GET keys?provider=nope: 422 field provider"):
        expect_error(wadm.get(K(ws_a) + "?provider=nope"), 422, "validation_failed",
                     field="provider")

    # -- bulk add -----------------------------------------------------------------------------
    a1, a2 = gen("anthropic"), gen("anthropic")
    with t("POST keys as a comma string with names: 201 {keys:[2]}, untested, masked"):
        r = add(wadm, ws_a, "anthropic", "%s,%s" % (a1, a2), names="Prod,Backup")
        ks = r.json["keys"]
        eq(list(r.json), ["keys"], "top-level fields")
        eq(len(ks), 2, "keys created")
        for k in ks:
            missing = [f for f in KEY_FIELDS if f not in k]
            eq(missing, [], "fields missing from the key object")
            eq(k["provider"], "anthropic", "provider")
            eq(k["status"], "untested", "status")
            eq(k["isEnabled"], True, "isEnabled")
            eq(k["lastError"], None, "lastError")
            eq(k["validatedAt"], None, "validatedAt")
            eq(k["expiresAt"], None, "expiresAt")
            eq(k["consecutiveFailures"], 0, "consecutiveFailures")
            expect_time(k["createdAt"], "createdAt")
            expect_time(k["updatedAt"], "updatedAt")
        eq([k["name"] for k in ks], ["Prod", "Backup"], "names")
        eq([k["priority"] for k in ks], [0, 1], "priorities")
        eq([k["maskedKey"] for k in ks], [masked(a1), masked(a2)], "maskedKey")
        eq(leaks(r.text), [], "secrets in the answer")
    anth_ids = [k["id"] for k in r.json["keys"]] if r.status == 201 else []

    o1, o2, o3 = gen("openai"), gen("openai"), gen("openai")
    with t("POST keys as a newline string (CRLF, padding, trailing newline): 3 keys, trimmed"):
        r = add(wadm, ws_a, "openai", "%s\n%s\r\n  %s  \n" % (o1, o2, o3))
        ks = r.json["keys"]
        eq(len(ks), 3, "keys created")
        eq([k["maskedKey"] for k in ks], [masked(o1), masked(o2), masked(o3)], "maskedKey")
        eq([k["priority"] for k in ks], [0, 1, 2], "priorities")
        names = [k["name"] for k in ks]
        true(all(isinstance(n, str) and n for n in names), "default names %r" % names)
        eq(len(set(names)), 3, "distinct default names %r" % names)

    with t("the padded entry was stored trimmed: adding it bare is a duplicate (409)"):
        expect_error(wadm.post(K(ws_a), json={"provider": "openai", "keys": [o3]}),
                     409, "conflict", field="keys[0]")

    g1, g2 = gen("google"), "AQ." + rnd(40)
    SECRETS.append(g2)
    with t("POST keys and names as arrays (Gemini AIza... and AQ.... keys): 201, names kept"):
        r = add(wadm, ws_a, "google", [g1, g2], names=["Main", "New style"])
        ks = r.json["keys"]
        eq([k["name"] for k in ks], ["Main", "New style"], "names")
        eq([k["maskedKey"] for k in ks], [masked(g1), masked(g2)], "maskedKey")

    a3, a4 = gen("anthropic"), gen("anthropic")
    with t("fewer names than keys: the rest get default names; priorities follow existing keys"):
        r = add(wadm, ws_a, "anthropic", [a3, a4], names=["Third"])
        ks = r.json["keys"]
        eq([k["priority"] for k in ks], [2, 3], "priorities after the 2 existing keys")
        eq(ks[0]["name"], "Third", "first name")
        true(isinstance(ks[1]["name"], str) and ks[1]["name"], "default name %r"
             % ks[1]["name"])

    with t("more names than keys: 422 field names, nothing saved"):
        n = count(wadm, ws_a, "anthropic")
        k = gen("anthropic")
        expect_error(wadm.post(K(ws_a), json={"provider": "anthropic", "keys": [k],
                                              "names": ["x", "y"]}),
                     422, "validation_failed", field="names")
        eq(count(wadm, ws_a, "anthropic"), n, "anthropic keys")

    with t("names are counted in characters, as PATCH counts them: 200 accented letters "
           "(400 bytes) pass, 201 are 422 names[0]"):
        long_name = "\u00e9" * 200
        r = add(wadm, ws_a, "anthropic", [gen("anthropic")], names=[long_name])
        eq(r.json["keys"][0]["name"], long_name, "the name")
        expect_error(wadm.post(K(ws_a), json={"provider": "anthropic", "keys": [gen("anthropic")],
                                              "names": [long_name + "e"]}),
                     422, "validation_failed", field="names[0]")

    short = "sk-" + rnd(8)
    SECRETS.append(short)
    with t("a key shorter than 16 characters is masked as the ellipsis and its last 2"):
        r = add(wadm, ws_a, "moonshot", [short])
        eq(r.json["keys"][0]["maskedKey"], ELLIPSIS + short[-2:], "maskedKey")

    with t("prefixes never reject a key (openai key without sk-, moonshot with an odd one)"):
        k1, k2 = "proj_" + rnd(40), "mk-" + rnd(40)
        SECRETS.extend([k1, k2])
        add(wadm, ws_a, "openai", [k1])
        add(wadm, ws_a, "moonshot", [k2])

    with t("an admin token adds keys: 201"):
        add(toks["admin"], ws_a, "zai", [gen("zai")], names=["By token"])

    with t("GET keys: ordered by provider, then priority; masked only"):
        r = wadm.get_all(K(ws_a), "keys")
        expect(200, r)
        ks = r.json["keys"]
        provs = [k["provider"] for k in ks]
        true(all(p in PROVIDERS for p in provs), "providers %r" % provs)
        seen, last = [], None
        for p in provs:
            if p != last:
                true(p not in seen, "provider %s is not contiguous: %r" % (p, provs))
                seen.append(p)
                last = p
        for p in seen:
            pr = [k["priority"] for k in ks if k["provider"] == p]
            eq(pr, sorted(pr), "priorities of %s" % p)
        for k in ks:
            true(ELLIPSIS in k["maskedKey"], "maskedKey %r" % k["maskedKey"])
            true(k["status"] in STATUSES, "status %r" % k["status"])
        eq(leaks(r.text), [], "secrets in GET keys")

    with t("GET keys?provider=openai lists only OpenAI keys"):
        ks = keys_of(wadm, ws_a, "openai")
        eq(sorted({k["provider"] for k in ks}), ["openai"], "providers")
        eq(len(ks), 4, "openai keys")

    with t("GET keys pages like every list: ?limit, nextCursor the last key of a page, in "
           "the list's order, null at the end; ?provider pages too"):
        whole = [k["id"] for k in keys_of(wadm, ws_a)]
        for prov, want in ((None, whole),
                           ("openai", [k["id"] for k in keys_of(wadm, ws_a, "openai")])):
            got, cursor, pages = [], None, 0
            while True:
                q = "?limit=2" + ("&provider=" + prov if prov else "") + \
                    ("&before=" + cursor if cursor else "")
                r = wadm.get(K(ws_a) + q)
                expect(200, r, "GET keys%s" % q)
                ids = [k["id"] for k in r.json["keys"]]
                true(len(ids) <= 2, "a page of %d keys with limit=2" % len(ids))
                got += ids
                pages += 1
                cursor = r.json["nextCursor"]
                if cursor is None or pages > len(want) + 1:
                    break
                eq(cursor, ids[-1], "nextCursor (the page's last key)")
            eq(got, want, "the pages (provider %s), in order" % prov)
            true(len(want) > 2, "too few keys (%d) to page" % len(want))

    with t("GET keys with a bad cursor or limit: 422 naming it"):
        other = keys_of(wadm, ws_a, "anthropic")[0]["id"]
        for q, field in (("?before=%s" % uuid.uuid4(), "before"),
                         ("?provider=openai&before=%s" % other, "before"),
                         ("?limit=0", "limit"), ("?limit=201", "limit")):
            expect_error(wadm.get(K(ws_a) + q), 422, "validation_failed", field=field)

    for name, c in roles.items():
        with t("GET keys as %s: 200, the same masked list" % name):
            r = c.get_all(K(ws_a), "keys")
            expect(200, r)
            eq(len(r.json["keys"]), len(keys_of(wadm, ws_a)), "keys listed")
            eq(leaks(r.text), [], "secrets")

    # -- one bad entry saves nothing ------------------------------------------------------------
    good1, good2 = gen("anthropic"), gen("anthropic")
    zgood = gen("zai")
    oat = "sk-ant-oat01-" + rnd(60)
    zbad = rnd(40)
    long_key = "sk-ant-api03-" + rnd(4100)
    SECRETS.extend([oat, zbad])
    bad_cases = [
        ("an empty entry in a comma string", "anthropic", "%s,,%s" % (good1, good2), "keys[1]"),
        ("an empty array element", "anthropic", [good1, good2, ""], "keys[2]"),
        ("a blank (whitespace only) array element", "anthropic", [good1, "   "], "keys[1]"),
        ("a key with a space inside", "anthropic", [good1, "sk-ant-api03-abc def" + rnd(20)],
         "keys[1]"),
        ("a key that is too short", "anthropic", "%s,sk-1" % good1, "keys[1]"),
        ("a key with a non-ASCII character", "anthropic", [good1, "sk-ant-api03-\u00fc" + rnd(30)],
         "keys[1]"),
        ("a key with a control character", "anthropic", [good1, "sk-ant-api03-\x01" + rnd(30)],
         "keys[1]"),
        ("a key over 4096 characters", "anthropic", [good1, long_key], "keys[1]"),
        ("an Anthropic OAuth token (sk-ant-oat01-...)", "anthropic", [good1, good2, oat],
         "keys[2]"),
        ("an Anthropic OAuth token first, in a comma string", "anthropic",
         "%s,%s" % (oat, good1), "keys[0]"),
        ("a zai key without '.'", "zai", [zgood, zbad], "keys[1]"),
        ("a zai key ending in '.'", "zai", [zgood, rnd(30) + "."], "keys[1]"),
        ("an array element that is not a string", "anthropic", [good1, 42], "keys[1]"),
    ]
    for what, prov, keys, field in bad_cases:
        with t("bulk add with %s: 422 naming %s, nothing saved" % (what, field)):
            before = count(wadm, ws_a, prov)
            r = wadm.post(K(ws_a), json={"provider": prov, "keys": keys})
            expect_error(r, 422, "validation_failed", field=field)
            eq(count(wadm, ws_a, prov), before, "%s keys after the refused request" % prov)
            entries_given = keys if isinstance(keys, list) else keys.split(",")
            eq(leaks(r.text, [x for x in entries_given if isinstance(x, str) and len(x) >= 16]),
               [], "entries echoed in the error")

    with t("after the refused requests their good entries are still new: adding them is 201"):
        add(wadm, ws_a, "anthropic", [good1, good2])
        add(wadm, ws_a, "zai", [zgood])

    other_bad = [
        ("no keys field", {"provider": "anthropic"}, "keys"),
        ("keys a number", {"provider": "anthropic", "keys": 5}, "keys"),
        ("keys an object", {"provider": "anthropic", "keys": {"a": gen("anthropic")}}, "keys"),
        ("keys an empty array", {"provider": "anthropic", "keys": []}, "keys"),
        ("names a number", {"provider": "anthropic", "keys": [gen("anthropic")], "names": 7},
         "names"),
        ("no provider", {"keys": [gen("anthropic")]}, "provider"),
        ("an unknown provider", {"provider": "mistral", "keys": [gen("anthropic")]}, "provider"),
        ("provider a number", {"provider": 3, "keys": [gen("anthropic")]}, "provider"),
        ("validate a string", {"provider": "anthropic", "keys": [gen("anthropic")],
                               "validate": "yes"}, "validate"),
        # A NUL inside an entry once overran the copy made of it (a crash of keyrelay-fcgi).
        ("a NUL inside a key", {"provider": "anthropic",
                                "keys": [gen("anthropic")[:20] + "\u0000" + rnd(20)]}, "keys"),
        ("a NUL inside a name", {"provider": "anthropic", "keys": [gen("anthropic")],
                                 "names": ["n\u0000" + "x" * 30]}, "names"),
        ("a NUL inside keys as one string", {"provider": "anthropic",
                                             "keys": gen("anthropic") + "\u0000,x"}, "keys"),
    ]
    for what, b, field in other_bad:
        with t("POST keys with %s: 422 field %s, nothing saved" % (what, field)):
            before = len(keys_of(wadm, ws_a))
            expect_error(wadm.post(K(ws_a), json=b), 422, "validation_failed", field=field)
            eq(len(keys_of(wadm, ws_a)), before, "keys after the refused request")

    with t("POST keys with 51 entries (over the batch limit): 422 field keys, nothing saved"):
        before = len(keys_of(wadm, ws_a))
        many = ["sk-proj-" + rnd(30) for _ in range(51)]
        expect_error(wadm.post(K(ws_a), json={"provider": "openai", "keys": many}),
                     422, "validation_failed", field="keys")
        eq(len(keys_of(wadm, ws_a)), before, "keys")

    with t("POST keys with a name over 200 characters: 422 field names[0], nothing saved"):
        before = len(keys_of(wadm, ws_a))
        expect_error(wadm.post(K(ws_a), json={"provider": "openai", "keys": [gen("openai")],
                                              "names": ["n" * 201]}),
                     422, "validation_failed", field="names[0]")
        eq(len(keys_of(wadm, ws_a)), before, "keys")

    with t("POST keys with a body over 1 MiB: 413 payload_too_large"):
        big = '{"provider":"openai","keys":"%s"}' % ("a" * (1 << 20))
        expect_error(wadm.post(K(ws_a), body=big, content_type="application/json"),
                     413, "payload_too_large")

    with t("POST keys with keys \"\": 422 (keys or keys[0]), nothing saved"):
        r = wadm.post(K(ws_a), json={"provider": "anthropic", "keys": ""})
        err = expect_error(r, 422, "validation_failed")
        true(err.get("field") in ("keys", "keys[0]"), "field %r" % err.get("field"))

    # -- duplicates ----------------------------------------------------------------------------
    d1 = gen("openai")
    with t("setup: one OpenAI key D stored in A"):
        add(wadm, ws_a, "openai", [d1])
    n1, n2 = gen("openai"), gen("openai")
    with t("POST [new, D] (D stored already): 409 conflict naming keys[1], the new one not saved"):
        before = count(wadm, ws_a, "openai")
        expect_error(wadm.post(K(ws_a), json={"provider": "openai", "keys": [n1, d1]}),
                     409, "conflict", field="keys[1]")
        eq(count(wadm, ws_a, "openai"), before, "openai keys")

    with t("duplicate given padded, in a comma string at index 2: 409 naming keys[2]"):
        expect_error(wadm.post(K(ws_a), json={"provider": "openai",
                                              "keys": "%s,%s, %s " % (n1, n2, d1)}),
                     409, "conflict", field="keys[2]")

    with t("the same key twice in one request: 409 naming keys[1], nothing saved"):
        before = count(wadm, ws_a, "openai")
        expect_error(wadm.post(K(ws_a), json={"provider": "openai", "keys": [n2, n2]}),
                     409, "conflict", field="keys[1]")
        eq(count(wadm, ws_a, "openai"), before, "openai keys")

    with t("the same key twice in one request, separated: 409 naming keys[2]"):
        expect_error(wadm.post(K(ws_a), json={"provider": "openai", "keys": [n1, n2, n1]}),
                     409, "conflict", field="keys[2]")

    with t("after the conflicts both new keys can be added: 201"):
        add(wadm, ws_a, "openai", [n1, n2])

    with t("the same key in another workspace (B): 201"):
        add(adm, ws_b, "openai", [d1])

    with t("the same secret under another provider in the same workspace: 201"):
        add(wadm, ws_a, "moonshot", [d1])

    def parallel(bodies):
        out = [None] * len(bodies)

        def go(i):
            out[i] = wadm.clone().post(K(ws_a), json=bodies[i])
        ths = [threading.Thread(target=go, args=(i,)) for i in range(len(bodies))]
        for x in ths:
            x.start()
        for x in ths:
            x.join()
        return out

    with t("the same new key in 8 concurrent requests: one 201, seven 409, stored once"):
        k = gen("zai")
        rs = parallel([{"provider": "zai", "keys": [k]}] * 8)
        eq(sorted(r.status for r in rs), [201] + [409] * 7, "statuses")
        eq([x["maskedKey"] for x in keys_of(wadm, ws_a, "zai")].count(masked(k)), 1,
           "copies stored")

    with t("8 concurrent single-key adds for one provider: all 201, distinct priorities "
           "after the existing keys"):
        before = keys_of(wadm, ws_a, "google")
        rs = parallel([{"provider": "google", "keys": [gen("google")]} for _ in range(8)])
        eq(sorted(r.status for r in rs), [201] * 8, "statuses")
        pr = [x["priority"] for x in keys_of(wadm, ws_a, "google")]
        eq(len(pr), len(before) + 8, "google keys")
        eq(sorted(pr), sorted(set(pr)), "priorities (duplicates make the order ambiguous)")

    # -- validate before save ------------------------------------------------------------------
    with t("validate:true with six keys the provider answers after 8 s each: 201, the checks "
           "all out at once (one after the other, 48 s, ran into the web server's 60 s)"):
        slow = [gen("anthropic") for _ in range(6)]
        for k in slow:
            stub.set_key(k, "ok", delay_ms=8000)
        r = add(wadm, ws_a, "anthropic", slow, validate=True)
        eq([k["status"] for k in r.json["keys"]], ["valid"] * 6, "statuses")
        arrived = sorted(q["time"] for k in slow for q in stub_saw(k))
        eq(len(arrived), 6, "checks the stub saw")
        true(arrived[-1] - arrived[0] < 8, "the last check came %.1f s after the first, "
             "which was answered 8 s after it came: not all out at once"
             % (arrived[-1] - arrived[0]))
    for prov in PROTOCOL_PROVIDERS:
        vgood = gen(prov)
        stub.set_key(vgood, "ok")
        for mode in FAILING_MODES:
            with t("validate:true, %s, second key answering %r: 422 keys[1], nothing saved"
                   % (prov, mode)):
                bad = gen(prov)
                stub.set_key(bad, mode)
                before = count(wadm, ws_a, prov)
                r = wadm.post(K(ws_a), json={"provider": prov, "keys": [vgood, bad],
                                             "validate": True})
                expect_error(r, 422, "validation_failed", field="keys[1]")
                eq(count(wadm, ws_a, prov), before, "%s keys" % prov)
                eq(leaks(r.text, [vgood, bad]), [], "the keys in the error")
        with t("validate:true, %s, a key the provider never issued: 422 keys[0]" % prov):
            expect_error(wadm.post(K(ws_a), json={"provider": prov, "keys": [gen(prov)],
                                                  "validate": True}),
                         422, "validation_failed", field="keys[0]")
        with t("validate:true, %s, every key valid: 201, status valid, validatedAt set" % prov):
            vgood2 = gen(prov)
            stub.set_key(vgood2, "ok")
            r = add(wadm, ws_a, prov, [vgood, vgood2], validate=True)
            eq([k["status"] for k in r.json["keys"]], ["valid", "valid"], "statuses")
            for k in r.json["keys"]:
                expect_time(k["validatedAt"], "validatedAt")
        with t("validate:true, %s: the stub got the key in the protocol's header only" % prov):
            reqs = stub_saw(vgood2)
            true(reqs, "the stub saw no request with the key")
            for q in reqs:
                h = q["headers"]
                if prov == "anthropic":
                    eq(h.get("x-api-key"), vgood2, "x-api-key")
                    true(h.get("anthropic-version"), "no anthropic-version header")
                elif prov == "google":
                    eq(h.get("x-goog-api-key"), vgood2, "x-goog-api-key")
                else:
                    eq(h.get("authorization"), "Bearer " + vgood2, "authorization")
                true(vgood2 not in q["path"] and "key=" not in q["path"],
                     "key in the URL: %s" % q["path"][:80])

    for prov in ("zai", "moonshot", "openai_compatible"):
        with t("validate:true, %s: a valid key 201 valid, an invalid one 422 keys[0]" % prov):
            k = gen(prov)
            stub.set_key(k, "ok")
            r = add(wadm, ws_a, prov, [k], validate=True)
            eq(r.json["keys"][0]["status"], "valid", "status")
            bad = gen(prov)
            stub.set_key(bad, "auth")
            expect_error(wadm.post(K(ws_a), json={"provider": prov, "keys": [bad],
                                                  "validate": True}),
                         422, "validation_failed", field="keys[0]")

    with t("validate:false (default): no call to the provider, status untested"):
        k = gen("anthropic")
        stub.set_key(k, "auth")
        r = add(wadm, ws_a, "anthropic", k)
        eq(r.json["keys"][0]["status"], "untested", "status")
        eq(stub_saw(k), [], "requests the stub saw with the key")

    # -- POST test ------------------------------------------------------------------------------
    def test_key(client, ws, kid, status=200):
        r = client.post("%s/%s/test" % (K(ws), kid), json={})
        expect(status, r, "POST test")
        return r

    tested = {}
    for prov in PROVIDERS:
        k, obj = add_one(wadm, ws_a, prov)
        tested[prov] = (k, obj["id"])
        with t("POST test, %s, valid key: 200 valid true, status valid, latencyMs" % prov):
            r = test_key(wadm, ws_a, obj["id"])
            eq(r.json.get("valid"), True, "valid")
            eq(r.json.get("status"), "valid", "status")
            lat = r.json.get("latencyMs")
            true(isinstance(lat, int) and not isinstance(lat, bool) and lat >= 0,
                 "latencyMs %r" % (lat,))
            kk = by_id(wadm, ws_a)[obj["id"]]
            eq(kk["status"], "valid", "listed status")
            expect_time(kk["validatedAt"], "validatedAt")
            eq(kk["lastError"], None, "lastError")

        with t("POST test, %s, provider says auth invalid: valid false, status invalid, "
               "lastError set" % prov):
            stub.set_key(k, "auth")
            r = test_key(wadm, ws_a, obj["id"])
            eq(r.json.get("valid"), False, "valid")
            eq(r.json.get("status"), "invalid", "status")
            true(isinstance(r.json.get("error"), str) and r.json["error"], "error %r"
                 % r.json.get("error"))
            kk = by_id(wadm, ws_a)[obj["id"]]
            eq(kk["status"], "invalid", "listed status")
            true(isinstance(kk["lastError"], str) and kk["lastError"], "lastError %r"
                 % kk["lastError"])

        with t("POST test, %s, provider says quota: valid false, status exhausted" % prov):
            stub.set_key(k, "quota")
            r = test_key(wadm, ws_a, obj["id"])
            eq((r.json.get("valid"), r.json.get("status")), (False, "exhausted"),
               "valid, status")
            true(r.json.get("error"), "no error")
            eq(by_id(wadm, ws_a)[obj["id"]]["status"], "exhausted", "listed status")

        with t("POST test, %s, back to ok: valid again, lastError cleared" % prov):
            stub.set_key(k, "ok")
            r = test_key(wadm, ws_a, obj["id"])
            eq((r.json.get("valid"), r.json.get("status")), (True, "valid"), "valid, status")
            eq(by_id(wadm, ws_a)[obj["id"]]["lastError"], None, "lastError")

        unchanged = ("overloaded", "server_error", "cutoff", "rate", "bad_request", "redirect")
        if prov == "anthropic":
            unchanged += ("oversized",)
        for mode in unchanged:
            with t("POST test, %s, %s: valid false, status stays valid, error says why"
                   % (prov, mode)):
                stub.set_key(k, mode)
                r = test_key(wadm, ws_a, obj["id"])
                eq(r.json.get("valid"), False, "valid")
                eq(r.json.get("status"), "valid", "status")
                true(isinstance(r.json.get("error"), str) and len(r.json["error"]) > 3,
                     "error %r" % r.json.get("error"))
                eq(by_id(wadm, ws_a)[obj["id"]]["status"], "valid", "listed status")
        stub.set_key(k, "ok")

    with t("POST test, google, 403 PERMISSION_DENIED: status invalid"):
        k, obj = add_one(wadm, ws_a, "google", mode="forbidden")
        r = test_key(wadm, ws_a, obj["id"])
        eq((r.json.get("valid"), r.json.get("status")), (False, "invalid"), "valid, status")

    with t("POST test, transient on an untested key: status stays untested"):
        k, obj = add_one(wadm, ws_a, "anthropic", mode="overloaded")
        r = test_key(wadm, ws_a, obj["id"])
        eq((r.json.get("valid"), r.json.get("status")), (False, "untested"), "valid, status")
        true(r.json.get("error"), "no error")

    with t("POST test, transient on an invalid key: status stays invalid"):
        stub.set_key(k, "auth")
        eq(test_key(wadm, ws_a, obj["id"]).json.get("status"), "invalid", "after auth")
        stub.set_key(k, "overloaded")
        r = test_key(wadm, ws_a, obj["id"])
        eq((r.json.get("valid"), r.json.get("status")), (False, "invalid"), "valid, status")

    for prov in PROTOCOL_PROVIDERS + ("moonshot",):
        with t("POST test, %s, error echoing the whole key: invalid, the key scrubbed from "
               "error, lastError and audit" % prov):
            k, obj = add_one(wadm, ws_a, prov, mode="echo_key")
            r = test_key(wadm, ws_a, obj["id"])
            eq((r.json.get("valid"), r.json.get("status")), (False, "invalid"),
               "valid, status")
            true(r.json.get("error"), "no error")
            eq(leaks(r.text, [k]), [], "the key in the answer")
            kk = by_id(wadm, ws_a)[obj["id"]]
            true(kk["lastError"], "no lastError")
            eq(leaks(kk["lastError"], [k]), [], "the key in lastError")
            au = wadm.get("/api/workspaces/%s/audit?limit=200" % ws_a)
            eq(leaks(au.text, [k]), [], "the key in the audit trail")

    with t("POST test of an unknown key id: 404 not_found"):
        expect_error(wadm.post("%s/%s/test" % (K(ws_a), uuid.uuid4()), json={}), 404,
                     "not_found")

    def test_during(k, kid, meanwhile):
        """POST test of key kid (whose secret k the stub holds 5 s), running meanwhile() once
        the stub has the call; the test's answer."""
        answer = {}
        th = threading.Thread(target=lambda: answer.update(
            r=wadm.post("%s/%s/test" % (K(ws_a), kid), json={})))
        th.start()
        deadline = time.monotonic() + 10
        while not stub_saw(k) and time.monotonic() < deadline:
            time.sleep(0.02)
        true(stub_saw(k), "the stub never saw the test call")
        meanwhile()
        th.join(20)
        return answer.get("r")

    with t("POST test of a key deleted while the provider answers: 404 not_found, no "
           "key.tested entry"):
        k, obj = add_one(wadm, ws_a, "anthropic")
        stub.set_key(k, "ok", delay_ms=5000)
        r = test_during(k, obj["id"], lambda: expect(
            204, wadm.delete("%s/%s" % (K(ws_a), obj["id"])), "DELETE during the test"))
        expect_error(r, 404, "not_found")
        au = wadm.get("/api/workspaces/%s/audit?limit=200" % ws_a).json["entries"]
        eq([e["action"] for e in au if e.get("target") == obj["id"]],
           ["key.deleted", "key.created"], "the key's audit entries, newest first")

    with t("POST test of a key rotated while the provider answers (401 for the old secret): "
           "409 conflict, the new secret stays untested"):
        k, obj = add_one(wadm, ws_a, "anthropic")
        stub.set_key(k, "auth", delay_ms=5000)
        fresh = gen("anthropic")
        stub.set_key(fresh, "ok")
        r = test_during(k, obj["id"], lambda: expect(
            200, wadm.post("%s/%s/rotate" % (K(ws_a), obj["id"]), json={"key": fresh}),
            "rotate during the test"))
        expect_error(r, 409, "conflict")
        kk = by_id(wadm, ws_a)[obj["id"]]
        eq((kk["status"], kk["maskedKey"], kk["lastError"]), ("untested", masked(fresh), None),
           "status, maskedKey, lastError after the stale test")

    # -- PATCH ----------------------------------------------------------------------------------
    pk, pobj = add_one(wadm, ws_a, "anthropic", name="Patch me")
    pid = pobj["id"]
    P = "%s/%s" % (K(ws_a), pid)
    with t("setup: the key to patch is tested valid"):
        eq(test_key(wadm, ws_a, pid).json.get("status"), "valid", "status")

    with t("PATCH name: 200 the key object with the new name"):
        r = wadm.patch(P, json={"name": "Renamed"})
        expect(200, r)
        eq(r.json.get("id"), pid, "id")
        eq(r.json.get("name"), "Renamed", "name")
        eq([f for f in KEY_FIELDS if f not in r.json], [], "missing fields")
        eq(by_id(wadm, ws_a)[pid]["name"], "Renamed", "listed name")

    with t("PATCH priority: 200, the new priority is listed"):
        r = wadm.patch(P, json={"priority": 40})
        expect(200, r)
        eq(r.json.get("priority"), 40, "priority")
        eq(by_id(wadm, ws_a)[pid]["priority"], 40, "listed priority")

    with t("PATCH isEnabled false: status disabled, isEnabled false"):
        r = wadm.patch(P, json={"isEnabled": False})
        expect(200, r)
        eq((r.json.get("isEnabled"), r.json.get("status")), (False, "disabled"),
           "isEnabled, status")
        eq(by_id(wadm, ws_a)[pid]["status"], "disabled", "listed status")

    with t("PATCH isEnabled true: enabled again, the earlier status (valid) is back"):
        r = wadm.patch(P, json={"isEnabled": True})
        expect(200, r)
        eq((r.json.get("isEnabled"), r.json.get("status")), (True, "valid"),
           "isEnabled, status")

    with t("PATCH expiresAt in the past: status expired"):
        r = wadm.patch(P, json={"expiresAt": "2020-01-01T00:00:00Z"})
        expect(200, r)
        eq(r.json.get("status"), "expired", "status")
        expect_time(r.json.get("expiresAt"), "expiresAt")
        true(r.json["expiresAt"].startswith("2020-01-01T00:00:00"), "expiresAt %r"
             % r.json["expiresAt"])

    with t("PATCH isEnabled false on an expired key: disabled wins (whenever not enabled)"):
        r = wadm.patch(P, json={"isEnabled": False})
        expect(200, r)
        eq(r.json.get("status"), "disabled", "status")
        expect(200, wadm.patch(P, json={"isEnabled": True}), "re-enable")

    with t("PATCH expiresAt in the future: status valid again"):
        r = wadm.patch(P, json={"expiresAt": "2099-12-31T23:59:59Z"})
        expect(200, r)
        eq(r.json.get("status"), "valid", "status")
        true(str(r.json.get("expiresAt")).startswith("2099-12-31T23:59:59"), "expiresAt %r"
             % r.json.get("expiresAt"))

    with t("PATCH expiresAt null: cleared"):
        r = wadm.patch(P, json={"expiresAt": None})
        expect(200, r)
        eq(r.json.get("expiresAt"), None, "expiresAt")

    with t("PATCH several fields at once, unknown fields ignored: 200"):
        r = wadm.patch(P, json={"name": "Both", "priority": 41, "colour": "red"})
        expect(200, r)
        eq((r.json.get("name"), r.json.get("priority")), ("Both", 41), "name, priority")

    patch_bad = [
        ({"priority": -1}, "priority", "a negative priority"),
        ({"priority": "3"}, "priority", "priority as a string"),
        ({"priority": 1.5}, "priority", "a fractional priority"),
        ({"name": ""}, "name", "an empty name"),
        ({"name": 5}, "name", "name a number"),
        ({"isEnabled": "no"}, "isEnabled", "isEnabled a string"),
        ({"expiresAt": "tomorrow"}, "expiresAt", "expiresAt not a time"),
        ({"expiresAt": 1893456000}, "expiresAt", "expiresAt a number"),
        ({"expiresAt": "2099-02-30T00:00:00Z"}, "expiresAt", "expiresAt on February 30"),
        ({"expiresAt": "2099-13-01T00:00:00Z"}, "expiresAt", "expiresAt in month 13"),
        ({"name": "n" * 201}, "name", "a name over 200 characters"),
    ]
    for b, field, what in patch_bad:
        with t("PATCH with %s: 422 field %s, key unchanged" % (what, field)):
            before = by_id(wadm, ws_a)[pid]
            expect_error(wadm.patch(P, json=b), 422, "validation_failed", field=field)
            eq_keys(by_id(wadm, ws_a)[pid], before, "the key after the refused PATCH")

    with t("PATCH of an unknown key id: 404 not_found"):
        expect_error(wadm.patch("%s/%s" % (K(ws_a), uuid.uuid4()), json={"name": "x"}), 404,
                     "not_found")

    # -- rotate ---------------------------------------------------------------------------------
    rk, robj = add_one(wadm, ws_a, "anthropic", name="Rotating")
    rid = robj["id"]
    R = "%s/%s/rotate" % (K(ws_a), rid)
    rnew = gen("anthropic")
    stub.set_key(rnew, "ok")
    with t("setup: the key to rotate has priority 17 and was tested (invalid, lastError set)"):
        expect(200, wadm.patch("%s/%s" % (K(ws_a), rid), json={"priority": 17}))
        stub.set_key(rk, "auth")
        eq(test_key(wadm, ws_a, rid).json.get("status"), "invalid", "status")
    with t("POST rotate: 200, same id, name and priority, status untested, new maskedKey"):
        r = wadm.post(R, json={"key": rnew})
        expect(200, r)
        eq(r.json.get("id"), rid, "id")
        eq(r.json.get("name"), "Rotating", "name")
        eq(r.json.get("priority"), 17, "priority")
        eq(r.json.get("status"), "untested", "status")
        eq(r.json.get("maskedKey"), masked(rnew), "maskedKey")
        true(r.json.get("maskedKey") != masked(rk), "maskedKey unchanged")
        eq(r.json.get("lastError"), None, "lastError")
        eq(r.json.get("validatedAt"), None, "validatedAt")
        eq([f for f in KEY_FIELDS if f not in r.json], [], "missing fields")
        eq(leaks(r.text, [rk, rnew]), [], "secrets in the answer")

    with t("after rotate, POST test uses the new key (the stub sees it): valid"):
        n_old = len(stub_saw(rk))
        r = test_key(wadm, ws_a, rid)
        eq((r.json.get("valid"), r.json.get("status")), (True, "valid"), "valid, status")
        true(stub_saw(rnew), "the stub never saw the new key")
        eq(len(stub_saw(rk)), n_old, "requests with the old key")

    with t("the old secret of a rotated key can be added again (it is no longer stored)"):
        add(wadm, ws_a, "anthropic", [rk])

    rot_bad = [
        ({"key": "sk-ant-oat01-" + rnd(50)}, 422, "validation_failed", "key",
         "an Anthropic OAuth token"),
        ({"key": "short"}, 422, "validation_failed", "key", "a too short key"),
        ({"key": "sk-ant-api03-a b" + rnd(20)}, 422, "validation_failed", "key",
         "a key with a space"),
        ({}, 422, "validation_failed", "key", "no key"),
        ({"key": 12345678901}, 422, "validation_failed", "key", "key a number"),
        ({"key": a1}, 409, "conflict", "key", "a key stored already for the provider"),
    ]
    for b, st, code, field, what in rot_bad:
        if isinstance(b.get("key"), str):
            SECRETS.append(b["key"])
        with t("POST rotate with %s: %d %s, the key unchanged" % (what, st, code)):
            before = by_id(wadm, ws_a)[rid]
            r = wadm.post(R, json=b)
            expect_error(r, st, code, field=field)
            eq_keys(by_id(wadm, ws_a)[rid], before, "the key after the refused rotate")
            eq(leaks(r.text), [], "secrets in the error")

    with t("POST rotate to a key stored in another workspace (B): 200"):
        xb = gen("anthropic")
        add(adm, ws_b, "anthropic", [xb])
        r = wadm.post("%s/%s/rotate" % (K(ws_a), anth_ids[1]), json={"key": xb})
        expect(200, r)
        eq(r.json.get("maskedKey"), masked(xb), "maskedKey")

    with t("POST rotate of an unknown key id: 404 not_found"):
        expect_error(wadm.post("%s/%s/rotate" % (K(ws_a), uuid.uuid4()),
                               json={"key": gen("anthropic")}), 404, "not_found")

    # -- reorder --------------------------------------------------------------------------------
    mws = create_workspace(adm)["slug"]
    m = [gen("moonshot") for _ in range(3)]
    with t("setup: three Moonshot keys with priorities 0, 1, 2 in a fresh workspace"):
        r = add(adm, mws, "moonshot", m, names=["m0", "m1", "m2"])
        mids = [k["id"] for k in r.json["keys"]]
        eq([k["priority"] for k in r.json["keys"]], [0, 1, 2], "priorities")

    with t("PUT keys/reorder: 200 {keys:[...]} in the new order"):
        r = adm.put(K(mws) + "/reorder", json={"keys": [
            {"id": mids[2], "priority": 0}, {"id": mids[0], "priority": 1},
            {"id": mids[1], "priority": 2}]})
        expect(200, r)
        true(isinstance(r.json.get("keys"), list), "no keys list: %s" % r.describe())
        got = [(k["id"], k["priority"]) for k in r.json["keys"] if k["provider"] == "moonshot"]
        eq(got, [(mids[2], 0), (mids[0], 1), (mids[1], 2)], "order in the answer")
        eq(leaks(r.text), [], "secrets")

    with t("the new order persists: GET keys lists m2, m0, m1"):
        eq([k["name"] for k in keys_of(adm, mws, "moonshot")], ["m2", "m0", "m1"], "names")

    reorder_bad = [
        ({}, "keys", "no keys"),
        ({"keys": []}, "keys", "an empty list"),
        ({"keys": "x"}, "keys", "keys a string"),
        ({"keys": [{"id": mids[0], "priority": -1}]}, "keys[0].priority", "a negative priority"),
        ({"keys": [{"id": mids[0], "priority": "1"}]}, "keys[0].priority",
         "priority a string"),
        ({"keys": [{"id": mids[0], "priority": 1}, {"priority": 2}]}, "keys[1].id", "no id"),
        ({"keys": [{"id": mids[0], "priority": 5}, {"id": mids[1], "priority": 6},
                   {"id": mids[0], "priority": 1}]}, "keys[2].id", "a repeated id"),
    ]
    for b, field, what in reorder_bad:
        with t("PUT keys/reorder with %s: 422 field %s, order unchanged" % (what, field)):
            before = keys_of(adm, mws)
            expect_error(adm.put(K(mws) + "/reorder", json=b), 422, "validation_failed",
                         field=field)
            eq_keys(keys_of(adm, mws), before, "keys after the refused reorder")

    with t("PUT keys/reorder with an unknown id second: 404, the first change rolled back"):
        before = keys_of(adm, mws)
        expect_error(adm.put(K(mws) + "/reorder", json={"keys": [
            {"id": mids[0], "priority": 9}, {"id": str(uuid.uuid4()), "priority": 1}]}),
            404, "not_found")
        eq_keys(keys_of(adm, mws), before, "keys after the refused reorder")

    # -- DELETE -----------------------------------------------------------------------------------
    dk, dobj = add_one(wadm, ws_a, "google", name="Doomed")
    did = dobj["id"]
    with t("DELETE key: 204 with no body, no longer listed"):
        r = wadm.delete("%s/%s" % (K(ws_a), did))
        expect(204, r)
        eq(r.raw, b"", "body")
        true(did not in by_id(wadm, ws_a), "still listed")
    for what, fn in (("DELETE", lambda: wadm.delete("%s/%s" % (K(ws_a), did))),
                     ("PATCH", lambda: wadm.patch("%s/%s" % (K(ws_a), did), json={"name": "z"})),
                     ("POST test", lambda: wadm.post("%s/%s/test" % (K(ws_a), did), json={})),
                     ("POST rotate", lambda: wadm.post("%s/%s/rotate" % (K(ws_a), did),
                                                       json={"key": gen("google")}))):
        with t("%s of the deleted key: 404 not_found" % what):
            expect_error(fn(), 404, "not_found")
    with t("the deleted key's secret can be added again: 201"):
        add(wadm, ws_a, "google", [dk])

    # -- another workspace's key ----------------------------------------------------------------
    bk = gen("anthropic")
    stub.set_key(bk, "ok")
    with t("setup: a key in B"):
        r = add(adm, ws_b, "anthropic", [bk], names=["B's key"])
        bid = r.json["keys"][0]["id"]
        b_before = by_id(adm, ws_b)[bid]
    ghost = str(uuid.uuid4())
    nreq_b = len(stub_saw(bk))
    cross = [
        ("PATCH", lambda i: adm.patch("%s/%s" % (K(ws_a), i), json={"name": "hijacked",
                                                                  "isEnabled": False})),
        ("POST test", lambda i: adm.post("%s/%s/test" % (K(ws_a), i), json={})),
        ("POST rotate", lambda i: adm.post("%s/%s/rotate" % (K(ws_a), i),
                                           json={"key": "sk-ant-api03-" + "Z" * 40})),
        ("PUT reorder", lambda i: adm.put(K(ws_a) + "/reorder",
                                          json={"keys": [{"id": i, "priority": 99}]})),
        ("DELETE", lambda i: adm.delete("%s/%s" % (K(ws_a), i))),
    ]
    for what, fn in cross:
        with t("%s of B's key id through A's path: 404, exactly like a nonexistent id" % what):
            ra = fn(bid)
            expect_error(ra, 404, "not_found")
            same_answer(ra, fn(ghost), [bid, ghost])
    with t("GET keys/{B's key id} through A's path answers like a nonexistent id (no GET of "
           "one key in api.md)"):
        ra = adm.get("%s/%s" % (K(ws_a), bid))
        true(ra.status in (404, 405), "status %d" % ra.status)
        same_answer(ra, adm.get("%s/%s" % (K(ws_a), ghost)), [bid, ghost])
    with t("A's key list does not show B's key"):
        true(bid not in by_id(adm, ws_a), "B's key listed under A")
    with t("B's key is untouched: same object, never sent to the provider"):
        eq_keys(by_id(adm, ws_b)[bid], b_before, "B's key")
        eq(len(stub_saw(bk)), nreq_b, "requests with B's key")
    with t("A's admin token on B's keys: 404 (GET, POST, DELETE)"):
        expect_error(toks["admin"].get(K(ws_b)), 404, "not_found")
        expect_error(toks["admin"].post(K(ws_b), json={"provider": "openai",
                                                       "keys": [gen("openai")]}),
                     404, "not_found")
        expect_error(toks["admin"].delete("%s/%s" % (K(ws_b), bid)), 404, "not_found")
        eq_keys(by_id(adm, ws_b)[bid], b_before, "B's key")

    # -- roles: member and viewer refused every write ----------------------------------------
    tk, tobj = add_one(wadm, ws_a, "openai", name="Target")
    tid = tobj["id"]
    writes = [
        ("POST keys", lambda c: c.post(K(ws_a), json={"provider": "openai",
                                                       "keys": [gen("openai")]})),
        ("PATCH key", lambda c: c.patch("%s/%s" % (K(ws_a), tid), json={"name": "mine"})),
        ("POST test", lambda c: c.post("%s/%s/test" % (K(ws_a), tid), json={})),
        ("POST rotate", lambda c: c.post("%s/%s/rotate" % (K(ws_a), tid),
                                         json={"key": gen("openai")})),
        ("PUT reorder", lambda c: c.put(K(ws_a) + "/reorder",
                                        json={"keys": [{"id": tid, "priority": 0}]})),
        ("DELETE key", lambda c: c.delete("%s/%s" % (K(ws_a), tid))),
    ]
    for rname, c in readers.items():
        for what, fn in writes:
            with t("%s as %s: 403 forbidden, nothing changed" % (what, rname)):
                before = keys_of(wadm, ws_a)
                n = len(stub_saw(tk))
                expect_error(fn(c), 403, "forbidden")
                eq_keys(keys_of(wadm, ws_a), before, "keys after the refused write")
                eq(len(stub_saw(tk)), n, "provider calls with the key")

    with t("a session write without X-CSRF-Token: 403, nothing saved"):
        before = len(keys_of(wadm, ws_a))
        expect_error(wadm.post(K(ws_a), json={"provider": "openai", "keys": [gen("openai")]},
                               csrf=None), 403, "forbidden")
        eq(len(keys_of(wadm, ws_a)), before, "keys")

    tok_ids = {}
    with t("admin token: every write works (add, test, patch, rotate, reorder, delete)"):
        tka = toks["admin"]
        k = gen("anthropic")
        stub.set_key(k, "ok")
        r = add(tka, ws_a, "anthropic", [k], names=["Token made"])
        kid = r.json["keys"][0]["id"]
        tok_ids["created"] = kid
        eq(test_key(tka, ws_a, kid).json.get("status"), "valid", "test")
        expect(200, tka.patch("%s/%s" % (K(ws_a), kid), json={"priority": 60}), "patch")
        expect(200, tka.post("%s/%s/rotate" % (K(ws_a), kid), json={"key": gen("anthropic")}),
               "rotate")
        expect(200, tka.put(K(ws_a) + "/reorder", json={"keys": [{"id": kid, "priority": 61}]}),
               "reorder")
        expect(204, tka.delete("%s/%s" % (K(ws_a), kid)), "delete")

    # -- audit -----------------------------------------------------------------------------------
    entries = []
    with t("audit: GET /api/workspaces/{ws}/audit answers entries"):
        r = wadm.get("/api/workspaces/%s/audit?limit=200" % ws_a)
        expect(200, r)
        true(isinstance(r.json.get("entries"), list) and r.json["entries"],
             "no entries: %s" % r.describe(300))
        entries = r.json["entries"]

    with t("audit: entry ids are distinct UUIDs (api.md: ids are UUIDs)"):
        ids = [e.get("id") for e in entries]
        bad = []
        for i in ids:
            try:
                if str(uuid.UUID(i)) != i:
                    bad.append(i)
            except (TypeError, ValueError):
                bad.append(i)
        eq(bad, [], "ids that are not UUIDs in canonical form")
        eq(len(set(ids)), len(ids), "distinct ids")

    with t("audit: pages of 3 following nextCursor give the first page's entries, in order"):
        paged, cursor = [], None
        while len(paged) < min(len(entries), 12):
            r = wadm.get("/api/workspaces/%s/audit?limit=3%s"
                         % (ws_a, "&before=" + cursor if cursor else ""))
            expect(200, r)
            paged += r.json["entries"]
            cursor = r.json["nextCursor"]
            if cursor is None:
                break
        n = min(len(entries), 12)
        eq([e["id"] for e in paged[:n]], [e["id"] for e in entries[:n]], "ids, page by page")

    def find(action, target=None, actor_type="user"):
        for e in entries:
            if e.get("action") == action and (target is None or e.get("target") == target) \
                    and (e.get("actor") or {}).get("type") == actor_type:
                return e
        raise CheckError("no %s entry%s by a %s among %d: %s"
                         % (action, " for " + target if target else "", actor_type,
                            len(entries), sorted({x.get("action") for x in entries})))

    def check_entry(e, actor_id=None):
        expect_time(e.get("at"), "at")
        act = e.get("actor") or {}
        true(act.get("type") in ("user", "token"), "actor %r" % act)
        true(act.get("id"), "actor without id: %r" % act)
        if actor_id:
            eq(act.get("id"), actor_id, "actor id")
        true(isinstance(e.get("ip"), str) and e["ip"], "ip %r" % e.get("ip"))
        true(e["ip"] in ("127.0.0.1", "::1", "::ffff:127.0.0.1"), "ip %r" % e["ip"])

    audit_cases = [
        ("key.created", anth_ids[0] if anth_ids else None),
        ("key.rotated", rid),
        ("key.updated", pid),
        ("key.deleted", did),
        ("key.tested", pid),
    ]
    for action, target in audit_cases:
        with t("audit: %s by the workspace admin, with actor and ip" % action):
            check_entry(find(action, target), wadm_id)

    with t("audit: key.reordered by the instance admin in the reorder workspace"):
        r = adm.get("/api/workspaces/%s/audit?limit=200" % mws)
        expect(200, r)
        es = [e for e in r.json["entries"] if e.get("action") == "key.reordered"]
        true(es, "no key.reordered entry: %s" % sorted({e.get("action")
                                                        for e in r.json["entries"]}))
        check_entry(es[0], adm.user["id"])

    with t("audit: key.tested carries the outcome, different for valid and invalid tests"):
        outcomes = {}
        for e in entries:
            if e.get("action") == "key.tested" and e.get("target") == tested["anthropic"][1]:
                outcomes.setdefault(str((e.get("detail") or {}).get("status")),
                                    (e.get("detail") or {}).get("outcome"))
        true("valid" in outcomes and "invalid" in outcomes, "tests recorded: %r" % outcomes)
        true(outcomes["valid"] and outcomes["invalid"] and outcomes["valid"] !=
             outcomes["invalid"], "outcomes %r" % outcomes)

    for action in ("key.created", "key.tested", "key.updated", "key.rotated", "key.reordered",
                   "key.deleted"):
        with t("audit: %s by the admin token has actor type token" % action):
            e = find(action, tok_ids.get("created") if action != "key.reordered" else None,
                     actor_type="token")
            check_entry(e)

    with t("audit: no secret in the audit trail"):
        r = wadm.get("/api/workspaces/%s/audit?limit=200" % ws_a)
        eq(leaks(r.text), [], "secrets in the audit trail")

    # -- network failure: a private stack whose stub is stopped ---------------------------------
    tmp = tempfile.mkdtemp(prefix="krkeys-", dir="/tmp")
    p = None
    try:
        with t("private stack with its own stub: up"):
            p = krstack.Stack.start(os.path.join(tmp, "s"))
        if p is not None:
            pst = p.stub
            padm = login(p.base_url, p.admin_email, p.admin_password)
            pk = "/api/workspaces/%s/keys" % p.workspace
            ka, kc = gen("anthropic"), gen("openai_compatible")
            pst.set_key(ka, "ok")
            pst.set_key(kc, "ok")
            pids = {}
            with t("private stack: an Anthropic and an openai_compatible key tested valid"):
                for prov, k in (("anthropic", ka), ("openai_compatible", kc)):
                    r = padm.post(pk, json={"provider": prov, "keys": [k]})
                    expect(201, r)
                    pids[prov] = r.json["keys"][0]["id"]
                for i in pids.values():
                    r = padm.post("%s/%s/test" % (pk, i), json={})
                    expect(200, r)
                    eq(r.json.get("status"), "valid", "status")
            with t("private stack: stub stopped"):
                eq(p.stop_service("stub"), [], "problems stopping the stub")
            for what, i in (("anthropic", pids.get("anthropic")),
                            ("openai_compatible (server offline)",
                             pids.get("openai_compatible"))):
                with t("POST test with the provider unreachable, %s: valid false, status "
                       "stays valid, error says why" % what):
                    r = padm.post("%s/%s/test" % (pk, i), json={})
                    expect(200, r)
                    eq((r.json.get("valid"), r.json.get("status")), (False, "valid"),
                       "valid, status")
                    err = str(r.json.get("error") or "")
                    true(any(w in err.lower() for w in ("connect", "refused", "offline",
                                                        "network", "unreachable")),
                         "error does not say the provider was unreachable: %r" % err)
                    keys = {k["id"]: k for k in padm.get(pk).json["keys"]}
                    eq(keys[i]["status"], "valid", "listed status")
            with t("validate:true with the provider unreachable: 422 keys[0], nothing saved"):
                before = len(padm.get(pk).json["keys"])
                k = gen("anthropic")
                expect_error(padm.post(pk, json={"provider": "anthropic", "keys": [k],
                                                 "validate": True}),
                             422, "validation_failed", field="keys[0]")
                eq(len(padm.get(pk).json["keys"]), before, "keys")
            with t("private stack: stub started again on the same port, the key tests valid"):
                p.start_service("stub")
                p.stub.set_key(ka, "ok")
                r = padm.post("%s/%s/test" % (pk, pids.get("anthropic")), json={})
                expect(200, r)
                eq((r.json.get("valid"), r.json.get("status")), (True, "valid"),
                   "valid, status")
            with t("private stack: no secret in its logs"):
                logs = p.log_text()
                true(logs, "no logs")
                eq(leaks(logs), [], "secrets in the private stack's logs")
    finally:
        if p is not None:
            with t("private stack: down without problems (sanitizers, SIGTERM)"):
                eq(p.down(), [], "problems")
        shutil.rmtree(tmp, ignore_errors=True)

    with t("validate-before-save with a key stored already: 409 keys[i], the provider never sees it"):
        dws = create_workspace(adm)["slug"]
        stored, _ = add_one(adm, dws, "anthropic")
        fresh = gen("anthropic")
        stub.set_key(fresh, "ok")
        r = adm.post(K(dws), json={"provider": "anthropic", "keys": [fresh, stored],
                                   "validate": True})
        expect_error(r, 409, "conflict", field="keys[1]")
        eq(stub_saw(fresh), [], "requests with the new key (nothing is tested before the 409)")
        eq(len(adm.get(K(dws)).json["keys"]), 1, "keys stored")

    # -- no secret anywhere ----------------------------------------------------------------------
    with t("no provider key in any answer of this script (%d answers)" % len(SEEN)):
        bad = sorted({x for text in SEEN for x in leaks(text)})
        eq(bad, [], "secrets seen in answers")

    with t("no provider key in the stack's logs"):
        logs = s.log_text()
        true(len(logs) > 0, "log_text() is empty: cannot check")
        eq(leaks(logs), [], "secrets in the logs")


if __name__ == "__main__":
    run("keys", body)
