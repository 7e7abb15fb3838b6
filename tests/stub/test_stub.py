#!/usr/bin/env python3
"""Self-test of the stub AI provider (tests/stub/stub_provider.py): starts one stub and checks,
for every provider, every mode (status, headers, body shape), request validation, the control
API, the request log, HTTP details (keep-alive, Expect: 100-continue, chunked bodies), a burst
of concurrent slow requests, a clean SIGTERM exit, and that no key ever reaches the stub's own
log. Python 3 standard library only.

    python3 -B tests/stub/test_stub.py      prints "N passed, N failed"; exit 1 on any failure
"""

import asyncio
import http.client
import json
import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from stubctl import MODES, PROVIDERS, Stub  # noqa: E402

OPENAI_LIKE = ("openai", "zai", "moonshot", "openai_compatible")
MIB64 = 64 * 1024 * 1024


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect())


class Result:
    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers   # lower-case name -> value
        self.raw = raw

    @property
    def json(self):
        return json.loads(self.raw)


def call(method, url, headers=None, body=None, timeout=30):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None and "Content-Type" not in (headers or {}):
        req.add_header("Content-Type", "application/json")
    try:
        r = OPENER.open(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        r = e
    with r:
        hdrs = {k.lower(): v for k, v in r.headers.items()}
        return Result(r.status if hasattr(r, "status") else r.code, hdrs, r.read())


# ------------------------------------------------------------------ the tiny harness

class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, cond, detail=""):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL %s %s" % (name, detail), flush=True)
        return cond

    def eq(self, name, got, want):
        return self.check(name, got == want, "got %r, want %r" % (got, want))

    def run(self, name, fn, *args):
        try:
            fn(*args)
        except Exception:
            self.failed += 1
            print("FAIL %s raised:\n%s" % (name, traceback.format_exc()), flush=True)


T = Checks()
KEYS_USED = []


def new_key(provider, tag=""):
    tail = secrets.token_hex(16)
    key = {"anthropic": "sk-ant-api03-" + tail, "openai": "sk-proj-" + tail,
           "google": "AIza" + tail, "zai": tail[:16] + "." + tail[16:],
           "moonshot": "sk-" + tail, "openai_compatible": "lm-" + tail}[provider]
    key = key + tag
    KEYS_USED.append(key)
    return key


def auth_headers(provider, key):
    if provider == "anthropic":
        return {"x-api-key": key, "anthropic-version": "2023-06-01"}
    if provider == "google":
        return {"x-goog-api-key": key}
    return {"Authorization": "Bearer " + key}


PROMPT = "one two three four five"        # 5 words
SYSTEM = "be brief"                        # 2 words


def completion(stub, provider, key, body=None, headers=None, model=None):
    base = stub.base_url(provider)
    h = auth_headers(provider, key) if key is not None else {}
    h.update(headers or {})
    if provider == "anthropic":
        url = base + "/v1/messages"
        b = {"model": model or "claude-sonnet-4-5-20250929", "max_tokens": 100, "system": SYSTEM,
             "messages": [{"role": "user", "content": PROMPT}]}
    elif provider == "google":
        url = base + "/models/%s:generateContent" % (model or "gemini-2.5-flash")
        b = {"systemInstruction": {"parts": [{"text": SYSTEM}]},
             "contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}
    else:
        url = base + "/chat/completions"
        b = {"model": model or "test-model",
             "messages": [{"role": "system", "content": SYSTEM},
                          {"role": "user", "content": PROMPT}]}
    return call("POST", url, h, b if body is None else body)


def models_url(stub, provider):
    return stub.base_url(provider) + ("/v1/models" if provider == "anthropic" else "/models")


def error_shape(name, provider, r):
    """The provider's error body shape; returns the error object (or {})."""
    try:
        b = r.json
    except ValueError:
        T.check(name + " json", False, repr(r.raw[:200]))
        return {}
    T.eq(name + " content-type", r.headers.get("content-type"), "application/json")
    if provider == "anthropic":
        ok = (b.get("type") == "error" and isinstance(b.get("error"), dict)
              and isinstance(b["error"].get("type"), str)
              and isinstance(b["error"].get("message"), str))
    elif provider == "google":
        e = b.get("error", {})
        ok = (e.get("code") == r.status and isinstance(e.get("status"), str)
              and isinstance(e.get("message"), str))
    elif provider == "zai":
        e = b.get("error", {})
        ok = isinstance(e.get("code"), str) and e["code"].isdigit() and isinstance(
            e.get("message"), str)
    elif provider == "moonshot":
        e = b.get("error", {})
        ok = isinstance(e.get("message"), str) and isinstance(e.get("type"), str)
    else:
        e = b.get("error", {})
        ok = (isinstance(e.get("message"), str) and isinstance(e.get("type"), str)
              and "param" in e and "code" in e)
    T.check(name + " error shape", ok, json.dumps(b)[:300])
    return b.get("error", {}) if isinstance(b.get("error"), dict) else {}


def detail_of(err, typename):
    for d in err.get("details", []):
        if d.get("@type") == "type.googleapis.com/google.rpc." + typename:
            return d
    return None


# ------------------------------------------------------------------ success shapes

def check_ok_completion(name, provider, r, text, in_words):
    if not T.eq(name + " status", r.status, 200):
        print("   body:", r.raw[:300])
        return
    b = r.json
    out_words = len(text.split())
    if provider == "anthropic":
        T.eq(name + " type", b.get("type"), "message")
        T.check(name + " id", isinstance(b.get("id"), str) and b.get("model"))
        T.eq(name + " text", b["content"][0], {"type": "text", "text": text})
        T.eq(name + " stop_reason", b.get("stop_reason"), "end_turn")
        T.eq(name + " usage", (b["usage"]["input_tokens"], b["usage"]["output_tokens"]),
             (in_words, out_words))
        T.check(name + " request-id", r.headers.get("request-id", "").startswith("req_"))
    elif provider == "google":
        c = b["candidates"][0]
        T.eq(name + " role", c["content"]["role"], "model")
        T.eq(name + " text", c["content"]["parts"][0]["text"], text)
        T.eq(name + " finishReason", c.get("finishReason"), "STOP")
        u = b["usageMetadata"]
        T.eq(name + " usage", (u["promptTokenCount"], u["candidatesTokenCount"],
                               u["totalTokenCount"]), (in_words, out_words, in_words + out_words))
    else:
        T.check(name + " id", isinstance(b.get("id"), str))
        ch = b["choices"][0]
        T.eq(name + " message", (ch["message"]["role"], ch["message"]["content"]),
             ("assistant", text))
        T.eq(name + " finish_reason", ch.get("finish_reason"), "stop")
        u = b["usage"]
        T.eq(name + " usage", (u["prompt_tokens"], u["completion_tokens"], u["total_tokens"]),
             (in_words, out_words, in_words + out_words))
        T.check(name + " x-request-id", "x-request-id" in r.headers)


def check_models(name, provider, r):
    if not T.eq(name + " status", r.status, 200):
        return
    b = r.json
    if provider == "google":
        T.check(name + " shape", all(m["name"].startswith("models/") for m in b["models"]),
                str(b)[:200])
    elif provider == "anthropic":
        T.check(name + " shape", b["data"] and b["data"][0]["type"] == "model"
                and "has_more" in b, str(b)[:200])
    else:
        T.check(name + " shape", b.get("object") == "list" and b["data"][0]["id"], str(b)[:200])


# ------------------------------------------------------------------ per-mode checks

def check_mode(stub, provider, mode):
    name = "%s/%s" % (provider, mode)
    key = new_key(provider)
    text = "alpha beta gamma"
    kw = {"text": text}
    if mode == "rate":
        kw["retry_after"] = 7
    if mode == "delay":
        kw["delay_ms"] = 300
    stub.set_key(key, mode, **kw)
    in_words = len(PROMPT.split()) + len(SYSTEM.split())

    if mode == "cutoff":
        check_cutoff(stub, provider, key, name)
        return
    if mode == "oversized":
        check_oversized(stub, provider, key, name)
        return

    t0 = time.monotonic()
    r = completion(stub, provider, key)
    elapsed = time.monotonic() - t0

    if mode in ("ok", "delay"):
        check_ok_completion(name, provider, r, text, in_words)
        if mode == "delay":
            T.check(name + " waited", elapsed >= 0.29, "%.3f s" % elapsed)
        return
    if mode == "redirect":
        T.eq(name + " status", r.status, 302)
        T.eq(name + " location", r.headers.get("location"),
             "http://127.0.0.1:%d/elsewhere" % stub.port)
        return

    want_status = {
        "auth": 400 if provider == "google" else 401,
        "echo_key": 400 if provider == "google" else 401,
        "forbidden": 403,
        "quota": {"anthropic": 402}.get(provider, 429),
        "rate": 429,
        "overloaded": 529 if provider == "anthropic" else 503,
        "server_error": 500,
        "bad_request": 400,
    }[mode]
    T.eq(name + " status", r.status, want_status)
    err = error_shape(name, provider, r)
    msg = err.get("message", "")
    if mode != "echo_key":
        T.check(name + " key not echoed", key not in r.raw.decode("utf-8", "replace"))

    if mode in ("auth", "echo_key"):
        expect_auth_invalid(name, provider, r, err)
        if mode == "echo_key":
            T.check(name + " full key in message", key in msg, msg)
        elif provider in ("openai", "openai_compatible"):
            T.check(name + " masked key", "****" + key[-4:] in msg, msg)
    elif mode == "forbidden":
        want = {"anthropic": ("type", "permission_error"),
                "google": ("status", "PERMISSION_DENIED"), "zai": ("code", "1220"),
                "moonshot": ("type", "permission_denied_error")}.get(
                    provider, ("code", "unsupported_country_region_territory"))
        T.eq(name + " kind", err.get(want[0]), want[1])
    elif mode == "quota":
        if provider == "anthropic":
            T.eq(name + " type", err.get("type"), "billing_error")
        elif provider == "google":
            T.eq(name + " status", err.get("status"), "RESOURCE_EXHAUSTED")
            qf = detail_of(err, "QuotaFailure")
            T.check(name + " QuotaFailure per day",
                    qf is not None and "PerDay" in qf["violations"][0]["quotaId"], str(err))
        elif provider == "zai":
            T.eq(name + " code", err.get("code"), "1113")
        elif provider == "moonshot":
            T.eq(name + " type", err.get("type"), "exceeded_current_quota_error")
        else:
            T.eq(name + " type/code", (err.get("type"), err.get("code")),
                 ("insufficient_quota", "insufficient_quota"))
        if provider != "google":
            T.check(name + " no retry-after", "retry-after" not in r.headers)
    elif mode == "rate":
        check_rate(name, provider, r, err, 7)
    elif mode == "overloaded":
        if provider == "anthropic":
            T.eq(name + " type", err.get("type"), "overloaded_error")
        elif provider == "google":
            T.eq(name + " status", err.get("status"), "UNAVAILABLE")
    elif mode == "server_error":
        if provider == "anthropic":
            T.eq(name + " type", err.get("type"), "api_error")
        elif provider == "google":
            T.eq(name + " status", err.get("status"), "INTERNAL")
    elif mode == "bad_request":
        expect_request_error(name, provider, err)
        T.check(name + " names the model", "test-model" in msg or "claude" in msg
                or "gemini" in msg, msg)


def expect_auth_invalid(name, provider, r, err):
    if provider == "anthropic":
        T.eq(name + " type", err.get("type"), "authentication_error")
    elif provider == "google":
        T.eq(name + " status", err.get("status"), "INVALID_ARGUMENT")
        info = detail_of(err, "ErrorInfo")
        T.check(name + " API_KEY_INVALID", info is not None
                and info.get("reason") == "API_KEY_INVALID", str(err))
    elif provider == "zai":
        T.check(name + " code 1000-1004", err.get("code") in ("1000", "1001", "1002", "1003",
                                                              "1004"), str(err))
    elif provider == "moonshot":
        T.eq(name + " type", err.get("type"), "invalid_authentication_error")
    else:
        T.eq(name + " code", err.get("code"), "invalid_api_key")


def expect_request_error(name, provider, err):
    """A 400 that is neither auth nor quota."""
    if provider == "anthropic":
        T.eq(name + " type", err.get("type"), "invalid_request_error")
    elif provider == "google":
        T.eq(name + " status", err.get("status"), "INVALID_ARGUMENT")
        T.check(name + " not API_KEY_INVALID", detail_of(err, "ErrorInfo") is None, str(err))
    elif provider == "zai":
        T.check(name + " zai request code", err.get("code", "").startswith("12"), str(err))
    else:
        T.eq(name + " type", err.get("type"), "invalid_request_error")


def check_rate(name, provider, r, err, secs):
    if provider == "google":
        T.eq(name + " status", err.get("status"), "RESOURCE_EXHAUSTED")
        ri = detail_of(err, "RetryInfo")
        T.eq(name + " retryDelay", ri and ri.get("retryDelay"), "%ss" % secs)
        qf = detail_of(err, "QuotaFailure")
        T.check(name + " per-minute quota", qf is not None
                and "PerDay" not in qf["violations"][0]["quotaId"], str(err))
        return
    T.eq(name + " retry-after", r.headers.get("retry-after"), str(secs))
    if provider == "anthropic":
        T.eq(name + " type", err.get("type"), "rate_limit_error")
        T.eq(name + " remaining", r.headers.get("anthropic-ratelimit-requests-remaining"), "0")
    elif provider == "zai":
        T.eq(name + " code", err.get("code"), "1302")
    elif provider == "moonshot":
        T.eq(name + " type", err.get("type"), "rate_limit_reached_error")
    else:
        T.eq(name + " code", err.get("code"), "rate_limit_exceeded")
        T.eq(name + " retry-after-ms", r.headers.get("retry-after-ms"), str(secs * 1000))
        T.eq(name + " x-ratelimit-reset-requests", r.headers.get("x-ratelimit-reset-requests"),
             "%ds" % secs)


def check_cutoff(stub, provider, key, name):
    url, h, b = raw_completion_parts(stub, provider, key)
    conn = http.client.HTTPConnection("127.0.0.1", stub.port, timeout=10)
    conn.request("POST", url, json.dumps(b), h)
    resp = conn.getresponse()
    T.eq(name + " status", resp.status, 200)
    length = int(resp.getheader("Content-Length", "0"))
    try:
        data = resp.read()
        T.check(name + " body cut", False, "read %d of %d bytes" % (len(data), length))
    except http.client.IncompleteRead as e:
        T.check(name + " body cut", 0 < len(e.partial) < length,
                "%d of %d" % (len(e.partial), length))
    conn.close()


def check_oversized(stub, provider, key, name):
    url, h, b = raw_completion_parts(stub, provider, key)
    conn = http.client.HTTPConnection("127.0.0.1", stub.port, timeout=60)
    conn.request("POST", url, json.dumps(b), h)
    resp = conn.getresponse()
    T.eq(name + " status", resp.status, 200)
    T.eq(name + " chunked", resp.getheader("Transfer-Encoding"), "chunked")
    T.check(name + " no content-length", resp.getheader("Content-Length") is None)
    parts, total = [], 0
    while True:
        chunk = resp.read(1 << 20)
        if not chunk:
            break
        total += len(chunk)
        parts.append(chunk)
    T.eq(name + " size", total, MIB64)
    try:
        body = json.loads(b"".join(parts))
        ok = ("content" in body or "choices" in body or "candidates" in body)
    except ValueError:
        ok = False
    T.check(name + " valid JSON of the success shape", ok)
    conn.close()


def raw_completion_parts(stub, provider, key):
    """(path, headers, body) of a completion for http.client."""
    base = stub.base_url(provider)[len(stub.url):]
    h = dict(auth_headers(provider, key), **{"Content-Type": "application/json"})
    if provider == "anthropic":
        return base + "/v1/messages", h, {"model": "m", "max_tokens": 10,
                                          "messages": [{"role": "user", "content": "hi"}]}
    if provider == "google":
        return (base + "/models/gemini-2.5-flash:generateContent", h,
                {"contents": [{"parts": [{"text": "hi"}]}]})
    return base + "/chat/completions", h, {"model": "m",
                                           "messages": [{"role": "user", "content": "hi"}]}


# ------------------------------------------------------------------ validation and endpoints

def check_validation(stub, provider):
    p = provider
    key = new_key(p)
    stub.set_key(key, "ok")

    # unregistered key: auth invalid
    other = new_key(p, "x")
    r = completion(stub, p, other)
    T.eq(p + " unregistered status", r.status, 400 if p == "google" else 401)
    expect_auth_invalid(p + " unregistered", p, r, error_shape(p + " unregistered", p, r))
    r = call("GET", models_url(stub, p), auth_headers(p, other))
    T.eq(p + " unregistered models status", r.status, 400 if p == "google" else 401)

    # missing auth header
    h = {"anthropic-version": "2023-06-01"} if p == "anthropic" else {}
    r = completion(stub, p, None, headers=h)
    T.eq(p + " missing auth status", r.status, 403 if p == "google" else 401)
    err = error_shape(p + " missing auth", p, r)
    if p == "google":
        T.eq(p + " missing auth status text", err.get("status"), "PERMISSION_DENIED")
    if p in OPENAI_LIKE:
        r = completion(stub, p, None, headers={"Authorization": "Basic abc"})
        T.eq(p + " non-bearer auth status", r.status, 401)

    # wrong method on a known path
    r = call("GET", completion_url(stub, p), auth_headers(p, key))
    T.eq(p + " wrong method status", r.status, 405)
    T.eq(p + " Allow", r.headers.get("allow"), "POST")
    error_shape(p + " wrong method", p, r)
    r = call("POST", models_url(stub, p), auth_headers(p, key), {})
    T.eq(p + " POST models status", r.status, 405)

    # unknown path
    r = call("GET", stub.base_url(p) + "/no/such/thing", auth_headers(p, key))
    T.eq(p + " unknown path status", r.status, 404)
    error_shape(p + " unknown path", p, r)

    # malformed JSON and bodies the API refuses
    r = completion(stub, p, key, body=b'{"model": "x", "messages": [')
    T.eq(p + " malformed JSON status", r.status, 400)
    expect_request_error(p + " malformed JSON", p, error_shape(p + " malformed JSON", p, r))
    r = completion(stub, p, key, body=b"[1, 2]")
    T.eq(p + " non-object JSON status", r.status, 400)
    error_shape(p + " non-object JSON", p, r)

    for label, body in missing_field_bodies(p):
        r = completion(stub, p, key, body=body)
        T.eq("%s %s status" % (p, label), r.status, 400)
        err = error_shape("%s %s" % (p, label), p, r)
        expect_request_error("%s %s" % (p, label), p, err)

    # an auth mode wins over a bad body (authentication comes first)
    akey = new_key(p)
    stub.set_key(akey, "auth")
    r = completion(stub, p, akey, body=b"not json")
    T.eq(p + " auth before body", r.status, 400 if p == "google" else 401)
    if p == "google":
        expect_auth_invalid(p + " auth before body", p, r, error_shape(p + " abb", p, r))

    # a refused body does not use up "times"
    tkey = new_key(p)
    stub.set_key(tkey, "server_error", times=1)
    completion(stub, p, tkey, body=b"not json")
    T.eq(p + " refused body keeps times", completion(stub, p, tkey).status, 500)
    T.eq(p + " times used up", completion(stub, p, tkey).status, 200)

    # models, and modes on the key-check endpoint
    check_models(p + " models", p, call("GET", models_url(stub, p), auth_headers(p, key)))
    rkey = new_key(p)
    stub.set_key(rkey, "rate", retry_after=3)
    r = call("GET", models_url(stub, p), auth_headers(p, rkey))
    T.eq(p + " models rate status", r.status, 429)
    check_rate(p + " models rate", p, r, error_shape(p + " models rate", p, r), 3)

    # max_tokens truncates the answer
    lkey = new_key(p)
    stub.set_key(lkey, "ok", text="a b c d e f")
    r = completion(stub, p, lkey, body=limited_body(p, 2))
    if T.eq(p + " limited status", r.status, 200):
        b = r.json
        if p == "anthropic":
            got = (b["content"][0]["text"], b["stop_reason"], b["usage"]["output_tokens"])
            T.eq(p + " limited", got, ("a b", "max_tokens", 2))
        elif p == "google":
            c = b["candidates"][0]
            got = (c["content"]["parts"][0]["text"], c["finishReason"],
                   b["usageMetadata"]["candidatesTokenCount"])
            T.eq(p + " limited", got, ("a b", "MAX_TOKENS", 2))
        else:
            c = b["choices"][0]
            got = (c["message"]["content"], c["finish_reason"], b["usage"]["completion_tokens"])
            T.eq(p + " limited", got, ("a b", "length", 2))


def completion_url(stub, p):
    if p == "anthropic":
        return stub.base_url(p) + "/v1/messages"
    if p == "google":
        return stub.base_url(p) + "/models/gemini-2.5-flash:generateContent"
    return stub.base_url(p) + "/chat/completions"


def missing_field_bodies(p):
    if p == "anthropic":
        msgs = [{"role": "user", "content": "hi"}]
        return [("no model", {"max_tokens": 5, "messages": msgs}),
                ("no messages", {"model": "m", "max_tokens": 5}),
                ("no max_tokens", {"model": "m", "messages": msgs}),
                ("empty messages", {"model": "m", "max_tokens": 5, "messages": []}),
                ("system role", {"model": "m", "max_tokens": 5,
                                 "messages": [{"role": "system", "content": "x"}]})]
    if p == "google":
        return [("no contents", {}),
                ("empty contents", {"contents": []}),
                ("assistant role", {"contents": [{"role": "assistant",
                                                  "parts": [{"text": "x"}]}]})]
    msgs = [{"role": "user", "content": "hi"}]
    return [("no model", {"messages": msgs}),
            ("no messages", {"model": "m"}),
            ("empty messages", {"model": "m", "messages": []}),
            ("bad role", {"model": "m", "messages": [{"role": "bot", "content": "x"}]})]


def limited_body(p, n):
    if p == "anthropic":
        return {"model": "m", "max_tokens": n, "messages": [{"role": "user", "content": "hi"}]}
    if p == "google":
        return {"contents": [{"parts": [{"text": "hi"}]}],
                "generationConfig": {"maxOutputTokens": n}}
    return {"model": "m", "max_tokens": n, "messages": [{"role": "user", "content": "hi"}]}


def check_provider_specifics(stub):
    # anthropic-version
    key = new_key("anthropic")
    stub.set_key(key, "ok")
    for label, h in (("missing", {"x-api-key": key}),
                     ("invalid", {"x-api-key": key, "anthropic-version": "2099-01-01"})):
        r = call("POST", stub.base_url("anthropic") + "/v1/messages", h,
                 {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]})
        T.eq("anthropic version %s status" % label, r.status, 400)
        err = error_shape("anthropic version " + label, "anthropic", r)
        T.check("anthropic version %s message" % label, "anthropic-version" in
                err.get("message", ""), str(err))
    r = call("GET", stub.base_url("anthropic") + "/v1/models", {"x-api-key": key})
    T.eq("anthropic models without version", r.status, 400)

    # google: key in the URL
    gkey = new_key("google")
    stub.set_key(gkey, "ok")
    for label, url in (("models", models_url(stub, "google") + "?key=" + gkey),
                       ("generate", completion_url(stub, "google") + "?alt=json&key=" + gkey)):
        r = call("POST" if label == "generate" else "GET", url, {"x-goog-api-key": gkey},
                 {"contents": [{"parts": [{"text": "x"}]}]} if label == "generate" else None)
        T.eq("google key in URL %s status" % label, r.status, 400)
        err = error_shape("google key in URL " + label, "google", r)
        T.eq("google key in URL %s message" % label, err.get("message"), "key in URL")
    r = call("GET", stub.base_url("google") + "/models/gemini-2.5-flash:generateContent",
             {"x-goog-api-key": gkey})
    T.eq("google generate GET", r.status, 405)

    # gemini model in the path
    r = completion(stub, "google", gkey, model="gemini-2.5-pro")
    T.eq("google model from path", r.status == 200 and r.json.get("modelVersion"),
         "gemini-2.5-pro")

    # moonshot balance, and that no other provider has it
    mkey = new_key("moonshot")
    stub.set_key(mkey, "ok")
    r = call("GET", stub.base_url("moonshot") + "/users/me/balance", auth_headers("moonshot",
                                                                                   mkey))
    T.eq("moonshot balance status", r.status, 200)
    b = r.json
    T.check("moonshot balance shape", b.get("status") is True and b.get("code") == 0 and
            isinstance(b["data"].get("available_balance"), (int, float)), str(b))
    r = call("GET", stub.base_url("moonshot") + "/users/me/balance", {})
    T.eq("moonshot balance no auth", r.status, 401)
    okey = new_key("openai")
    stub.set_key(okey, "ok")
    r = call("GET", stub.base_url("openai") + "/users/me/balance", auth_headers("openai", okey))
    T.eq("openai has no balance endpoint", r.status, 404)
    qkey = new_key("moonshot")
    stub.set_key(qkey, "quota")
    r = call("GET", stub.base_url("moonshot") + "/users/me/balance", auth_headers("moonshot",
                                                                                   qkey))
    T.eq("moonshot balance quota", r.status, 429)

    # openai success headers and rate-limit formats
    r = completion(stub, "openai", okey)
    T.eq("openai ok x-ratelimit-reset-tokens", r.headers.get("x-ratelimit-reset-tokens"), "3ms")
    for secs, ra, ra_ms, reset, gdelay in ((1.5, "2", "1500", "1.5s", "1.5s"),
                                           (90, "90", "90000", "1m30s", "90s"),
                                           (0.25, "1", "250", "250ms", "0.25s")):
        k = new_key("openai")
        stub.set_key(k, "rate", retry_after=secs)
        r = completion(stub, "openai", k)
        T.eq("openai rate %s headers" % secs,
             (r.headers.get("retry-after"), r.headers.get("retry-after-ms"),
              r.headers.get("x-ratelimit-reset-requests")), (ra, ra_ms, reset))
        g = new_key("google")
        stub.set_key(g, "rate", retry_after=secs)
        ri = detail_of(completion(stub, "google", g).json["error"], "RetryInfo")
        T.eq("google rate %s retryDelay" % secs, ri and ri["retryDelay"], gdelay)
    k = new_key("anthropic")
    stub.set_key(k, "rate")
    T.eq("anthropic rate default retry-after", completion(stub, "anthropic", k).headers.get(
        "retry-after"), "1")

    # content blocks / parts count as prompt words
    r = call("POST", stub.base_url("anthropic") + "/v1/messages", auth_headers("anthropic", key),
             {"model": "m", "max_tokens": 50, "system": [{"type": "text", "text": "s1 s2"}],
              "messages": [{"role": "user", "content": [{"type": "text", "text": "a b c"}]},
                           {"role": "assistant", "content": "d"},
                           {"role": "user", "content": "e f"}]})
    T.eq("anthropic blocks prompt words", r.json["usage"]["input_tokens"], 8)


def check_modes_times_and_echo(stub):
    for p in PROVIDERS:
        k = new_key(p)
        stub.set_key(k, "overloaded", times=2, text="x y")
        got = [completion(stub, p, k).status for _ in range(3)]
        T.eq(p + " times=2", got, [529 if p == "anthropic" else 503] * 2 + [200])
        k = new_key(p)
        stub.set_key(k, "echo_key", times=1)
        got = [completion(stub, p, k).status for _ in range(2)]
        T.eq(p + " echo_key times=1", got, [400 if p == "google" else 401, 200])
    # after DELETE /_stub/keys every key is unknown again
    k = new_key("openai")
    stub.set_key(k, "ok")
    T.eq("key ok before clear", completion(stub, "openai", k).status, 200)
    stub.clear_keys()
    T.eq("key unknown after clear", completion(stub, "openai", k).status, 401)


def check_control_api(stub):
    T.eq("health", call("GET", stub.url + "/_stub/health").status, 200)
    T.eq("health POST", call("POST", stub.url + "/_stub/health", body={}).status, 405)
    bad = [{"key": "k", "mode": "nope"}, {"mode": "ok"}, {"key": "", "mode": "ok"},
           {"key": "k", "mode": "ok", "delay_ms": 5}, {"key": "k", "mode": "ok", "times": 1.5},
           {"key": "k", "mode": "ok", "delayMs": -1}, {"key": "k", "text": 3}]
    for b in bad:
        T.eq("set-key refuses %s" % json.dumps(b), call("POST", stub.url + "/_stub/keys",
                                                        body=b).status, 400)
    T.eq("set-key refuses bad JSON", call("POST", stub.url + "/_stub/keys", body=b"{").status,
         400)
    T.eq("unknown control path", call("GET", stub.url + "/_stub/nope").status, 404)
    T.eq("requests PUT", call("PUT", stub.url + "/_stub/requests", body={}).status, 405)
    try:
        stub.set_key("k", "ok", bogus=1)
        T.check("stubctl refuses unknown option", False)
    except TypeError:
        T.check("stubctl refuses unknown option", True)
    T.eq("stubctl base urls", stub.base_urls()["google"], stub.url + "/gemini/v1beta")


def check_request_log(stub):
    stub.clear_requests()
    T.eq("log empty after clear", stub.requests(), [])
    k1, k2 = new_key("openai"), new_key("google")
    stub.set_key(k1, "ok")
    stub.set_key(k2, "auth")
    completion(stub, "openai", k1)
    call("GET", models_url(stub, "google") + "?pageSize=5", auth_headers("google", k2))
    call("POST", stub.url + "/anthropic/v1/messages", {"x-api-key": "zz"}, b"not json")
    call("GET", stub.url + "/elsewhere")
    reqs = stub.requests()
    T.eq("log length (control calls not logged)", len(reqs), 4)
    if len(reqs) != 4:
        return
    a, b, c, d = reqs
    T.eq("log 1 provider/method/path", (a["provider"], a["method"], a["path"]),
         ("openai", "POST", "/openai/v1/chat/completions"))
    T.eq("log 1 auth header", a["headers"].get("authorization"), "Bearer " + k1)
    T.eq("log 1 body parsed", a["body"]["messages"][-1]["content"], PROMPT)
    T.eq("log 1 status", a["status"], 200)
    T.check("log 1 time", isinstance(a["time"], float))
    T.eq("log 2", (b["provider"], b["method"], b["path"], b["body"], b["status"]),
         ("google", "GET", "/gemini/v1beta/models?pageSize=5", None, 400))
    T.eq("log 2 key header", b["headers"].get("x-goog-api-key"), k2)
    T.eq("log 3 text body", (c["provider"], c["body"], c["status"]),
         ("anthropic", "not json", 400))
    T.eq("log 4 elsewhere", (d["provider"], d["path"], d["status"]), (None, "/elsewhere", 200))
    T.eq("stubctl requests(provider=)", [r["path"] for r in stub.requests(provider="google")],
         ["/gemini/v1beta/models?pageSize=5"])
    stub.clear()
    T.eq("clear empties the log", stub.requests(), [])


def check_http_details(stub):
    key = new_key("openai")
    stub.set_key(key, "ok")
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]}).encode()
    head = ("POST /openai/v1/chat/completions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: application/json\r\n" % key).encode()

    # keep-alive: three requests on one connection
    conn = http.client.HTTPConnection("127.0.0.1", stub.port, timeout=10)
    statuses = []
    for _ in range(3):
        conn.request("POST", "/openai/v1/chat/completions", body,
                     {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        statuses.append(r.status)
    sock_before = conn.sock
    conn.request("GET", "/_stub/health")
    conn.getresponse().read()
    T.eq("keep-alive statuses", statuses, [200, 200, 200])
    T.check("keep-alive same socket", conn.sock is sock_before and sock_before is not None)
    conn.close()

    # Expect: 100-continue gets an interim 100 before the body is sent
    s = socket.create_connection(("127.0.0.1", stub.port), timeout=10)
    s.sendall(head + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
    interim = s.recv(100)
    T.check("100 Continue", interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), repr(interim))
    s.sendall(body)
    T.check("after 100 Continue: 200", recv_head(s).startswith(b"HTTP/1.1 200"))
    s.close()

    # chunked request body
    s = socket.create_connection(("127.0.0.1", stub.port), timeout=10)
    half = len(body) // 2
    s.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % half + body[:half]
              + b"\r\n" + b"%x\r\n" % (len(body) - half) + body[half:] + b"\r\n0\r\n\r\n")
    T.check("chunked request: 200", recv_head(s).startswith(b"HTTP/1.1 200"))
    s.close()

    # Connection: close is honoured; garbage gets 400
    s = socket.create_connection(("127.0.0.1", stub.port), timeout=10)
    s.sendall(b"GET /_stub/health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    data = recv_all(s)
    T.check("Connection: close answered and closed", data.startswith(b"HTTP/1.1 200")
            and b"Connection: close" in data)
    s = socket.create_connection(("127.0.0.1", stub.port), timeout=10)
    s.sendall(b"NONSENSE\r\n\r\n")
    T.check("malformed request line: 400", recv_all(s).startswith(b"HTTP/1.1 400"))

    # redirect target exists (a client that follows redirects shows up in the log)
    T.eq("elsewhere", call("GET", stub.url + "/elsewhere").status, 200)


def recv_head(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def recv_all(s):
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk


def check_concurrency(stub, n=500, delay_ms=500):
    key = new_key("openai")
    stub.set_key(key, "delay", delay_ms=delay_ms)
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]}).encode()
    req = (b"POST /openai/v1/chat/completions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
           + key.encode() + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
           % len(body) + body)

    async def one():
        r, w = await asyncio.open_connection("127.0.0.1", stub.port)
        try:
            w.write(req)
            await w.drain()
            head = await r.readuntil(b"\r\n\r\n")
            return int(head.split(b" ")[1])
        finally:
            w.close()

    async def burst():
        return await asyncio.gather(*[one() for _ in range(n)], return_exceptions=True)

    t0 = time.monotonic()
    res = asyncio.run(burst())
    wall = time.monotonic() - t0
    T.eq("%d concurrent delayed requests all 200" % n, sum(1 for x in res if x == 200), n)
    T.check("%d concurrent %d ms requests overlap" % (n, delay_ms), wall < delay_ms / 1000 * 4,
            "wall %.2f s" % wall)
    print("concurrency: %d requests of %d ms in %.2f s" % (n, delay_ms, wall), flush=True)


def check_stub_log(stub, log_text, exit_status):
    T.eq("stub exits 0 on SIGTERM", exit_status, 0)
    T.check("stub log has request lines", "POST /openai/v1/chat/completions 200" in log_text
            and "GET /gemini/v1beta/models 400" in log_text, log_text[-500:])
    leaked = [k for k in KEYS_USED if k in log_text]
    T.check("no key in the stub's log (%d keys used)" % len(KEYS_USED), not leaked,
            "%d keys found" % len(leaked))
    T.check("no query string in the stub's log", "?key=" not in log_text
            and "pageSize" not in log_text)
    T.check("no traceback in the stub's log", "Traceback" not in log_text
            and "internal error" not in log_text)


def main():
    tmp = tempfile.mkdtemp(prefix="kr-stub-test-")
    stub = Stub.start(tmp)
    exit_status = None
    try:
        T.run("control api", check_control_api, stub)
        for p in PROVIDERS:
            for m in MODES:
                T.run("%s/%s" % (p, m), check_mode, stub, p, m)
            T.run(p + " validation", check_validation, stub, p)
        T.run("provider specifics", check_provider_specifics, stub)
        T.run("times and clear", check_modes_times_and_echo, stub)
        T.run("request log", check_request_log, stub)
        T.run("http details", check_http_details, stub)
        T.run("concurrency", check_concurrency, stub)
    finally:
        exit_status = stub.stop()
        log_text = stub.log_text()
    T.run("stub log", check_stub_log, stub, log_text, exit_status)
    if T.failed:
        print("stub log kept in", tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (T.passed, T.failed), flush=True)
    return 1 if T.failed else 0


if __name__ == "__main__":
    sys.exit(main())
