#!/usr/bin/env python3
"""Provider settings (api.md "Provider settings", issue 3) through nginx, with every role:
GET shape (primary, fallbackChain, models, allowSystemKeys, providers[] with keyCount,
usableKeyCount, systemKeyAvailable, effectivePrimary); PUT and its validation (unknown
provider, duplicates in the chain, the primary inside the chain, wrong types: 422 naming the
field, nothing changed); models; per-workspace baseUrls only inside the instance allowlist (the
stub's origin is in it); effectivePrimary moving to the first chain provider with a usable key
when the primary's last key is deleted, disabled, invalid or expired, and back when a key is
added; system keys (a private stack with GEMINI_API_KEY); member and viewer refused PUT;
settings.changed in the audit trail; no secret in any answer or log.

Runs against the shared stack ($KEYRELAY_TEST_STACK) and its stub provider (s.stub); creates
its own workspaces, users and tokens.
"""
import os
import secrets
import shutil
import string
import threading
import sys
import tempfile
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import krstack  # noqa: E402
from krclient import (CheckError, Client, RecordingClient,  # noqa: E402
                      create_user, create_workspace, eq, expect, expect_error, expect_time,
                      fake_key, leaked_keys, run, true, user_client, wait_for)

PROVIDERS = ("anthropic", "openai", "google", "zai", "moonshot", "openai_compatible")
# providers.md: protocol and default model of each provider.
PROTOCOL = {"anthropic": "anthropic", "openai": "openai", "google": "gemini", "zai": "openai",
            "moonshot": "openai", "openai_compatible": "openai"}
DEFAULT_MODEL = {"anthropic": "claude-sonnet-4-5-20250929", "openai": "gpt-4o-mini",
                 "google": "gemini-2.5-flash", "zai": "glm-5", "moonshot": "moonshot-v1-8k",
                 "openai_compatible": None}
SYSTEM_ENV = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY",
              "google": "GEMINI_API_KEY", "zai": "ZAI_API_KEY", "moonshot": "MOONSHOT_API_KEY"}
TOP_FIELDS = ("primary", "fallbackChain", "models", "allowSystemKeys", "providers",
              "effectivePrimary")
PROVIDER_FIELDS = ("id", "name", "protocol", "defaultModel", "keyCount", "usableKeyCount",
                   "systemKeyAvailable")
ALNUM = string.ascii_letters + string.digits

SEEN = []
SECRETS = []


def login(base, email, password):
    """A client logged in as email whose answers are kept in SEEN."""
    return user_client(base, email, password, seen=SEEN)


def rnd(n):
    return "".join(secrets.choice(ALNUM) for _ in range(n))


def gen(provider):
    return fake_key(provider, SECRETS)


def leaks(text, keys=None):
    """The keys (shortened) whose whole text or hidden middle appears in text."""
    return leaked_keys(text, SECRETS if keys is None else keys)


def body(t):
    s = krstack.Stack.from_env()
    base = s.base_url
    stub = s.stub
    stub_origin = stub.url            # http://127.0.0.1:PORT, in the stack's allowlist

    def PV(ws):
        return "/api/workspaces/%s/providers" % ws

    def K(ws):
        return "/api/workspaces/%s/keys" % ws

    def get(client, ws):
        r = client.get(PV(ws))
        expect(200, r, "GET providers")
        return r.json

    def put(client, ws, b, status=200):
        r = client.put(PV(ws), json=b)
        expect(status, r, "PUT providers %s" % b)
        return r

    def prov_entry(doc, pid):
        for p in doc["providers"]:
            if p.get("id") == pid:
                return p
        raise CheckError("provider %s missing from providers[]" % pid)

    def add_key(client, ws, provider, mode="ok"):
        k = gen(provider)
        stub.set_key(k, mode)
        r = client.post(K(ws), json={"provider": provider, "keys": [k]})
        expect(201, r, "add %s key" % provider)
        return k, r.json["keys"][0]["id"]

    # ---------------------------------------------------------------------------------------
    with t.setup("setup: workspace A with users admin/member/viewer and tokens of each role"):
        adm = login(base, s.admin_email, s.admin_password)
        ws_a = create_workspace(adm)["slug"]
        users = {}
        for role in ("admin", "member", "viewer"):
            u, email, pw = create_user(adm, name="Providers " + role)
            expect(201, adm.post("/api/workspaces/%s/members" % ws_a,
                                 json={"email": email, "role": role}), "add " + role)
            users[role] = (u, login(base, email, pw))
        toks = {}
        for role in ("admin", "member", "viewer"):
            r = adm.post("/api/workspaces/%s/tokens" % ws_a,
                         json={"name": "providers " + role, "role": role})
            expect(201, r, "token " + role)
            toks[role] = RecordingClient(base, SEEN, bearer=r.json["secret"])
    wadm = users["admin"][1]
    wadm_id = users["admin"][0]["id"]
    roles = {"admin session": wadm, "member session": users["member"][1],
             "viewer session": users["viewer"][1], "admin token": toks["admin"],
             "member token": toks["member"], "viewer token": toks["viewer"]}
    readers = {k: v for k, v in roles.items() if not k.startswith("admin")}

    # -- GET shape ----------------------------------------------------------------------------
    for name, c in roles.items():
        with t("GET providers as %s: 200 with primary, fallbackChain, models, allowSystemKeys, "
               "providers, effectivePrimary" % name):
            r = c.get(PV(ws_a))
            expect(200, r)
            doc = r.json
            eq([f for f in TOP_FIELDS if f not in doc], [], "missing fields")
            true(doc["primary"] is None or doc["primary"] in PROVIDERS, "primary %r"
                 % doc["primary"])
            true(isinstance(doc["fallbackChain"], list), "fallbackChain %r"
                 % doc["fallbackChain"])
            true(isinstance(doc["models"], dict), "models %r" % doc["models"])
            true(isinstance(doc["allowSystemKeys"], bool), "allowSystemKeys %r"
                 % doc["allowSystemKeys"])
            true(doc["effectivePrimary"] is None or doc["effectivePrimary"] in PROVIDERS,
                 "effectivePrimary %r" % doc["effectivePrimary"])

    with t("GET providers: providers[] lists the six providers with the registry's facts"):
        doc = get(wadm, ws_a)
        ids = [p.get("id") for p in doc["providers"]]
        eq(sorted(ids), sorted(PROVIDERS), "provider ids")
        for p in doc["providers"]:
            eq([f for f in PROVIDER_FIELDS if f not in p], [], "fields missing in %s" % p["id"])
            true(isinstance(p["name"], str) and p["name"], "name of %s" % p["id"])
            eq(p["protocol"], PROTOCOL[p["id"]], "protocol of %s" % p["id"])
            if DEFAULT_MODEL[p["id"]] is not None:
                eq(p["defaultModel"], DEFAULT_MODEL[p["id"]], "defaultModel of %s" % p["id"])
            eq((p["keyCount"], p["usableKeyCount"]), (0, 0), "key counts of %s" % p["id"])
            true(isinstance(p["systemKeyAvailable"], bool), "systemKeyAvailable of %s"
                 % p["id"])

    with t("GET providers: systemKeyAvailable follows the instance environment"):
        doc = get(wadm, ws_a)
        for pid, var in SYSTEM_ENV.items():
            want = bool((os.environ.get(var) or "").strip(" ,"))
            eq(prov_entry(doc, pid)["systemKeyAvailable"], want, "systemKeyAvailable of %s"
               % pid)

    with t("GET providers without a session or token: 401"):
        expect_error(RecordingClient(base, SEEN).get(PV(ws_a)), 401, "unauthorized")

    # -- PUT ---------------------------------------------------------------------------------
    full = {"primary": "anthropic", "fallbackChain": ["google", "zai", "moonshot"],
            "models": {"anthropic": "claude-sonnet-4-5-20250929", "google": "gemini-2.5-pro"},
            "allowSystemKeys": False}
    with t("PUT providers (primary, chain, models, allowSystemKeys): 200, the same as GET"):
        r = put(wadm, ws_a, full)
        doc = r.json
        eq(doc.get("primary"), "anthropic", "primary")
        eq(doc.get("fallbackChain"), ["google", "zai", "moonshot"], "fallbackChain")
        eq(doc.get("models", {}).get("google"), "gemini-2.5-pro", "models.google")
        eq(doc.get("models", {}).get("anthropic"), "claude-sonnet-4-5-20250929",
           "models.anthropic")
        eq(doc.get("allowSystemKeys"), False, "allowSystemKeys")
        eq([f for f in TOP_FIELDS if f not in doc], [], "missing fields")
        eq(get(wadm, ws_a), doc, "GET after PUT")

    with t("PUT with allowSystemKeys only keeps primary, chain and models"):
        doc = put(wadm, ws_a, {"allowSystemKeys": True}).json
        eq((doc["primary"], doc["fallbackChain"], doc["models"].get("google"),
            doc["allowSystemKeys"]),
           ("anthropic", ["google", "zai", "moonshot"], "gemini-2.5-pro", True), "settings")
        put(wadm, ws_a, {"allowSystemKeys": False})

    with t("PUT models: a new model shows; null removes one, the default applies again"):
        doc = put(wadm, ws_a, {"models": {"openai": "gpt-4.1", "google": None}}).json
        eq(doc["models"].get("openai"), "gpt-4.1", "models.openai")
        true("google" not in doc["models"] or doc["models"]["google"] in (None,
             DEFAULT_MODEL["google"]), "models.google %r" % doc["models"].get("google"))
        eq(doc["models"].get("anthropic"), "claude-sonnet-4-5-20250929", "models.anthropic kept")

    with t("PUT fallbackChain [] empties the chain"):
        doc = put(wadm, ws_a, {"fallbackChain": []}).json
        eq(doc["fallbackChain"], [], "fallbackChain")
        put(wadm, ws_a, {"fallbackChain": ["google", "zai", "moonshot"]})

    with t("PUT unknown fields are ignored: 200"):
        put(wadm, ws_a, {"colour": "blue"})

    with t("PUT fallbackChain, models, baseUrls and allowSystemKeys null: 200, as if left "
           "out (nothing changes)"):
        before = get(wadm, ws_a)
        put(wadm, ws_a, {"fallbackChain": None, "models": None, "baseUrls": None,
                         "allowSystemKeys": None})
        eq(get(wadm, ws_a), before, "settings")

    with t("6 PUTs at once, each setting another provider's model: none is lost"):
        before = get(wadm, ws_a)["models"]
        want = {p: "m-%s-%s" % (p.replace("_", "-"), rnd(6)) for p in DEFAULT_MODEL}
        answers = {}

        def put_one(p):
            c = Client(base, bearer=toks["admin"].bearer)
            answers[p] = c.put(PV(ws_a), json={"models": {p: want[p]}}).status
        th = [threading.Thread(target=put_one, args=(p,)) for p in want]
        for x in th:
            x.start()
        for x in th:
            x.join(60)
        eq(answers, {p: 200 for p in want}, "statuses")
        got = get(wadm, ws_a)["models"]
        eq({p: got.get(p) for p in want}, want, "models after the PUTs")
        put(wadm, ws_a, {"models": {p: before.get(p) for p in want}})
        eq(get(wadm, ws_a)["models"], before, "models put back")

    bad = [
        ({"primary": "mistral"}, ("primary",), "an unknown primary"),
        ({"primary": 5}, ("primary",), "primary a number"),
        ({"primary": ["anthropic"]}, ("primary",), "primary a list"),
        ({"fallbackChain": ["google", "nope"]}, ("fallbackChain", "fallbackChain[1]"),
         "an unknown provider in the chain"),
        ({"fallbackChain": ["google", "zai", "google"]}, ("fallbackChain", "fallbackChain[2]"),
         "a duplicate in the chain"),
        ({"fallbackChain": ["openai", "anthropic"]}, ("fallbackChain", "fallbackChain[1]",
                                                      "primary"),
         "the stored primary inside the chain"),
        ({"primary": "google"}, ("primary", "fallbackChain", "fallbackChain[0]"),
         "a primary that is in the stored chain"),
        ({"primary": "zai", "fallbackChain": ["google", "zai"]},
         ("primary", "fallbackChain", "fallbackChain[1]"), "primary and chain together"),
        ({"fallbackChain": "google"}, ("fallbackChain",), "fallbackChain a string"),
        ({"fallbackChain": [3]}, ("fallbackChain", "fallbackChain[0]"),
         "a number in the chain"),
        ({"fallbackChain": {"0": "google"}}, ("fallbackChain",), "fallbackChain an object"),
        ({"models": ["gpt-4o"]}, ("models",), "models a list"),
        ({"models": "gpt-4o"}, ("models",), "models a string"),
        ({"models": {"nope": "x"}}, ("models", "models.nope"), "models for an unknown provider"),
        ({"models": {"openai": 4}}, ("models", "models.openai"), "a model that is a number"),
        ({"models": {"openai": ""}}, ("models", "models.openai"), "an empty model"),
        ({"models": {"openai": "gpt\u0001x"}}, ("models", "models.openai"),
         "a model with a control character"),
        ({"models": {"openai": "gpt-\u00e9"}}, ("models", "models.openai"),
         "a model that is not ASCII"),
        ({"allowSystemKeys": "true"}, ("allowSystemKeys",), "allowSystemKeys a string"),
        ({"allowSystemKeys": 1}, ("allowSystemKeys",), "allowSystemKeys a number"),
        ({"baseUrls": ["x"]}, ("baseUrls",), "baseUrls a list"),
        ({"primary": "openai", "fallbackChain": ["bogus"]}, ("fallbackChain",
                                                             "fallbackChain[0]"),
         "a valid primary with a bad chain (nothing applied)"),
    ]
    for b, fields, what in bad:
        with t("PUT providers with %s: 422 naming %s, settings unchanged" % (what, fields[0])):
            before = get(wadm, ws_a)
            err = expect_error(wadm.put(PV(ws_a), json=b), 422, "validation_failed")
            true(err.get("field") in fields, "field %r, expected one of %s"
                 % (err.get("field"), list(fields)))
            eq(get(wadm, ws_a), before, "settings after the refused PUT")

    with t("PUT providers with a body that is not JSON: 400 invalid_json"):
        expect_error(wadm.put(PV(ws_a), body="{primary:", content_type="application/json"),
                     400, "invalid_json")

    # -- roles ---------------------------------------------------------------------------------
    for name, c in readers.items():
        with t("PUT providers as %s: 403 forbidden, unchanged" % name):
            before = get(wadm, ws_a)
            expect_error(c.put(PV(ws_a), json={"primary": "openai", "fallbackChain": []}),
                         403, "forbidden")
            eq(get(wadm, ws_a), before, "settings")

    with t("PUT providers with a session but no X-CSRF-Token: 403, unchanged"):
        before = get(wadm, ws_a)
        expect_error(wadm.put(PV(ws_a), json={"primary": "openai"}, csrf=None), 403,
                     "forbidden")
        eq(get(wadm, ws_a), before, "settings")

    with t("PUT providers with an admin token: 200"):
        doc = put(toks["admin"], ws_a, {"allowSystemKeys": False}).json
        eq(doc["primary"], "anthropic", "primary")

    with t("another workspace's settings through A's admin token: 404"):
        ws_x = create_workspace(adm)["slug"]
        expect_error(toks["admin"].get(PV(ws_x)), 404, "not_found")
        expect_error(toks["admin"].put(PV(ws_x), json={"primary": "openai"}), 404, "not_found")

    # -- baseUrls (openai_compatible) -----------------------------------------------------------
    port = urllib.parse.urlsplit(stub_origin).port
    with t("PUT baseUrls.openai_compatible inside the allowlist (the stub's origin): 200"):
        doc = put(wadm, ws_a, {"baseUrls": {"openai_compatible": stub_origin + "/openai/v1"}}
                  ).json
        eq((doc.get("baseUrls") or {}).get("openai_compatible"), stub_origin + "/openai/v1",
           "baseUrls.openai_compatible")

    with t("an openai_compatible key test goes to the workspace's base URL"):
        k, kid = add_key(wadm, ws_a, "openai_compatible")
        r = wadm.post("%s/%s/test" % (K(ws_a), kid), json={})
        expect(200, r)
        eq((r.json.get("valid"), r.json.get("status")), (True, "valid"), "valid, status")
        paths = [q["path"] for q in stub.requests()
                 if (q.get("headers") or {}).get("authorization") == "Bearer " + k]
        true(paths and all(pth.startswith("/openai/v1/") for pth in paths),
             "paths the stub saw with the key: %r" % paths)

    outside = [
        ("another port on loopback", "http://127.0.0.1:%d/v1" % (1 if port != 1 else 2)),
        ("a public host", "https://example.com/v1"),
        ("the stub's port on another host name", "http://localhost:%d/v1" % port),
        ("user-info before another host", "http://127.0.0.1:%d@evil.example/v1" % port),
        ("the allowlisted origin as a prefix of a longer port", "%s0/v1" % stub_origin),
        ("a non-HTTP scheme", "ftp://127.0.0.1:%d/v1" % port),
        ("no scheme", "127.0.0.1:%d/v1" % port),
        ("a number", 5),
    ]
    for what, url in outside:
        with t("PUT baseUrls.openai_compatible with %s: 422 naming baseUrls, unchanged" % what):
            before = get(wadm, ws_a)
            err = expect_error(wadm.put(PV(ws_a), json={"baseUrls": {"openai_compatible": url}}),
                               422, "validation_failed")
            true(err.get("field") in ("baseUrls", "baseUrls.openai_compatible"),
                 "field %r" % err.get("field"))
            eq(get(wadm, ws_a), before, "settings")

    with t("PUT baseUrls for an unknown provider: 422"):
        err = expect_error(wadm.put(PV(ws_a), json={"baseUrls": {"lmstudio": stub_origin}}),
                           422, "validation_failed")
        true(str(err.get("field", "")).startswith("baseUrls"), "field %r" % err.get("field"))

    with t("PUT baseUrls.openai_compatible null: removed, the instance's URL applies again"):
        doc = put(wadm, ws_a, {"baseUrls": {"openai_compatible": None}}).json
        eq((doc.get("baseUrls") or {}).get("openai_compatible"), None, "baseUrls entry")
        r = wadm.post("%s/%s/test" % (K(ws_a), kid), json={})
        expect(200, r)
        eq(r.json.get("valid"), True, "valid")
        paths = [q["path"] for q in stub.requests()
                 if (q.get("headers") or {}).get("authorization") == "Bearer " + k]
        true(paths and paths[-1].startswith("/compat/v1/"), "last path %r" % paths[-1:])

    with t("a base URL stored before the allowlist lost its origin is not used: key test 422 "
           "saying so, nothing sent"):
        ws_a_id = s.sql("SELECT id FROM workspaces WHERE slug = ?", ws_a)[0][0]
        put(wadm, ws_a, {"baseUrls": {"openai_compatible": stub_origin + "/openai/v1"}})
        n = len(stub.requests())
        # what an allowlist change leaves behind: a stored URL no longer allowlisted
        s.sql("UPDATE provider_settings SET base_urls = JSON_OBJECT('openai_compatible', ?) "
              "WHERE workspace_id = ?", "http://127.0.0.2:%d/openai/v1" % port, ws_a_id)
        err = expect_error(wadm.post("%s/%s/test" % (K(ws_a), kid), json={}), 422,
                           "validation_failed")
        true("no longer in the instance's base URL allowlist" in err.get("message", ""),
             "message %r" % err.get("message"))
        eq(len(stub.requests()), n, "requests at the stub")
        put(wadm, ws_a, {"baseUrls": {"openai_compatible": None}})

    # -- effectivePrimary ------------------------------------------------------------------------
    ws_e = create_workspace(adm)["slug"]
    with t("effective primary: settings primary anthropic, chain google, openai"):
        doc = put(adm, ws_e, {"primary": "anthropic", "fallbackChain": ["google", "openai"],
                              "allowSystemKeys": False}).json
        eq(doc["primary"], "anthropic", "primary")

    def eff(what_keys):
        doc = get(adm, ws_e)
        eq(doc["primary"], "anthropic", "stored primary (%s)" % what_keys)
        return doc

    ids, secret = {}, {}
    with t("one anthropic key: effectivePrimary anthropic, keyCount 1, usableKeyCount 1"):
        _, ids["a1"] = add_key(adm, ws_e, "anthropic")
        doc = eff("one anthropic key")
        eq(doc["effectivePrimary"], "anthropic", "effectivePrimary")
        eq((prov_entry(doc, "anthropic")["keyCount"],
            prov_entry(doc, "anthropic")["usableKeyCount"]), (1, 1), "anthropic counts")

    with t("an openai key (second in the chain): effectivePrimary still anthropic"):
        _, ids["o1"] = add_key(adm, ws_e, "openai")
        eq(eff("+openai")["effectivePrimary"], "anthropic", "effectivePrimary")

    with t("delete the primary's last key: effectivePrimary openai (first chain provider with "
           "a usable key), primary setting kept"):
        expect(204, adm.delete("%s/%s" % (K(ws_e), ids["a1"])))
        doc = eff("anthropic deleted")
        eq(doc["effectivePrimary"], "openai", "effectivePrimary")
        eq(prov_entry(doc, "anthropic")["keyCount"], 0, "anthropic keyCount")

    with t("a google key (first in the chain): effectivePrimary google"):
        _, ids["g1"] = add_key(adm, ws_e, "google")
        eq(eff("+google")["effectivePrimary"], "google", "effectivePrimary")

    with t("an anthropic key again: effectivePrimary back to anthropic"):
        secret["a2"], ids["a2"] = add_key(adm, ws_e, "anthropic")
        eq(eff("+anthropic")["effectivePrimary"], "anthropic", "effectivePrimary")

    with t("disable the primary's only key: effectivePrimary google; counts 1 key, 0 usable"):
        expect(200, adm.patch("%s/%s" % (K(ws_e), ids["a2"]), json={"isEnabled": False}))
        doc = eff("anthropic disabled")
        eq(doc["effectivePrimary"], "google", "effectivePrimary")
        eq((prov_entry(doc, "anthropic")["keyCount"],
            prov_entry(doc, "anthropic")["usableKeyCount"]), (1, 0), "anthropic counts")

    with t("enable it again: effectivePrimary anthropic"):
        expect(200, adm.patch("%s/%s" % (K(ws_e), ids["a2"]), json={"isEnabled": True}))
        eq(eff("anthropic enabled")["effectivePrimary"], "anthropic", "effectivePrimary")

    with t("the primary's key tested invalid: effectivePrimary google"):
        k_a2 = secret.get("a2", "")
        stub.set_key(k_a2, "auth")
        r = adm.post("%s/%s/test" % (K(ws_e), ids["a2"]), json={})
        expect(200, r)
        eq(r.json.get("status"), "invalid", "status")
        eq(eff("anthropic invalid")["effectivePrimary"], "google", "effectivePrimary")

    with t("the key valid again, then exhausted (quota): effectivePrimary google"):
        stub.set_key(k_a2, "ok")
        eq(adm.post("%s/%s/test" % (K(ws_e), ids["a2"]), json={}).json.get("status"), "valid",
           "status after ok")
        eq(eff("anthropic valid")["effectivePrimary"], "anthropic", "effectivePrimary when valid")
        stub.set_key(k_a2, "quota")
        eq(adm.post("%s/%s/test" % (K(ws_e), ids["a2"]), json={}).json.get("status"),
           "exhausted", "status after quota")
        eq(eff("anthropic exhausted")["effectivePrimary"], "google", "effectivePrimary")

    with t("the primary's key rotated (untested, usable): effectivePrimary anthropic"):
        expect(200, adm.post("%s/%s/rotate" % (K(ws_e), ids["a2"]),
                             json={"key": gen("anthropic")}))
        eq(eff("anthropic rotated")["effectivePrimary"], "anthropic", "effectivePrimary")

    with t("the primary's key expired: effectivePrimary google"):
        expect(200, adm.patch("%s/%s" % (K(ws_e), ids["a2"]),
                              json={"expiresAt": "2020-01-01T00:00:00Z"}))
        eq(eff("anthropic expired")["effectivePrimary"], "google", "effectivePrimary")

    with t("google's key deleted too: effectivePrimary openai"):
        expect(204, adm.delete("%s/%s" % (K(ws_e), ids["g1"])))
        eq(eff("google deleted")["effectivePrimary"], "openai", "effectivePrimary")

    with t("every usable key gone: effectivePrimary is not a provider without keys"):
        expect(204, adm.delete("%s/%s" % (K(ws_e), ids["o1"])))
        doc = eff("all gone")
        ep = doc["effectivePrimary"]
        true(ep is None or prov_entry(doc, ep)["usableKeyCount"] > 0
             or prov_entry(doc, ep)["systemKeyAvailable"],
             "effectivePrimary %r has no usable key" % ep)

    with t("a key of a provider outside primary and chain does not become the effective primary "
           "... unless nothing else exists: it is never a provider without keys"):
        add_key(adm, ws_e, "moonshot")
        doc = eff("+moonshot")
        ep = doc["effectivePrimary"]
        true(ep is None or prov_entry(doc, ep)["usableKeyCount"] > 0,
             "effectivePrimary %r has no usable key" % ep)

    with t("a primary that cannot be called (openai_compatible without a model) is not the "
           "effective primary; with its model set, it is"):
        ws_m = create_workspace(adm)["slug"]
        add_key(adm, ws_m, "openai_compatible")
        add_key(adm, ws_m, "openai")
        doc = put(adm, ws_m, {"primary": "openai_compatible", "fallbackChain": ["openai"],
                              "allowSystemKeys": False}).json
        eq((doc["effectivePrimary"], doc["models"].get("openai_compatible")), ("openai", None),
           "effectivePrimary, model")
        doc = put(adm, ws_m, {"models": {"openai_compatible": "local-model"}}).json
        eq(doc["effectivePrimary"], "openai_compatible", "effectivePrimary with a model")

    # -- system keys: a private stack with GEMINI_API_KEY -----------------------------------------
    tmp = tempfile.mkdtemp(prefix="krprov-", dir="/tmp")
    p = None
    sys_key = "AIza" + rnd(35)
    SECRETS.append(sys_key)
    try:
        with t("private stack with GEMINI_API_KEY in its environment: up"):
            p = krstack.Stack.start(os.path.join(tmp, "s"), env={"GEMINI_API_KEY": sys_key})
        if p is not None:
            pa = login(p.base_url, p.admin_email, p.admin_password)
            pws = p.workspace
            with t("private stack: systemKeyAvailable true for google only"):
                doc = pa.get(PV(pws)).json
                for pid in PROVIDERS:
                    want = pid == "google" or bool(
                        (os.environ.get(SYSTEM_ENV.get(pid, "-")) or "").strip(" ,"))
                    eq(prov_entry(doc, pid)["systemKeyAvailable"], want,
                       "systemKeyAvailable of %s" % pid)
                    if pid == "google":
                        eq(prov_entry(doc, pid)["keyCount"], 0, "google keyCount")
            with t("private stack: primary anthropic (no keys), chain google, allowSystemKeys "
                   "false: effectivePrimary is not google"):
                r = pa.put(PV(pws), json={"primary": "anthropic", "fallbackChain": ["google"],
                                          "allowSystemKeys": False})
                expect(200, r)
                true(r.json["effectivePrimary"] != "google", "effectivePrimary %r"
                     % r.json["effectivePrimary"])
            with t("private stack: allowSystemKeys true: effectivePrimary google (system key)"):
                r = pa.put(PV(pws), json={"allowSystemKeys": True})
                expect(200, r)
                eq(r.json["effectivePrimary"], "google", "effectivePrimary")
                eq(r.json["allowSystemKeys"], True, "allowSystemKeys")
            with t("private stack: the system key never appears in answers or logs"):
                eq(leaks(pa.get(PV(pws)).text, [sys_key]), [], "in GET providers")
                eq(leaks(p.log_text(), [sys_key]), [], "in the logs")
            with t("private stack: a workspace's baseUrls never receive the system key: its "
                   "job's call goes to the instance's URL"):
                origin = p.stub_urls["google"].rsplit("/gemini/", 1)[0]
                p.stub.set_key(sys_key, "ok")
                r = pa.put(PV(pws), json={"primary": "google", "fallbackChain": [],
                                          "allowSystemKeys": True,
                                          "baseUrls": {"google": origin + "/compat/v1"}})
                expect(200, r)
                r = pa.post("/api/workspaces/%s/jobs" % pws,
                            json={"type": "task", "input": "system key " + rnd(8),
                                  "maxAttempts": 1})
                expect(202, r)
                url = "/api/workspaces/%s/jobs/%s" % (pws, r.json["id"])

                def ended():
                    j = pa.get(url).json
                    return j if j["status"] in ("succeeded", "failed") else None
                job = wait_for("the job to end", ended, 30, 0.2)
                paths = [q.get("path") for q in p.stub.requests()
                         if (q.get("headers") or {}).get("x-goog-api-key") == sys_key]
                true(paths, "the stub never saw the system key")
                eq([x for x in paths if not x.startswith("/gemini/v1beta/")], [],
                   "calls with the system key outside the instance's google URL")
                eq((job["status"], job.get("error")), ("succeeded", None),
                   "the job's status, error")
    finally:
        if p is not None:
            with t("private stack: down without problems"):
                eq(p.down(), [], "problems")
        shutil.rmtree(tmp, ignore_errors=True)

    # -- audit -----------------------------------------------------------------------------------
    with t("audit: settings.changed by the workspace admin, with actor, ip and the settings"):
        r = wadm.get("/api/workspaces/%s/audit?limit=200" % ws_a)
        expect(200, r)
        es = [e for e in r.json["entries"] if e.get("action") == "settings.changed"
              and (e.get("actor") or {}).get("id") == wadm_id]
        true(es, "no settings.changed entry by the workspace admin: %s"
             % sorted({e.get("action") for e in r.json["entries"]}))
        e = es[-1]            # the oldest: the full PUT
        expect_time(e.get("at"), "at")
        eq(e["actor"].get("type"), "user", "actor type")
        true(e.get("ip") in ("127.0.0.1", "::1", "::ffff:127.0.0.1"), "ip %r" % e.get("ip"))
        true(isinstance(e.get("detail"), dict) and e["detail"], "detail %r" % e.get("detail"))
        true("anthropic" in str(e["detail"]), "the detail does not show the settings: %r"
             % e["detail"])

    with t("audit: settings.changed by the admin token has actor type token"):
        r = wadm.get("/api/workspaces/%s/audit?limit=200" % ws_a)
        true(any(e.get("action") == "settings.changed"
                 and (e.get("actor") or {}).get("type") == "token" for e in r.json["entries"]),
             "no settings.changed entry by a token")

    with t("audit: refused PUTs (422, 403) changed nothing and left no settings.changed entry"):
        r = wadm.get("/api/workspaces/%s/audit?limit=200" % ws_a)
        n = sum(1 for e in r.json["entries"] if e.get("action") == "settings.changed")
        # full PUT, allowSystemKeys x2, models, chain x2, colour, all null, 6 at once and
        # their undoing, token, baseUrls x2, baseUrls x2 around the allowlist check = 20
        eq(n, 20, "settings.changed entries")

    with t("no provider key in the audit trail"):
        for ws in (ws_a, ws_e):
            r = adm.get("/api/workspaces/%s/audit?limit=200" % ws)
            eq(leaks(r.text), [], "secrets in the audit trail of %s" % ws)

    # -- no secret anywhere ----------------------------------------------------------------------
    with t("no provider key in any answer of this script (%d answers)" % len(SEEN)):
        bad = sorted({x for text in SEEN for x in leaks(text)})
        eq(bad, [], "secrets seen in answers")

    with t("no provider key in the stack's logs"):
        logs = s.log_text()
        true(len(logs) > 0, "log_text() is empty: cannot check")
        eq(leaks(logs), [], "secrets in the logs")


if __name__ == "__main__":
    run("providers", body)
