#!/usr/bin/env python3
"""Bad input never breaks the API: every route of static/openapi.json that takes a body or
a query string gets malformed ones, and answers below 500 with the error shape.
Real MariaDB, nginx, keyrelay-fcgi and keyrelay-runner, on a PRIVATE stack (the test
creates users and workspaces at random and would disturb tests that list them).

For each GET, POST, PUT and PATCH route (not logout, not the event stream), ROUNDS
requests as the instance admin: path ids that exist, that do not, or are not ids at all;
bodies built from the route's schema in the OpenAPI document, with about half the fields
given hostile values (wrong types, null, 100,000 characters, NUL, huge and negative
numbers, deep nesting, impossible dates, extra fields) and now and then no object at all;
query strings with bad limits, cursors, dates and filters. The inputs come from a fixed
seed (KEYRELAY_ROBUSTNESS_SEED overrides it), so a failure can be replayed.
Then each string (or array of strings) field of each body, alone, set to "ab\u0000cd".
Checks:
- a NUL inside a string is 422 naming its field, on every route;
- every answer is below 500;
- every 4xx answer has the error shape {"error":{"code","message"[,"field"]}};
- no answer carries a provider key or bot token the test sent (in a key field);
- no sanitizer report in the programs' logs.

KEYRELAY_TEST_KEEP=1 keeps the stack's directory. Stand-alone: needs KEYRELAY_BIN_DIR.
"""
import json
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from krclient import (SetupError, add_member, create_user, create_workspace, eq,  # noqa: E402
                      error_shape_problems, fake_key, private_stack, run)
from test_runner import ENV  # noqa: E402

# Telegram sends (the target test route) go nowhere: a loopback address the outbound guard
# refuses at once, instead of the real API.
STACK_ENV = dict(ENV, KEYRELAY_TELEGRAM_BASE_URL="https://127.0.0.1:1")

ROUNDS = 40
SEED = int(os.environ.get("KEYRELAY_ROBUSTNESS_SEED", "20261122"))
SPEC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "static",
                    "openapi.json")
SKIP = ("/api/auth/logout", "/api/workspaces/{ws}/events")
MISSING = "00000000-0000-4000-8000-000000000000"
BOT_TOKEN = "123456:ABCdefGHIjklMNOpqrSTUvwxYZ0123456789"
SECRET_FIELDS = ("key", "keys", "botToken")

HOSTILE = [None, True, False, 0, -1, 1.5, 2 ** 63, -2 ** 63, 1e308, "", " ", "x" * 100000,
           "\u0000", "\ud7ff\ue000\U0001f600", "'; DROP TABLE jobs; --", "%s%n%x", [],
           [None], [[[[[]]]]], {}, {"a": {"b": {"c": []}}}, "2030-13-45T99:99:99Z",
           "1970-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z", "-1", "NaN",
           "../../etc/passwd", "A" * 300]
QUERIES = ["", "?limit=-1", "?limit=abc", "?limit=1000000", "?before=%00",
           "?before=" + "z" * 500, "?status=bogus", "?from=2030-99&to=x", "?groupBy=bogus",
           "?groupBy=day&from=1970-01-01T00:00:00Z", "?chatId=x&scheduleId=%zz",
           "?provider=zzz&limit=2", "?status=running&status=failed"]


class Inputs:
    """Bodies from the OpenAPI schemas, half of their fields hostile."""

    def __init__(self, spec, rng, secrets_sent):
        self.schemas = spec["components"]["schemas"]
        self.rng = rng
        self.sent = secrets_sent

    def deref(self, sch):
        while sch and "$ref" in sch:
            sch = self.schemas[sch["$ref"].split("/")[-1]]
        return sch or {}

    def key(self, provider):
        return fake_key(provider, self.sent, self.rng)

    def value(self, prop, field=None):
        """A value for field (its name: the key fields' strings are remembered secrets)."""
        prop, rng = self.deref(prop), self.rng
        if rng.random() < 0.5:
            return rng.choice(HOSTILE)
        t = prop.get("type")
        if isinstance(t, list):
            t = rng.choice(t)
        if "enum" in prop:
            return rng.choice(prop["enum"] + ["bogus"])
        if t == "string" and field in SECRET_FIELDS:
            return self.key(rng.choice(["anthropic", "openai", "google", "zai"]))
        if t == "string":
            return rng.choice(["ok", "anthropic", "openai", "Europe/Berlin", "*/5 * * * *",
                               "member", "admin", "x@example.com"])
        if t == "integer":
            return rng.choice([0, 1, 5, 100, -5, 10 ** 12])
        if t == "boolean":
            return rng.choice([True, False])
        if t == "array":
            return [self.value(prop.get("items"), field) for _ in range(rng.randint(0, 5))]
        if t == "object":
            return self.body(prop)
        return rng.choice(HOSTILE)

    def body(self, sch):
        rng, b = self.rng, {}
        for k, v in self.deref(sch).get("properties", {}).items():
            if rng.random() < 0.8:
                b[k] = self.value(v, k)
        if rng.random() < 0.2:
            b[rng.choice(["extra", "id", "workspaceId", "__proto__"])] = rng.choice(HOSTILE)
        if rng.random() < 0.05:
            return rng.choice([[], "x", 1, None, [b]])
        return b


def routes(spec):
    """(path, resource, method, body schema or None) of each route the test drives."""
    for path, methods in spec["paths"].items():
        if path in SKIP:
            continue
        parts = path.split("/") + [""] * 5
        resource = parts[4] if path.startswith("/api/workspaces/{ws}/") else parts[2]
        for method, op in methods.items():
            if method in ("get", "post", "put", "patch"):
                yield path, resource, method, op.get("requestBody", {}).get(
                    "content", {}).get("application/json", {}).get("schema")


def body(t):
    with private_stack(t, "krrb-", "setup: private stack", env=STACK_ENV) as (s, admin):
        scenario(t, s, admin)


def created(r, what):
    if r.status not in (200, 201, 202) or not isinstance(r.json, dict):
        raise SetupError("create %s: %s" % (what, r.describe()))
    return r.json


def scenario(t, s, admin):
    spec = json.load(open(SPEC, encoding="utf-8"))
    rng = random.Random(SEED)
    sent = [BOT_TOKEN]
    inputs = Inputs(spec, rng, sent)
    with t.setup("setup: a workspace with a member, key, chat, job, schedule, target, token"):
        ws = create_workspace(admin)["slug"]
        base = "/api/workspaces/" + ws
        user, email, _ = create_user(admin)
        add_member(admin, ws, email, "member")
        ids = {
            "users": user["id"],
            "keys": created(admin.post(base + "/keys", json={
                "provider": "anthropic", "keys": [inputs.key("anthropic")]}),
                "key")["keys"][0]["id"],
            "chats": created(admin.post(base + "/chats", json={"title": "t"}), "chat")["id"],
            "jobs": created(admin.post(base + "/jobs", json={
                "type": "task", "input": "x", "runAt": "2027-06-01T00:00:00Z"}), "job")["id"],
            "schedules": created(admin.post(base + "/schedules", json={
                "description": "d", "cron": "0 0 * * *", "timezone": "UTC", "input": "x"}),
                "schedule")["id"],
            "notifications": created(admin.post(base + "/notifications", json={
                "type": "telegram", "botToken": BOT_TOKEN, "chatId": "42"}), "target")["id"],
            "tokens": created(admin.post(base + "/tokens", json={
                "name": "t", "role": "member"}), "token")["id"],
        }
    server_errors, bad_shapes, leaks, n = [], [], [], 0
    for path, resource, method, schema in routes(spec):
        for _ in range(ROUNDS):
            p = path.replace("{ws}", ws).replace("{userId}", user["id"]).replace(
                "{id}", rng.choice([ids.get(resource, MISSING)] * 2 +
                                   [MISSING, "not-an-id"]))
            if method == "get":
                sent_what = rng.choice(QUERIES)
                r = admin.get(p + sent_what)
            else:
                sent_what = inputs.body(schema) if schema else rng.choice([None, {}])
                r = admin.request(method.upper(), p, json=sent_what)
            n += 1
            what = "%s %s %s" % (method.upper(), path, json.dumps(sent_what)[:200])
            if r.status >= 500:
                server_errors.append("%s -> %d %s" % (what, r.status, r.text[:200]))
            elif r.status >= 400 and error_shape_problems(r):
                bad_shapes.append("%s -> %d %s" % (what, r.status, r.text[:200]))
            if any(sec in r.text for sec in sent):
                leaks.append("%s -> %d (a secret the test sent)" % (what, r.status))
    # A NUL inside a string (a C string ends there; its recorded length does not).
    nul_answers = []
    for path, resource, method, schema in routes(spec):
        if method == "get" or not schema:
            continue
        for field, prop in inputs.deref(schema).get("properties", {}).items():
            t_ = inputs.deref(prop).get("type")
            t_ = t_ if isinstance(t_, list) else [t_]
            v = (["ab\u0000cd"] if "array" in t_ else
                 "ab\u0000cd" if "string" in t_ else None)
            if v is None:
                continue
            p = path.replace("{ws}", ws).replace("{userId}", user["id"]).replace(
                "{id}", ids.get(resource, MISSING))
            r = admin.request(method.upper(), p, json={field: v})
            err = (r.json or {}).get("error") or {} if r.status == 422 else {}
            if r.status != 422 or err.get("field") != field:
                nul_answers.append("%s %s {%r: %r} -> %d %s" % (
                    method.upper(), path, field, v, r.status, r.text[:160]))
    with t("a NUL character in any string field of any body: 422 naming that field"):
        eq(nul_answers[:5], [], "answers to a NUL in a string")

    with t("%d requests with malformed input: none answered 5xx" % n):
        eq(server_errors[:5], [], "5xx answers (seed %d)" % SEED)
    with t("every 4xx answer has the error shape"):
        eq(bad_shapes[:5], [], "4xx answers without the error shape (seed %d)" % SEED)
    with t("no answer carries one of the %d keys and bot tokens the test sent" % len(sent)):
        eq(leaks[:5], [], "answers with a secret (seed %d)" % SEED)
    with t("no sanitizer report in the programs' logs"):
        eq(s.sanitizer_reports(), [], "sanitizer reports")


if __name__ == "__main__":
    run("robustness", body)
