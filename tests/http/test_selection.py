#!/usr/bin/env python3
"""Key selection (design.md "Key selection"), observed through
`keyrelay-admin candidates --workspace S [--provider P]`, which prints the ordered candidates
the next attempt of a job would try (`N provider key:<id>|system:<n> model=<m> fallback=<0|1>`,
then `cooling until <time>` when a key cools down).

Priorities; disabled, invalid, exhausted, cooling and expired keys skipped; the fallback chain
with fallback=1; a requested provider first; system keys from the environment last when
allowSystemKeys, never otherwise; the effective primary; every change of keys seen by the very
next selection with no restart.

Runs against the shared stack ($KEYRELAY_TEST_STACK) and its stub provider; own workspaces.
"""
import os
import re
import secrets
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import krstack  # noqa: E402
from krclient import (CheckError, SetupError, admin_client, create_workspace,  # noqa: E402
                      eq, expect, expect_time, run, true)

PROVIDER_ENV = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY",
                "google": "GEMINI_API_KEY", "zai": "ZAI_API_KEY",
                "moonshot": "MOONSHOT_API_KEY"}
DEFAULT_MODEL = {"anthropic": "claude-sonnet-4-5-20250929", "openai": "gpt-4o-mini",
                 "google": "gemini-2.5-flash", "zai": "glm-5", "moonshot": "moonshot-v1-8k"}
LINE = re.compile(r"^(\d+) ([a-z_]+) (key:([0-9a-fA-F-]{36})|system:(\d+)) model=(\S+) "
                  r"fallback=([01])$")
COOLING = re.compile(r"^cooling until (\S+)$")


def rnd(n=32):
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(n))


def new_secret(provider):
    return {"anthropic": "sk-ant-api03-" + rnd(40), "openai": "sk-proj-" + rnd(40),
            "google": "AIzaSy" + rnd(33), "zai": rnd(24).lower() + "." + rnd(16),
            "moonshot": "sk-" + rnd(40)}[provider]


class Candidates:
    """Parsed output of `keyrelay-admin candidates`."""

    def __init__(self, stdout):
        self.raw = stdout
        self.rows = []          # (provider, "key:<id>" | "system:<n>", model, fallback)
        self.cooling = None
        lines = stdout.splitlines()
        for i, line in enumerate(lines):
            m = LINE.match(line)
            if m:
                if self.cooling is not None:
                    raise CheckError("candidate line after 'cooling until': %r" % stdout)
                if int(m.group(1)) != len(self.rows) + 1:
                    raise CheckError("candidate numbered %s at position %d: %r"
                                     % (m.group(1), len(self.rows) + 1, stdout))
                ref = "key:" + m.group(4) if m.group(4) else "system:" + m.group(5)
                self.rows.append((m.group(2), ref, m.group(6), int(m.group(7))))
                continue
            m = COOLING.match(line)
            if m and self.cooling is None and i == len(lines) - 1:
                self.cooling = m.group(1)
                continue
            raise CheckError("unexpected line %r in the output of candidates:\n%s"
                             % (line, stdout))

    def refs(self):
        return [r[1] for r in self.rows]

    def ids(self):
        return [r[1][4:] for r in self.rows if r[1].startswith("key:")]


def admin_env(s, env=None):
    """The stack programs' environment without any provider key variable, plus env."""
    base = s._env() if hasattr(s, "_env") else dict(os.environ)
    for v in PROVIDER_ENV.values():
        base.pop(v, None)
    base.update(env or {})
    return base


def candidates(s, ws, provider=None, env=None):
    argv = [str(s.bin_dir / "keyrelay-admin"), "--config", s.config, "candidates",
            "--workspace", ws]
    if provider:
        argv += ["--provider", provider]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       env=admin_env(s, env), timeout=120)
    if r.returncode != 0:
        raise CheckError("keyrelay-admin candidates --workspace %s%s: exit %d: %s%s"
                         % (ws, " --provider " + provider if provider else "", r.returncode,
                            r.stdout, r.stderr))
    return Candidates(r.stdout)


def kpath(ws, kid=None, action=None):
    p = "/api/workspaces/%s/keys" % ws
    if kid:
        p += "/" + kid
    if action:
        p += "/" + action
    return p


def add_keys(client, ws, provider, secrets_, stub=None, mode="ok"):
    if stub is not None:
        for sx in secrets_:
            stub.set_key(sx, mode)
    r = client.post(kpath(ws), json={"provider": provider, "keys": secrets_})
    if r.status != 201:
        raise SetupError("add %s keys to %s: %s" % (provider, ws, r.describe()))
    return [k["id"] for k in r.json["keys"]]


def keys_of(client, ws):
    r = client.get(kpath(ws))
    expect(200, r, "GET keys")
    return {k["id"]: k for k in r.json["keys"]}


def patch(client, ws, kid, body):
    r = client.patch(kpath(ws, kid), json=body)
    expect(200, r, "PATCH key %s %s" % (kid, body))
    return r.json


def key_test(client, ws, kid):
    r = client.post(kpath(ws, kid, "test"), json={})
    expect(200, r, "POST test")
    return r.json


def put_providers(client, ws, body):
    r = client.put("/api/workspaces/%s/providers" % ws, json=body)
    expect(200, r, "PUT providers %s" % body)
    return r.json


def refs(provider_ids):
    return ["key:" + i for i in provider_ids]


# ---------------------------------------------------------------------------------------------

def part_statuses(t, s, admin):
    stub = s.stub
    with t.setup("statuses: a workspace with 7 anthropic keys (stub: ok)"):
        ws = create_workspace(admin)["slug"]
        sec = [new_secret("anthropic") for _ in range(7)]
        ids = add_keys(admin, ws, "anthropic", sec, stub=stub)
        name = dict(zip(("p0", "dis", "inv", "exh", "cool", "exp", "p6"), ids))
        secret_of = dict(zip(ids, sec))

    with t("priorities: candidates in priority order, fallback=0, default model"):
        c = candidates(s, ws)
        eq(c.refs(), refs(ids), "candidates")
        eq({(r[0], r[2], r[3]) for r in c.rows},
           {("anthropic", DEFAULT_MODEL["anthropic"], 0)}, "provider/model/fallback")
        eq(c.cooling, None, "cooling line")

    with t("priorities: --provider anthropic gives the same list"):
        eq(candidates(s, ws, "anthropic").refs(), refs(ids), "candidates")

    order = list(reversed(ids))
    with t("priorities: after PUT keys/reorder (reversed), the next selection is reversed"):
        r = admin.put(kpath(ws, "reorder"),
                      json={"keys": [{"id": k, "priority": i} for i, k in enumerate(order)]})
        expect(200, r, "reorder")
        eq(candidates(s, ws).refs(), refs(order), "candidates")

    with t("priorities: PATCH priority moves one key to the front"):
        patch(admin, ws, name["p0"], {"priority": 0})
        for i, k in enumerate(order):
            if k != name["p0"]:
                patch(admin, ws, k, {"priority": i + 1})
        order = [name["p0"]] + [k for k in order if k != name["p0"]]
        eq(candidates(s, ws).refs(), refs(order), "candidates")

    def expect_without(skipped, what):
        want = [k for k in order if k not in skipped]
        eq(candidates(s, ws).refs(), refs(want), what)

    skipped = set()
    with t("disabled: PATCH isEnabled=false: status disabled, skipped"):
        k = patch(admin, ws, name["dis"], {"isEnabled": False})
        eq(k.get("status"), "disabled", "status")
        skipped.add(name["dis"])
        expect_without(skipped, "candidates")

    with t("invalid: stub answers 401, POST test: status invalid, skipped"):
        stub.set_key(secret_of[name["inv"]], "auth")
        res = key_test(admin, ws, name["inv"])
        eq((res.get("valid"), res.get("status")), (False, "invalid"), "test answer")
        skipped.add(name["inv"])
        expect_without(skipped, "candidates")

    with t("exhausted: stub answers quota (402 billing), POST test: status exhausted, skipped"):
        stub.set_key(secret_of[name["exh"]], "quota")
        res = key_test(admin, ws, name["exh"])
        eq((res.get("valid"), res.get("status")), (False, "exhausted"), "test answer")
        skipped.add(name["exh"])
        expect_without(skipped, "candidates")

    with t("rate limit on a test (429, retry-after 120): valid=false, status unchanged"):
        stub.set_key(secret_of[name["cool"]], "rate", retry_after=120)
        before = keys_of(admin, ws)[name["cool"]]["status"]
        res = key_test(admin, ws, name["cool"])
        eq(res.get("valid"), False, "valid")
        eq(res.get("status"), before, "status")
        true(isinstance(res.get("error"), str) and res["error"], "error: %r" % res)
    rate_cooldown = keys_of(admin, ws)[name["cool"]].get("cooldownUntil")
    print("# note: after a rate-limited test, cooldownUntil = %r" % rate_cooldown)

    with t("cooling: a key in cooldown (cooldown_until = NOW + 1 hour) is skipped, and "
           "'cooling until' names its cooldown"):
        s.sql("UPDATE provider_keys SET cooldown_until = NOW(3) + INTERVAL 1 HOUR "
              "WHERE id = ?", name["cool"])
        k = keys_of(admin, ws)[name["cool"]]
        expect_time(k.get("cooldownUntil"), "cooldownUntil")
        skipped.add(name["cool"])
        c = candidates(s, ws)
        eq(c.refs(), refs([x for x in order if x not in skipped]), "candidates")
        eq(c.cooling, k["cooldownUntil"], "cooling until")

    with t("cooling: a key of a provider that is not tried does not give a cooling line"):
        c = candidates(s, ws, "openai")
        eq((c.refs(), c.cooling), ([], None), "candidates for openai")

    with t("expired: PATCH expiresAt in the past: status expired, skipped"):
        k = patch(admin, ws, name["exp"], {"expiresAt": "2020-01-01T00:00:00Z"})
        eq(k.get("status"), "expired", "status")
        skipped.add(name["exp"])
        expect_without(skipped, "candidates")

    with t("expired: an expiresAt in the future keeps the key"):
        patch(admin, ws, name["exp"], {"expiresAt": "2099-01-01T00:00:00Z"})
        skipped.discard(name["exp"])
        expect_without(skipped, "candidates")

    with t("cooling: once the cooldown is over the key is back, and no cooling line"):
        s.sql("UPDATE provider_keys SET cooldown_until = NOW(3) - INTERVAL 1 SECOND "
              "WHERE id = ?", name["cool"])
        skipped.discard(name["cool"])
        c = candidates(s, ws)
        eq(c.refs(), refs([x for x in order if x not in skipped]), "candidates")
        eq(c.cooling, None, "cooling line")

    with t("disabled: re-enabled, the key is back at its priority"):
        patch(admin, ws, name["dis"], {"isEnabled": True})
        skipped.discard(name["dis"])
        expect_without(skipped, "candidates")

    with t("only usable keys: exactly the keys GET shows untested or valid"):
        usable = [k for k, v in keys_of(admin, ws).items()
                  if v["status"] in ("untested", "valid") and v.get("cooldownUntil") is None]
        eq(sorted(candidates(s, ws).ids()), sorted(usable), "candidates")


def part_chain(t, s, admin):
    stub = s.stub
    with t.setup("chain: a workspace with anthropic, google, openai and zai keys"):
        ws = create_workspace(admin)["slug"]
        a = add_keys(admin, ws, "anthropic", [new_secret("anthropic") for _ in range(2)], stub)
        g = add_keys(admin, ws, "google", [new_secret("google")], stub)
        o = add_keys(admin, ws, "openai", [new_secret("openai") for _ in range(2)], stub)
        z = add_keys(admin, ws, "zai", [new_secret("zai")], stub)
        put_providers(admin, ws, {"primary": "anthropic",
                                  "fallbackChain": ["google", "openai", "moonshot"],
                                  "models": {"google": "gemini-2.5-pro"},
                                  "allowSystemKeys": False})

    def rows(ids, provider, fb, model=None):
        return [(provider, "key:" + i, model or DEFAULT_MODEL[provider], fb) for i in ids]

    chain_rows = (rows(a, "anthropic", 0) + rows(g, "google", 1, "gemini-2.5-pro")
                  + rows(o, "openai", 1))
    with t("chain: primary's keys first (fallback=0), then the chain in order (fallback=1) "
           "with each provider's model; providers outside the chain are not tried"):
        eq(candidates(s, ws).rows, chain_rows, "candidates")

    with t("requested provider: --provider openai: openai first (fallback=0), then the chain "
           "without it"):
        eq(candidates(s, ws, "openai").rows,
           rows(o, "openai", 0) + rows(g, "google", 1, "gemini-2.5-pro"), "candidates")

    with t("requested provider: --provider zai (not in the chain): zai first, then the chain"):
        eq(candidates(s, ws, "zai").rows,
           rows(z, "zai", 0) + rows(g, "google", 1, "gemini-2.5-pro") + rows(o, "openai", 1),
           "candidates")

    with t("requested provider: --provider moonshot (no keys): only the chain, as fallbacks"):
        eq(candidates(s, ws, "moonshot").rows,
           rows(g, "google", 1, "gemini-2.5-pro") + rows(o, "openai", 1), "candidates")

    sysenv = {"ANTHROPIC_API_KEY": "sysA1-" + rnd(12) + ", sysA2-" + rnd(12),
              "GEMINI_API_KEY": "sysG-" + rnd(12), "OPENAI_API_KEY": "",
              "ZAI_API_KEY": "sysz." + rnd(12), "MOONSHOT_API_KEY": "sysM-" + rnd(12)}
    with t("system keys: allowSystemKeys false: none, though the environment has them"):
        c = candidates(s, ws, env=sysenv)
        eq(c.rows, chain_rows, "candidates")

    sys_rows = [("anthropic", "system:0", DEFAULT_MODEL["anthropic"], 0),
                ("anthropic", "system:1", DEFAULT_MODEL["anthropic"], 0),
                ("google", "system:0", "gemini-2.5-pro", 1),
                ("moonshot", "system:0", DEFAULT_MODEL["moonshot"], 1)]
    with t("system keys: allowSystemKeys true: after every workspace key, in provider order, "
           "one per list entry, none for an empty variable or a provider not tried"):
        put_providers(admin, ws, {"allowSystemKeys": True})
        eq(candidates(s, ws, env=sysenv).rows, chain_rows + sys_rows, "candidates")

    with t("system keys: allowSystemKeys true without provider variables: none"):
        eq(candidates(s, ws).rows, chain_rows, "candidates")

    with t("system keys: with --provider zai, zai's system key comes first among them"):
        eq(candidates(s, ws, "zai", env=sysenv).rows,
           rows(z, "zai", 0) + rows(g, "google", 1, "gemini-2.5-pro") + rows(o, "openai", 1)
           + [("zai", "system:0", DEFAULT_MODEL["zai"], 0),
              ("google", "system:0", "gemini-2.5-pro", 1),
              ("moonshot", "system:0", DEFAULT_MODEL["moonshot"], 1)],
           "candidates")

    with t("system keys: allowSystemKeys back to false: none again"):
        put_providers(admin, ws, {"allowSystemKeys": False})
        eq(candidates(s, ws, env=sysenv).rows, chain_rows, "candidates")

    with t("chain: a changed chain and model are used by the next selection"):
        put_providers(admin, ws, {"fallbackChain": ["openai"], "models": {"openai": "gpt-4.1"}})
        eq(candidates(s, ws).rows, rows(a, "anthropic", 0) + rows(o, "openai", 1, "gpt-4.1"),
           "candidates")

    with t("chain: a changed primary is used by the next selection"):
        put_providers(admin, ws, {"primary": "google"})
        eq(candidates(s, ws).rows,
           rows(g, "google", 0, "gemini-2.5-pro") + rows(o, "openai", 1, "gpt-4.1"),
           "candidates")


def part_effective(t, s, admin):
    stub = s.stub
    with t("effective primary: no primary set, only google keys: google first, fallback=0"):
        ws = create_workspace(admin)["slug"]
        g = add_keys(admin, ws, "google", [new_secret("google") for _ in range(2)], stub)
        r = admin.get("/api/workspaces/%s/providers" % ws)
        expect(200, r)
        eq(r.json.get("primary"), None, "stored primary")
        eq(r.json.get("effectivePrimary"), "google", "effectivePrimary")
        eq(candidates(s, ws).rows,
           [("google", "key:" + i, DEFAULT_MODEL["google"], 0) for i in g], "candidates")

    with t("effective primary: no primary set, keys of two providers: the first candidate is "
           "the effectivePrimary of GET providers, with fallback=0"):
        add_keys(admin, ws, "moonshot", [new_secret("moonshot")], stub)
        r = admin.get("/api/workspaces/%s/providers" % ws)
        expect(200, r)
        c = candidates(s, ws)
        true(c.rows, "no candidates")
        eq((c.rows[0][0], c.rows[0][3]), (r.json.get("effectivePrimary"), 0),
           "first candidate's provider and fallback")

    with t.setup("effective primary: a workspace with primary anthropic (one key) and chain "
                 "[google]"):
        ws = create_workspace(admin)["slug"]
        a = add_keys(admin, ws, "anthropic", [new_secret("anthropic")], stub)
        g = add_keys(admin, ws, "google", [new_secret("google")], stub)
        put_providers(admin, ws, {"primary": "anthropic", "fallbackChain": ["google"]})

    with t("effective primary: the primary's last key disabled: next selection is google's "
           "key, and GET providers says effectivePrimary google"):
        patch(admin, ws, a[0], {"isEnabled": False})
        r = admin.get("/api/workspaces/%s/providers" % ws)
        eq(r.json.get("effectivePrimary"), "google", "effectivePrimary")
        c = candidates(s, ws)
        eq(c.ids(), g, "candidates")
        print("# note: google key as effective primary after disabling: fallback=%d"
              % c.rows[0][3])

    with t("effective primary: the primary's last key deleted: google's key is the only "
           "candidate"):
        patch(admin, ws, a[0], {"isEnabled": True})
        eq(candidates(s, ws).ids(), a + g, "candidates with the key re-enabled")
        expect(204, admin.delete(kpath(ws, a[0])), "DELETE key")
        r = admin.get("/api/workspaces/%s/providers" % ws)
        eq(r.json.get("effectivePrimary"), "google", "effectivePrimary")
        eq(candidates(s, ws).ids(), g, "candidates")

    with t("no keys and no system keys: no candidates, exit 0"):
        ws2 = create_workspace(admin)["slug"]
        c = candidates(s, ws2)
        eq((c.rows, c.cooling), ([], None), "candidates")


def part_fresh(t, s, admin):
    stub = s.stub
    with t.setup("fresh: a workspace with two anthropic keys"):
        ws = create_workspace(admin)["slug"]
        x = add_keys(admin, ws, "anthropic", [new_secret("anthropic") for _ in range(2)], stub)
        eq(candidates(s, ws).ids(), x, "first selection")

    with t("fresh: a key added is seen by the next selection"):
        x += add_keys(admin, ws, "anthropic", [new_secret("anthropic")], stub)
        eq(candidates(s, ws).ids(), x, "candidates")

    with t("fresh: a key made invalid, then rotated, is back in the next selection"):
        sx = new_secret("anthropic")
        stub.set_key(sx, "auth")
        r = admin.post(kpath(ws, x[1], "rotate"), json={"key": sx})
        expect(200, r, "rotate to a key the stub refuses")
        res = key_test(admin, ws, x[1])
        eq(res.get("status"), "invalid", "status after the test")
        eq(candidates(s, ws).ids(), [x[0], x[2]], "candidates with x1 invalid")
        sy = new_secret("anthropic")
        stub.set_key(sy, "ok")
        r = admin.post(kpath(ws, x[1], "rotate"), json={"key": sy})
        expect(200, r, "rotate")
        eq(r.json.get("status"), "untested", "status after rotation")
        eq(candidates(s, ws).ids(), x, "candidates")

    with t("fresh: a key disabled is dropped by the next selection"):
        patch(admin, ws, x[0], {"isEnabled": False})
        eq(candidates(s, ws).ids(), [x[1], x[2]], "candidates")

    with t("fresh: a key deleted is dropped by the next selection"):
        expect(204, admin.delete(kpath(ws, x[2])), "DELETE key")
        eq(candidates(s, ws).ids(), [x[1]], "candidates")

    with t("fresh: an exhausted key rotated is back"):
        sq = new_secret("anthropic")
        stub.set_key(sq, "quota")
        r = admin.post(kpath(ws, x[1], "rotate"), json={"key": sq})
        expect(200, r, "rotate")
        eq(key_test(admin, ws, x[1]).get("status"), "exhausted", "status after the test")
        eq(candidates(s, ws).ids(), [], "candidates with every key unusable")
        sz = new_secret("anthropic")
        stub.set_key(sz, "ok")
        expect(200, admin.post(kpath(ws, x[1], "rotate"), json={"key": sz}), "rotate")
        eq(candidates(s, ws).ids(), [x[1]], "candidates")


def body(t):
    s = krstack.Stack.from_env()
    with t.setup("setup: instance admin; stub provider reachable"):
        admin = admin_client(s)
        true(s.stub.healthy(), "the stack's stub provider does not answer")
    part_statuses(t, s, admin)
    part_chain(t, s, admin)
    part_effective(t, s, admin)
    part_fresh(t, s, admin)


if __name__ == "__main__":
    run("selection", body)
