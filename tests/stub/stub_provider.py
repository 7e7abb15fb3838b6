#!/usr/bin/env python3
"""Stub AI provider: the HTTP APIs of anthropic, openai, google (gemini), zai, moonshot and an
openai-compatible server, on loopback, for keyrelay's tests and benchmarks.

Python 3 standard library only. One asyncio process with a small hand-written HTTP/1.1 server
(keep-alive, Content-Length and chunked request bodies, Expect: 100-continue), so thousands of
slow requests can be open at once without a thread each.

    python3 tests/stub/stub_provider.py --port 0 --port-file FILE [--host 127.0.0.1] [--quiet]

writes the port it listens on to FILE (atomically, once it accepts connections) and runs until
SIGTERM or SIGINT (exit 0). It logs one line per request to stderr, "METHOD /path STATUS", never
a query string, header or body, so no key ever reaches its log; --quiet turns that off.

Base URLs (P = the port):
    anthropic          http://127.0.0.1:P/anthropic          GET /v1/models, POST /v1/messages
    openai             http://127.0.0.1:P/openai/v1          GET /models, POST /chat/completions
    google             http://127.0.0.1:P/gemini/v1beta      GET /models,
                                                             POST /models/{m}:generateContent
    zai                http://127.0.0.1:P/zai/api/paas/v4    GET /models, POST /chat/completions
    moonshot           http://127.0.0.1:P/moonshot/v1        GET /models, POST /chat/completions,
                                                             GET /users/me/balance
    openai_compatible  http://127.0.0.1:P/compat/v1          GET /models, POST /chat/completions

Order of checks on a provider request (each failure answers in that provider's error shape):
  1. google only: a `key` query parameter -> 400 INVALID_ARGUMENT "key in URL".
  2. unknown path -> 404; known path, wrong method -> 405 (with Allow).
  3. no key header -> anthropic 401 authentication_error; openai/compat 401; moonshot 401;
     zai 401 code 1001; google 403 PERMISSION_DENIED (what Google answers a caller with no key).
  4. anthropic: anthropic-version missing or unknown -> 400 invalid_request_error.
  5. key not registered -> the provider's auth-invalid answer (like a wrong key).
  6. the key's mode is "auth" or "echo_key" -> that answer (authentication comes before the body).
  7. POST bodies: malformed JSON, missing model / messages (anthropic: max_tokens) / contents,
     empty messages, a role the API refuses -> 400 request error. A request refused here does
     not use up one of the key's "times".
  8. the key's mode decides the answer (after delayMs, when set).

Control API (JSON; never logged in the request log):
    POST   /_stub/keys      {"key", "mode"?="ok", "text"?, "delayMs"?, "retryAfter"?, "times"?}
    DELETE /_stub/keys      forget every key
    GET    /_stub/requests  {"requests": [{"provider", "method", "path", "headers", "body",
                             "status", "time"}]}   (path is the request target, query included;
                             header names lower-case; body parsed JSON, else text, else null)
    DELETE /_stub/requests  clear the log
    GET    /_stub/health    200 {"ok": true}
Modes: ok auth forbidden quota rate overloaded server_error bad_request delay cutoff oversized
redirect echo_key (what each answers: the functions below, one per mode). "times": N
makes the mode apply to the next N calls with that key, after which the key answers plain "ok"
(keeping its text, dropping its delay).
"""

import argparse
import asyncio
import collections
import email.utils
import json
import math
import os
import re
import resource
import secrets
import signal
import sys
import time
import urllib.parse

MODES = ("ok", "auth", "forbidden", "quota", "rate", "overloaded", "server_error", "bad_request",
         "delay", "cutoff", "oversized", "redirect", "echo_key")
KEY_FIELDS = ("key", "mode", "text", "delayMs", "retryAfter", "times")
DEFAULT_TEXT = "Hello from the stub provider."
DEFAULT_DELAY_MS = 1000
DEFAULT_RETRY_AFTER = 1
OVERSIZED_BYTES = 64 * 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 32 * 1024 * 1024
IDLE_TIMEOUT = 120.0
ANTHROPIC_VERSIONS = ("2023-06-01", "2023-01-01")

# (path prefix, provider id); the protocol decides the request and response shapes.
PREFIXES = (
    ("/anthropic", "anthropic"),
    ("/openai/v1", "openai"),
    ("/gemini/v1beta", "google"),
    ("/zai/api/paas/v4", "zai"),
    ("/moonshot/v1", "moonshot"),
    ("/compat/v1", "openai_compatible"),
)
PROTOCOL = {"anthropic": "anthropic", "google": "gemini", "openai": "openai", "zai": "openai",
            "moonshot": "openai", "openai_compatible": "openai"}
MODELS = {
    "anthropic": ["claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001",
                  "claude-opus-4-1-20250805"],
    "openai": ["gpt-4o-mini", "gpt-4o", "gpt-4.1"],
    "google": ["gemini-2.5-flash", "gemini-2.5-pro"],
    "zai": ["glm-5", "glm-4.6"],
    "moonshot": ["moonshot-v1-8k", "moonshot-v1-32k", "kimi-k2-0905-preview"],
    "openai_compatible": ["local-model"],
}
GEMINI_GENERATE_RE = re.compile(r"^/models/([^/:]+):generateContent$")
REASONS = {100: "Continue", 200: "OK", 302: "Found", 400: "Bad Request", 401: "Unauthorized",
           402: "Payment Required", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 413: "Payload Too Large", 429: "Too Many Requests",
           431: "Request Header Fields Too Large", 500: "Internal Server Error",
           501: "Not Implemented", 503: "Service Unavailable", 529: "Overloaded"}


class HttpError(Exception):
    """A request that cannot be framed; answered with status and the connection closed."""

    def __init__(self, status):
        super().__init__(status)
        self.status = status


class Request:
    __slots__ = ("method", "target", "path", "query", "version", "headers", "body")


class Response:
    """kind: "normal" (whole body), "cutoff" (half the body, then close), "stream" (chunked,
    body produced by the coroutine factory `stream`)."""

    def __init__(self, status, body=b"", headers=None, ctype="application/json", kind="normal"):
        self.status = status
        self.body = body
        self.headers = list(headers or [])
        self.ctype = ctype
        self.kind = kind
        self.stream = None


def json_response(status, obj, headers=None):
    return Response(status, json.dumps(obj).encode(), headers)


# ---------------------------------------------------------------- small helpers

def rid(prefix, n=12):
    return prefix + secrets.token_hex(n)


def words(text):
    return len(text.split()) if isinstance(text, str) else 0


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def go_duration(seconds):
    """OpenAI's x-ratelimit-reset-* format (Go durations): "12ms", "6s", "1.5s", "1m30s"."""
    if seconds < 1:
        return "%dms" % round(seconds * 1000)
    minutes, sec = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    sec_text = ("%.3f" % sec).rstrip("0").rstrip(".")
    out = ""
    if hours:
        out += "%dh" % hours
    if hours or minutes:
        out += "%dm" % minutes
    return out + sec_text + "s"


def proto_duration(seconds):
    """google.protobuf.Duration in JSON: "36s", "0.5s"."""
    return ("%.3f" % seconds).rstrip("0").rstrip(".") + "s"


def mask_key(key):
    """How OpenAI shows a wrong key: its start, ****, its last four characters."""
    if len(key) < 12:
        return "****"
    cut = key.rfind("-", 0, 9)
    head = key[:cut + 1] if cut > 0 else key[:3]
    return head + "****" + key[-4:]


def text_of(content):
    """Words of a message content: a string, or a list of blocks / parts with "text"."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(b["text"] for b in content
                        if isinstance(b, dict) and isinstance(b.get("text"), str))
    return ""


def truncate(text, limit):
    """(text cut to `limit` words, True when cut); limit None or invalid: no cut."""
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        return text, False
    parts = text.split()
    if len(parts) <= limit:
        return text, False
    return " ".join(parts[:limit]), True


# ---------------------------------------------------------------- error shapes

def anthropic_error(status, etype, message, headers=None):
    body = {"type": "error", "error": {"type": etype, "message": message},
            "request_id": rid("req_")}
    return json_response(status, body, headers)


def openai_error(status, message, etype, code=None, param=None, headers=None):
    body = {"error": {"message": message, "type": etype, "param": param, "code": code}}
    return json_response(status, body, headers)


def moonshot_error(status, message, etype, headers=None):
    return json_response(status, {"error": {"message": message, "type": etype}}, headers)


def zai_error(status, code, message, headers=None):
    return json_response(status, {"error": {"code": str(code), "message": message}}, headers)


def gemini_error(code, status_text, message, details=None, headers=None):
    err = {"code": code, "message": message, "status": status_text}
    if details is not None:
        err["details"] = details
    return json_response(code, {"error": err}, headers)


def gemini_key_invalid(message):
    return gemini_error(400, "INVALID_ARGUMENT", message, [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
         "domain": "googleapis.com",
         "metadata": {"service": "generativelanguage.googleapis.com"}},
        {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US",
         "message": message}])


def request_error(provider, message, status=400, param=None, code=None):
    """A client error (bad JSON, missing field, unknown path, wrong method) in provider's shape."""
    if provider == "anthropic":
        etype = {404: "not_found_error", 413: "request_too_large"}.get(status,
                                                                       "invalid_request_error")
        return anthropic_error(status, etype, message)
    if provider == "google":
        status_text = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED",
                       413: "INVALID_ARGUMENT"}.get(status, "INVALID_ARGUMENT")
        return gemini_error(status, status_text, message)
    if provider == "zai":
        zcode = {404: 1222, 405: 1222, 413: 1261}.get(status, 1214 if param else 1210)
        return zai_error(status, zcode, message)
    if provider == "moonshot":
        etype = "resource_not_found_error" if status == 404 else "invalid_request_error"
        return moonshot_error(status, message, etype)
    return openai_error(status, message, "invalid_request_error", code, param)


def missing_auth(provider):
    if provider == "anthropic":
        return anthropic_error(401, "authentication_error", "x-api-key header is required")
    if provider == "google":
        return gemini_error(403, "PERMISSION_DENIED",
                            "Method doesn't allow unregistered callers (callers without "
                            "established identity). Please use API Key or other form of API "
                            "consumer identity to call this API.")
    if provider == "zai":
        return zai_error(401, 1001, "Authentication parameter not received in Header, unable "
                                    "to authenticate")
    if provider == "moonshot":
        return moonshot_error(401, "Invalid Authentication", "invalid_authentication_error")
    return openai_error(401, "You didn't provide an API key. You need to provide your API key in "
                             "an Authorization header using Bearer auth (i.e. Authorization: "
                             "Bearer YOUR_KEY), or as the password field (with blank username) "
                             "if you're accessing the API from your browser and are prompted "
                             "for a username and password. You can obtain an API key from "
                             "https://platform.openai.com/account/api-keys.",
                        "invalid_request_error")


def auth_invalid(provider, key, echo=False):
    """The provider's answer to a wrong key. echo: the full key inside the message."""
    if provider == "anthropic":
        return anthropic_error(401, "authentication_error",
                               "invalid x-api-key" + (": " + key if echo else ""))
    if provider == "google":
        shown = "API key not valid: %s." % key if echo else "API key not valid."
        return gemini_key_invalid(shown + " Please pass a valid API key.")
    if provider == "zai":
        return zai_error(401, 1002, "Invalid Authentication Token" + (": " + key if echo else "")
                         + ", please confirm the correct transmission of the Authentication "
                           "Token")
    if provider == "moonshot":
        return moonshot_error(401, "Invalid Authentication" + (": " + key if echo else ""),
                              "invalid_authentication_error")
    return openai_error(401, "Incorrect API key provided: %s. You can find your API key at "
                             "https://platform.openai.com/account/api-keys."
                        % (key if echo else mask_key(key)),
                        "invalid_request_error", "invalid_api_key")


def forbidden(provider):
    if provider == "anthropic":
        return anthropic_error(403, "permission_error",
                               "Your API key does not have permission to use the specified "
                               "resource.")
    if provider == "google":
        return gemini_error(403, "PERMISSION_DENIED",
                            "Your API key was reported as leaked. Please use another API key.")
    if provider == "zai":
        return zai_error(403, 1220, "You do not have permission to access this API")
    if provider == "moonshot":
        return moonshot_error(403, "The API you are accessing is not open",
                              "permission_denied_error")
    return openai_error(403, "Country, region, or territory not supported", "request_forbidden",
                        "unsupported_country_region_territory")


def gemini_quota_failure(model, per_day, retry_after):
    unit = "PerDay" if per_day else "PerMinute"
    metric = "generate_content_free_tier_requests"
    details = [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
            "quotaMetric": "generativelanguage.googleapis.com/" + metric,
            "quotaId": "GenerateRequests%sPerProjectPerModel-FreeTier" % unit,
            "quotaDimensions": {"location": "global", "model": model},
            "quotaValue": "250" if per_day else "10"}]},
        {"@type": "type.googleapis.com/google.rpc.Help", "links": [{
            "description": "Learn more about Gemini API quotas",
            "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo",
         "retryDelay": proto_duration(retry_after)},
    ]
    message = ("You exceeded your current quota, please check your plan and billing details. "
               "For more information on this error, head to: "
               "https://ai.google.dev/gemini-api/docs/rate-limits. "
               "* Quota exceeded for metric: generativelanguage.googleapis.com/%s, limit: %s, "
               "model: %s\nPlease retry in %s."
               % (metric, "250" if per_day else "10", model, proto_duration(retry_after)))
    return gemini_error(429, "RESOURCE_EXHAUSTED", message, details)


def quota(provider, model):
    if provider == "anthropic":
        return anthropic_error(402, "billing_error",
                               "Your credit balance is too low to access the Anthropic API. "
                               "Please go to Plans & Billing to upgrade or purchase credits.")
    if provider == "google":
        # Google sends a RetryInfo with daily quota failures too: the QuotaFailure decides.
        return gemini_quota_failure(model, True, 3600)
    if provider == "zai":
        return zai_error(429, 1113, "Insufficient balance or no resource package. Please "
                                    "recharge.")
    if provider == "moonshot":
        return moonshot_error(429, "Your account org-stub <ak-stub> is suspended, please check "
                                   "your plan and billing details",
                              "exceeded_current_quota_error")
    return openai_error(429, "You exceeded your current quota, please check your plan and "
                             "billing details. For more information on this error, read the "
                             "docs: https://platform.openai.com/docs/guides/error-codes/"
                             "api-errors.",
                        "insufficient_quota", "insufficient_quota")


def rate(provider, model, retry_after):
    secs = max(0, math.ceil(retry_after))
    hint = [("retry-after", str(secs))]
    if provider == "anthropic":
        reset = rfc3339(time.time() + retry_after)
        return anthropic_error(429, "rate_limit_error",
                               "This request would exceed the rate limit for your organization "
                               "of 50 requests per minute. For details, refer to: "
                               "https://docs.claude.com/en/api/rate-limits. You can see the "
                               "response headers for current usage.",
                               hint + [("anthropic-ratelimit-requests-limit", "50"),
                                       ("anthropic-ratelimit-requests-remaining", "0"),
                                       ("anthropic-ratelimit-requests-reset", reset)])
    if provider == "google":
        return gemini_quota_failure(model, False, retry_after)
    if provider == "zai":
        return zai_error(429, 1302, "High concurrency usage of this API, please reduce "
                                    "concurrency or contact customer service to increase limits",
                         hint)
    if provider == "moonshot":
        return moonshot_error(429, "Your account org-stub <ak-stub> request reached organization "
                                   "max RPM: 3, please try again after %d seconds" % secs,
                              "rate_limit_reached_error", hint)
    return openai_error(429, "Rate limit reached for %s in organization org-stub on requests per "
                             "min (RPM): Limit 3, Used 3, Requested 1. Please try again in %s. "
                             "Visit https://platform.openai.com/account/rate-limits to learn "
                             "more." % (model, go_duration(retry_after)),
                        "requests", "rate_limit_exceeded", None,
                        hint + [("retry-after-ms", str(int(round(retry_after * 1000)))),
                                ("x-ratelimit-limit-requests", "3"),
                                ("x-ratelimit-remaining-requests", "0"),
                                ("x-ratelimit-reset-requests", go_duration(retry_after)),
                                ("x-ratelimit-limit-tokens", "40000"),
                                ("x-ratelimit-remaining-tokens", "39990"),
                                ("x-ratelimit-reset-tokens", "12ms")])


def overloaded(provider):
    if provider == "anthropic":
        return anthropic_error(529, "overloaded_error", "Overloaded")
    if provider == "google":
        return gemini_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
    if provider == "zai":
        return zai_error(503, 1305, "The service may be temporarily overloaded, please try again "
                                    "later")
    if provider == "moonshot":
        return moonshot_error(503, "The engine is currently overloaded, please try again later",
                              "engine_overloaded_error")
    return openai_error(503, "The engine is currently overloaded, please try again later.",
                        "server_error")


def server_error(provider):
    if provider == "anthropic":
        return anthropic_error(500, "api_error", "Internal server error")
    if provider == "google":
        return gemini_error(500, "INTERNAL", "An internal error has occurred. Please retry or "
                                             "report in https://developers.generativeai.google/"
                                             "guide/troubleshooting")
    if provider == "zai":
        return zai_error(500, 500, "Internal Error")
    if provider == "moonshot":
        return moonshot_error(500, "Internal server error", "server_error")
    return openai_error(500, "The server had an error while processing your request. Sorry "
                             "about that!", "server_error")


def bad_request(provider, model):
    """A plain request error: names the model, never a key, a quota or a limit."""
    if provider == "anthropic":
        return anthropic_error(400, "invalid_request_error", "model: %s is not a supported "
                                                            "model name" % model)
    if provider == "google":
        return gemini_error(400, "INVALID_ARGUMENT", "* GenerateContentRequest.model: model "
                                                     "'%s' is not supported" % model)
    if provider == "zai":
        return zai_error(400, 1211, "Unknown Model, please check the model code: %s" % model)
    if provider == "moonshot":
        return moonshot_error(400, "Not found the model %s or Permission denied" % model,
                              "invalid_request_error")
    return openai_error(400, "The model '%s' does not exist" % model, "invalid_request_error",
                        "model_not_found", "model")


# ---------------------------------------------------------------- success shapes

def ok_headers(provider):
    now = time.time()
    if provider == "anthropic":
        return [("request-id", rid("req_")),
                ("anthropic-organization-id", "00000000-0000-4000-8000-000000000000"),
                ("anthropic-ratelimit-requests-limit", "50"),
                ("anthropic-ratelimit-requests-remaining", "49"),
                ("anthropic-ratelimit-requests-reset", rfc3339(now + 1)),
                ("anthropic-ratelimit-tokens-limit", "40000"),
                ("anthropic-ratelimit-tokens-remaining", "39000"),
                ("anthropic-ratelimit-tokens-reset", rfc3339(now + 1))]
    if provider == "google":
        return [("x-goog-request-id", rid(""))]
    return [("x-request-id", rid("req_")), ("openai-processing-ms", "12"),
            ("openai-version", "2020-10-01"),
            ("x-ratelimit-limit-requests", "500"), ("x-ratelimit-remaining-requests", "499"),
            ("x-ratelimit-reset-requests", "120ms"), ("x-ratelimit-limit-tokens", "200000"),
            ("x-ratelimit-remaining-tokens", "199990"), ("x-ratelimit-reset-tokens", "3ms")]


def models_body(provider):
    names = MODELS[provider]
    if provider == "anthropic":
        data = [{"type": "model", "id": m, "display_name": m.replace("-", " ").title(),
                 "created_at": "2025-09-29T00:00:00Z"} for m in names]
        return {"data": data, "has_more": False, "first_id": names[0], "last_id": names[-1]}
    if provider == "google":
        return {"models": [{"name": "models/" + m, "version": "001", "displayName": m,
                            "inputTokenLimit": 1048576, "outputTokenLimit": 65536,
                            "supportedGenerationMethods": ["generateContent", "countTokens"]}
                           for m in names]}
    return {"object": "list", "data": [{"id": m, "object": "model", "created": 1715367049,
                                        "owned_by": "system"} for m in names]}


def balance_body():
    return {"code": 0, "data": {"available_balance": 49.58894, "voucher_balance": 46.58893,
                                "cash_balance": 3.00001}, "scode": "0x0", "status": True}


def completion_body(provider, model, text, in_tokens, limit):
    text, cut = truncate(text, limit)
    out_tokens = words(text)
    proto = PROTOCOL[provider]
    if proto == "anthropic":
        return {"id": rid("msg_"), "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": "max_tokens" if cut else "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": in_tokens, "output_tokens": out_tokens,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                          "service_tier": "standard"}}
    if proto == "gemini":
        return {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                                "finishReason": "MAX_TOKENS" if cut else "STOP", "index": 0}],
                "usageMetadata": {"promptTokenCount": in_tokens,
                                  "candidatesTokenCount": out_tokens,
                                  "totalTokenCount": in_tokens + out_tokens,
                                  "promptTokensDetails": [{"modality": "TEXT",
                                                           "tokenCount": in_tokens}]},
                "modelVersion": model, "responseId": rid("", 8)}
    body = {"id": rid("chatcmpl-"), "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text,
                                                 "refusal": None},
                         "logprobs": None, "finish_reason": "length" if cut else "stop"}],
            "usage": {"prompt_tokens": in_tokens, "completion_tokens": out_tokens,
                      "total_tokens": in_tokens + out_tokens,
                      "prompt_tokens_details": {"cached_tokens": 0}},
            "system_fingerprint": "fp_stub"}
    if provider == "zai":
        body["request_id"] = body["id"]
    return body


# ---------------------------------------------------------------- request validation

def validate_anthropic(b):
    """(error message or None, prompt text)."""
    for field in ("model", "max_tokens", "messages"):
        if field not in b:
            return "%s: Field required" % field, None
    if not isinstance(b["model"], str) or not b["model"]:
        return "model: Input should be a valid string", None
    mt = b["max_tokens"]
    if not isinstance(mt, int) or isinstance(mt, bool):
        return "max_tokens: Input should be a valid integer", None
    if mt < 1:
        return "max_tokens: Input should be greater than or equal to 1", None
    msgs = b["messages"]
    if not isinstance(msgs, list):
        return "messages: Input should be a valid list", None
    if not msgs:
        return "messages: at least one message is required", None
    prompt = [text_of(b.get("system"))]
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            return "messages.%d: Input should be a valid dictionary" % i, None
        if m.get("role") not in ("user", "assistant"):
            return ('messages.%d.role: Unexpected role "%s". The Messages API accepts a '
                    'top-level `system` parameter, not "system" as an input message role.'
                    % (i, m.get("role")) if m.get("role") == "system" else
                    "messages.%d.role: Input should be 'user' or 'assistant'" % i), None
        if "content" not in m:
            return "messages.%d.content: Field required" % i, None
        if m["content"] == "" or m["content"] == []:
            return "messages: text content blocks must be non-empty", None
        prompt.append(text_of(m["content"]))
    return None, " ".join(prompt)


def validate_openai(b):
    """(error tuple (message, param, code) or None, prompt text)."""
    if "model" not in b or not isinstance(b["model"], str) or not b["model"]:
        return ("you must provide a model parameter", None, None), None
    if "messages" not in b:
        return ("Missing required parameter: 'messages'.", "messages",
                "missing_required_parameter"), None
    msgs = b["messages"]
    if not isinstance(msgs, list):
        return ("Invalid type for 'messages': expected an array of objects, but got %s instead."
                % type(msgs).__name__, "messages", "invalid_type"), None
    if not msgs:
        return ("Invalid 'messages': empty array. Expected an array with minimum length 1, but "
                "got an empty array instead.", "messages", "empty_array"), None
    prompt = []
    roles = ("system", "developer", "user", "assistant", "tool", "function")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in roles:
            role = m.get("role") if isinstance(m, dict) else None
            return ("Invalid value: '%s'. Supported values are: 'system', 'assistant', 'user', "
                    "'tool', 'function', and 'developer'." % role,
                    "messages[%d].role" % i, "invalid_value"), None
        if "content" not in m and m["role"] != "assistant":
            return ("Missing required parameter: 'messages[%d].content'." % i,
                    "messages[%d].content" % i, "missing_required_parameter"), None
        prompt.append(text_of(m.get("content")))
    return None, " ".join(prompt)


def validate_gemini(b):
    contents = b.get("contents")
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified", None
    prompt = []
    si = b.get("systemInstruction", b.get("system_instruction"))
    if isinstance(si, dict):
        prompt.append(text_of(si.get("parts")))
    for i, c in enumerate(contents):
        if not isinstance(c, dict):
            return "Invalid value at 'contents[%d]': not an object" % i, None
        if c.get("role", "user") not in ("user", "model"):
            return "Please use a valid role: user, model.", None
        if not isinstance(c.get("parts"), list) or not c["parts"]:
            return ("* GenerateContentRequest.contents[%d].parts: contents.parts must not be "
                    "empty." % i), None
        prompt.append(text_of(c["parts"]))
    return None, " ".join(prompt)


def parse_json_body(provider, raw):
    """(dict, None) or (None, error Response) for a POST body."""
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        if provider == "anthropic":
            return None, request_error(provider, "There was an issue with your request body: "
                                                 "invalid JSON.")
        if provider == "google":
            return None, request_error(provider, "Invalid JSON payload received. Unexpected "
                                                 "token.")
        return None, request_error(provider, "We could not parse the JSON body of your request. "
                                             "(HINT: This likely means you aren't using your "
                                             "HTTP library correctly. The OpenAI API expects a "
                                             "JSON payload, but what was sent was not valid "
                                             "JSON.)")
    if not isinstance(obj, dict):
        if provider == "google":
            return None, request_error(provider, "Invalid JSON payload received. Expected an "
                                                 "object.")
        return None, request_error(provider, "Invalid type for request body: expected an "
                                             "object.")
    return obj, None


# ---------------------------------------------------------------- the server

class KeyState:
    __slots__ = ("mode", "text", "delay_ms", "retry_after", "times")


class Stub:
    def __init__(self, host, quiet, max_log):
        self.host = host
        self.port = 0
        self.quiet = quiet
        self.keys = {}
        self.log = collections.deque(maxlen=max_log)
        self.writers = set()

    # ---- logging (stderr): method, path without query, status; keys redacted all the same

    def say(self, method, path, status):
        if self.quiet:
            return
        line = "%s %s %s" % (method, path, status)
        for part in re.split(r"[/: ]", line):  # a key misplaced in a path segment
            if part in self.keys:
                line = line.replace(part, "[key]")
        try:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass

    # ---- connections

    async def handle_conn(self, reader, writer):
        self.writers.add(writer)
        try:
            while True:
                try:
                    req = await asyncio.wait_for(self.read_request(reader, writer),
                                                 IDLE_TIMEOUT)
                except HttpError as e:
                    await self.send(writer, Response(e.status, b'{"error":"bad request"}'),
                                    True)
                    self.say("-", "-", e.status)
                    return
                if req is None:
                    return
                keep = self.keep_alive(req)
                try:
                    resp = await self.dispatch(req)
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # never print the message: it could hold a key
                    tb = e.__traceback__
                    while tb is not None and tb.tb_next is not None:
                        tb = tb.tb_next
                    sys.stderr.write("stub_provider: internal error: %s at line %s\n"
                                     % (type(e).__name__, tb.tb_lineno if tb else "?"))
                    resp = Response(500, b'{"error":"stub internal error"}')
                self.say(req.method, req.path, resp.status)
                if not await self.send(writer, resp, not keep):
                    return
                if not keep or resp.kind != "normal":
                    return
        except (ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError, OSError,
                asyncio.LimitOverrunError, ValueError):
            pass
        except asyncio.CancelledError:
            pass  # shutting down: the connection task ends here, quietly
        finally:
            self.writers.discard(writer)
            try:
                writer.close()
            except Exception:
                pass

    @staticmethod
    def keep_alive(req):
        conn = req.headers.get("connection", "").lower()
        if req.version == "HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn

    async def read_request(self, reader, writer):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as e:
            if e.partial.strip():
                raise HttpError(400)
            return None
        except asyncio.LimitOverrunError:
            raise HttpError(431)
        lines = head.decode("latin-1").lstrip("\r\n").split("\r\n")
        try:
            method, target, version = lines[0].split(" ")
        except ValueError:
            raise HttpError(400)
        if not version.startswith("HTTP/1."):
            raise HttpError(400)
        headers = {}
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise HttpError(400)
            name = name.lower()
            value = value.strip()
            headers[name] = headers[name] + ", " + value if name in headers else value
        req = Request()
        req.method, req.target, req.version, req.headers = method, target, version, headers
        split = urllib.parse.urlsplit(target)
        req.path, req.query = split.path, split.query
        req.body = await self.read_body(reader, writer, headers)
        return req

    @staticmethod
    async def read_body(reader, writer, headers):
        te = headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        if not te and length is None:
            return b""
        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if te:
            if te != "chunked":
                raise HttpError(501)
            chunks, total = [], 0
            while True:
                size_line = await reader.readuntil(b"\r\n")
                try:
                    size = int(size_line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise HttpError(400)
                if size == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    raise HttpError(413)
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
        if not length.isdigit():
            raise HttpError(400)
        n = int(length)
        if n > MAX_BODY_BYTES:
            raise HttpError(413)
        return await reader.readexactly(n)

    async def send(self, writer, resp, close):
        """Write resp; False when the connection is gone or must close."""
        head = ["HTTP/1.1 %d %s" % (resp.status, REASONS.get(resp.status, "Status")),
                "Date: " + email.utils.formatdate(usegmt=True), "Server: keyrelay-stub"]
        if resp.ctype:
            head.append("Content-Type: " + resp.ctype)
        head.extend("%s: %s" % h for h in resp.headers)
        if resp.kind == "stream":
            head.append("Transfer-Encoding: chunked")
        else:
            head.append("Content-Length: %d" % len(resp.body))
        if close or resp.kind != "normal":
            head.append("Connection: close")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        try:
            if resp.kind == "normal":
                writer.write(data + resp.body)
                await writer.drain()
                return not close
            if resp.kind == "cutoff":
                writer.write(data + resp.body[:len(resp.body) // 2])
                await writer.drain()
                return False
            writer.write(data)
            async for chunk in resp.stream():
                writer.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        return False

    # ---- routing

    async def dispatch(self, req):
        if req.path.startswith("/_stub/"):
            return self.control(req)
        entry = {"provider": None, "method": req.method, "path": req.target,
                 "headers": dict(req.headers), "body": self.log_body(req.body),
                 "status": None, "time": time.time()}
        self.log.append(entry)
        resp = None
        for prefix, provider in PREFIXES:
            if req.path == prefix or req.path.startswith(prefix + "/"):
                entry["provider"] = provider
                resp = await self.provider_call(req, provider, req.path[len(prefix):])
                break
        if resp is None:
            if req.path == "/elsewhere":
                resp = json_response(200, {"elsewhere": True})
            else:
                resp = json_response(404, {"error": "no such path on the stub"})
        entry["status"] = resp.status
        return resp

    @staticmethod
    def log_body(raw):
        if not raw:
            return None
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return raw.decode("utf-8", "replace")

    @staticmethod
    def route(provider, sub):
        """(endpoint, allowed method, model from the path) or None."""
        if provider == "anthropic":
            table = {"/v1/models": ("models", "GET"), "/v1/messages": ("complete", "POST")}
            hit = table.get(sub)
            return hit + (None,) if hit else None
        if provider == "google":
            if sub == "/models":
                return ("models", "GET", None)
            m = GEMINI_GENERATE_RE.match(sub)
            return ("complete", "POST", urllib.parse.unquote(m.group(1))) if m else None
        table = {"/models": ("models", "GET"), "/chat/completions": ("complete", "POST")}
        if provider == "moonshot":
            table["/users/me/balance"] = ("balance", "GET")
        hit = table.get(sub)
        return hit + (None,) if hit else None

    @staticmethod
    def key_of(provider, headers):
        if provider == "anthropic":
            return headers.get("x-api-key") or None
        if provider == "google":
            return headers.get("x-goog-api-key") or None
        auth = headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return token.strip()

    def take_mode(self, key):
        """The key's state and the mode of this call (consumes one of "times")."""
        st = self.keys[key]
        if st.times is None:
            return st.mode
        if st.times > 0:
            st.times -= 1
            return st.mode
        return "ok"

    def peek_mode(self, key):
        st = self.keys[key]
        return "ok" if st.times is not None and st.times <= 0 else st.mode

    async def provider_call(self, req, provider, sub):
        if provider == "google" and "key" in urllib.parse.parse_qs(req.query,
                                                                   keep_blank_values=True):
            return request_error(provider, "key in URL")
        hit = self.route(provider, sub)
        if hit is None:
            if provider == "google":
                return request_error(provider, "Requested entity was not found.", 404)
            return request_error(provider, "Invalid URL (%s %s)" % (req.method, req.path), 404)
        endpoint, method, path_model = hit
        if req.method != method:
            resp = request_error(provider, "Method Not Allowed: %s %s" % (req.method, req.path),
                                 405)
            resp.headers.append(("Allow", method))
            return resp
        key = self.key_of(provider, req.headers)
        if key is None:
            return missing_auth(provider)
        if provider == "anthropic":
            version = req.headers.get("anthropic-version")
            if not version:
                return request_error(provider, "anthropic-version: header is required")
            if version not in ANTHROPIC_VERSIONS:
                return request_error(provider, "anthropic-version: invalid version '%s'"
                                     % version[:40])
        if key not in self.keys:
            return auth_invalid(provider, key)
        if self.peek_mode(key) in ("auth", "echo_key"):
            mode = self.take_mode(key)
            await self.pause(self.keys[key], mode)
            return auth_invalid(provider, key, echo=(mode == "echo_key"))

        model, prompt, limit = path_model or MODELS[provider][0], "", None
        if endpoint == "complete":
            body, err = parse_json_body(provider, req.body)
            if err is not None:
                return err
            proto = PROTOCOL[provider]
            if proto == "anthropic":
                msg, prompt = validate_anthropic(body)
                if msg:
                    return request_error(provider, msg)
                limit = body["max_tokens"]
            elif proto == "gemini":
                msg, prompt = validate_gemini(body)
                if msg:
                    return request_error(provider, msg)
                gc = body.get("generationConfig")
                limit = gc.get("maxOutputTokens") if isinstance(gc, dict) else None
            else:
                e, prompt = validate_openai(body)
                if e:
                    return request_error(provider, e[0], 400, e[1], e[2])
                limit = body.get("max_completion_tokens", body.get("max_tokens"))
            if proto != "gemini":
                model = body["model"]

        st = self.keys[key]
        mode = self.take_mode(key)
        await self.pause(st, mode)
        retry_after = st.retry_after if st.retry_after is not None else DEFAULT_RETRY_AFTER
        if mode == "forbidden":
            return forbidden(provider)
        if mode == "quota":
            return quota(provider, model)
        if mode == "rate":
            return rate(provider, model, retry_after)
        if mode == "overloaded":
            return overloaded(provider)
        if mode == "server_error":
            return server_error(provider)
        if mode == "bad_request":
            return bad_request(provider, model)
        if mode == "redirect":
            url = "http://127.0.0.1:%d/elsewhere" % self.port
            return Response(302, b"<html><body>Moved</body></html>",
                            [("Location", url)], "text/html")
        text = st.text if st.text is not None else DEFAULT_TEXT
        if endpoint == "models":
            body = models_body(provider)
        elif endpoint == "balance":
            body = balance_body()
        else:
            body = completion_body(provider, model, text, words(prompt), limit)
        if mode == "cutoff":
            return Response(200, json.dumps(body).encode(), ok_headers(provider), kind="cutoff")
        if mode == "oversized":
            return self.oversized(provider, endpoint, model, words(prompt))
        return json_response(200, body, ok_headers(provider))

    @staticmethod
    async def pause(st, mode):
        if mode == "ok" and st.times is not None and st.times <= 0:
            return  # "times" used up: plain ok, no delay
        delay = st.delay_ms
        if delay is None and mode == "delay":
            delay = DEFAULT_DELAY_MS
        if delay:
            await asyncio.sleep(delay / 1000.0)

    @staticmethod
    def oversized(provider, endpoint, model, in_tokens):
        """A 200 whose chunked body is OVERSIZED_BYTES of valid JSON (the answer text, or a
        "padding" field of a list, is the filler)."""
        mark = "\u0001FILL\u0001"
        if endpoint == "complete":
            body = completion_body(provider, model, mark, in_tokens, None)
        else:
            body = models_body(provider) if endpoint == "models" else balance_body()
            body["padding"] = mark
        pre, post = json.dumps(body).encode().split(json.dumps(mark).encode()[1:-1])
        fill_total = OVERSIZED_BYTES - len(pre) - len(post)
        block = (b"lorem ipsum dolor sit amet " * 10000)[:256 * 1024]

        async def stream():
            yield pre
            left = fill_total
            while left > 0:
                n = min(left, len(block))
                yield block[:n]
                left -= n
            yield post
        resp = Response(200, b"", ok_headers(provider), kind="stream")
        resp.stream = stream
        return resp

    # ---- control API

    def control(self, req):
        p, m = req.path, req.method
        if p == "/_stub/health":
            return json_response(200, {"ok": True}) if m == "GET" else self.ctl_405("GET")
        if p == "/_stub/requests":
            if m == "GET":
                return json_response(200, {"requests": list(self.log)})
            if m == "DELETE":
                self.log.clear()
                return json_response(200, {"ok": True})
            return self.ctl_405("GET, DELETE")
        if p == "/_stub/keys":
            if m == "POST":
                return self.set_key(req.body)
            if m == "DELETE":
                self.keys.clear()
                return json_response(200, {"ok": True})
            return self.ctl_405("POST, DELETE")
        return json_response(404, {"error": "unknown control path"})

    @staticmethod
    def ctl_405(allow):
        return json_response(405, {"error": "method not allowed"}, [("Allow", allow)])

    def set_key(self, raw):
        def bad(msg):
            return json_response(400, {"error": msg})
        try:
            spec = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return bad("body is not JSON")
        if not isinstance(spec, dict):
            return bad("body must be an object")
        unknown = sorted(set(spec) - set(KEY_FIELDS))
        if unknown:
            return bad("unknown fields: " + ", ".join(unknown))
        key = spec.get("key")
        if not isinstance(key, str) or not key:
            return bad("key: a non-empty string is required")
        mode = spec.get("mode", "ok")
        if mode not in MODES:
            return bad("mode: one of " + ", ".join(MODES))
        text = spec.get("text")
        if text is not None and not isinstance(text, str):
            return bad("text: a string")
        nums = {}
        for field in ("delayMs", "retryAfter", "times"):
            v = spec.get(field)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                                  or v < 0 or (field == "times" and not isinstance(v, int))):
                return bad(field + ": a non-negative number" +
                           (" (integer)" if field == "times" else ""))
            nums[field] = v
        st = KeyState()
        st.mode, st.text = mode, text
        st.delay_ms, st.retry_after, st.times = nums["delayMs"], nums["retryAfter"], nums["times"]
        self.keys[key] = st
        return json_response(200, {"ok": True})


def raise_fd_limit():
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard > soft:
            target = 1 << 16 if hard == resource.RLIM_INFINITY else hard
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, target), hard))
    except (ValueError, OSError):
        pass


def write_port_file(path, port):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.replace(tmp, path)


async def serve(args):
    stub = Stub(args.host, args.quiet, args.max_log)
    server = await asyncio.start_server(stub.handle_conn, args.host, args.port,
                                        backlog=args.backlog, limit=MAX_HEADER_BYTES,
                                        reuse_address=True)
    stub.port = server.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.port_file:
        write_port_file(args.port_file, stub.port)
    if not args.quiet:
        sys.stderr.write("stub_provider: listening on %s:%d\n" % (args.host, stub.port))
        sys.stderr.flush()
    await stop.wait()
    server.close()
    for w in list(stub.writers):
        w.close()
    if args.port_file:
        try:
            os.unlink(args.port_file)
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser(description="Stub AI provider for keyrelay tests.")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port-file")
    ap.add_argument("--quiet", action="store_true", help="no per-request log lines")
    ap.add_argument("--backlog", type=int, default=4096)
    ap.add_argument("--max-log", type=int, default=50000,
                    help="requests kept in the request log (oldest dropped; 0: none)")
    args = ap.parse_args()
    raise_fd_limit()
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
