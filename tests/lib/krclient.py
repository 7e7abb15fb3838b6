"""Small HTTP client and check framework for the keyrelay HTTP tests.

Python 3 standard library only (http.client).

    from krclient import Client, Checks, expect, expect_error, unique

    t = Checks("auth")
    c = Client(stack.base_url)
    with t("admin can log in"):
        r = c.login(stack.admin_email, stack.admin_password)
        expect(200, r)
    t.done()          # prints "N passed, N failed" and exits 1 on any failure

A Client keeps a cookie jar (kr_session), sends the X-CSRF-Token of the last successful login
on every non-GET request made with the cookie (per request: csrf=None omits it, csrf="x"
overrides it; client-wide: client.send_csrf = False), or an `Authorization: Bearer` token when
constructed with bearer=... . Requests answer a Response that unpacks as
(status, headers, body): body is the parsed JSON when the answer is JSON, else raw bytes.
"""

import concurrent.futures
import contextlib
import http.client
import json as _json
import os
import re
import secrets
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

__all__ = [
    "Client", "Response", "Checks", "CheckError", "SetupError", "ClientError",
    "expect", "expect_error", "error_shape_problems", "eq", "true", "is_time", "expect_time",
    "unique", "unique_slug", "unique_email", "random_password",
    "parse_set_cookie", "parse_prometheus",
    "admin_client", "user_client", "create_user", "create_workspace", "add_member",
    "ERROR_STATUS",
]

# The error codes of api.md and their HTTP statuses.
ERROR_STATUS = {
    "bad_request": 400, "invalid_json": 400, "unauthorized": 401, "forbidden": 403,
    "not_found": 404, "method_not_allowed": 405, "conflict": 409, "payload_too_large": 413,
    "unsupported_media_type": 415, "validation_failed": 422, "rate_limited": 429,
    "internal": 500, "unavailable": 503,
}

_UNSET = object()
_AUTO = object()
_ANY = object()
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class CheckError(AssertionError):
    """A failed expectation inside a check."""


class SetupError(CheckError):
    """A precondition of a test (creating users, workspaces...) failed."""


class ClientError(Exception):
    """The HTTP exchange itself failed (connection refused, reset, timeout)."""


# ---------------------------------------------------------------------------------------------
# Responses

class Response:
    """One HTTP answer. Unpacks as (status, headers, body)."""

    def __init__(self, method, path, status, reason, headers, raw, elapsed, send_error=None):
        self.method = method
        self.path = path
        self.status = status
        self.reason = reason
        self.headers = headers          # http.client.HTTPMessage: case-insensitive get/get_all
        self.raw = raw                  # bytes
        self.elapsed = elapsed          # seconds
        self.send_error = send_error    # an OSError raised while sending the body, if any
        self.json = None
        self.json_error = None
        if self.is_json() or raw[:1] in (b"{", b"["):
            try:
                self.json = _json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                self.json_error = str(exc)

    @property
    def body(self):
        return self.json if self.json is not None else self.raw

    def __iter__(self):
        return iter((self.status, self.headers, self.body))

    def header(self, name, default=None):
        return self.headers.get(name, default)

    def header_all(self, name):
        return self.headers.get_all(name) or []

    @property
    def content_type(self):
        return self.headers.get("Content-Type", "") or ""

    def is_json(self):
        return self.content_type.split(";")[0].strip().lower() == "application/json"

    @property
    def text(self):
        return self.raw.decode("utf-8", "replace")

    def describe(self, limit=1500):
        body = self.text
        if len(body) > limit:
            body = body[:limit] + "...(%d bytes)" % len(self.raw)
        return "%s %s -> HTTP %d [%s] %s" % (self.method, self.path, self.status,
                                              self.content_type or "no content-type", body)

    def __repr__(self):
        return "<Response %s>" % self.describe(200)


# ---------------------------------------------------------------------------------------------
# Cookies

def parse_set_cookie(value):
    """'kr_session=abc; HttpOnly; Path=/' -> (name, value, {attr-lowercase: value-or-True})."""
    parts = [p.strip() for p in value.split(";")]
    name, _, val = parts[0].partition("=")
    attrs = {}
    for p in parts[1:]:
        if not p:
            continue
        k, sep, v = p.partition("=")
        attrs[k.strip().lower()] = v.strip() if sep else True
    return name.strip(), val.strip(), attrs


def _cookie_expired(val, attrs):
    if val == "":
        return True
    max_age = attrs.get("max-age")
    if isinstance(max_age, str):
        try:
            if int(max_age) <= 0:
                return True
        except ValueError:
            pass
    expires = attrs.get("expires")
    if isinstance(expires, str):
        import email.utils
        try:
            when = email.utils.parsedate_to_datetime(expires)
            if when.timestamp() <= time.time():
                return True
        except (TypeError, ValueError):
            pass
    return False


# ---------------------------------------------------------------------------------------------
# Client

class Client:
    def __init__(self, base_url, bearer=None, timeout=60.0):
        u = urllib.parse.urlsplit(base_url)
        if u.scheme not in ("http", "https"):
            raise ValueError("base_url must be http(s)://host:port: %r" % base_url)
        self.base_url = base_url.rstrip("/")
        self._scheme = u.scheme
        self._host = u.hostname
        self._port = u.port
        self._prefix = u.path.rstrip("/")
        self.timeout = timeout
        self.cookies = {}               # name -> value
        self.csrf_token = None
        self.send_csrf = True
        self.bearer = bearer
        self.user = None                # user object of the last successful login
        self.last_login = None          # Response of the last login

    # -- plumbing --------------------------------------------------------------------------

    def _conn(self):
        cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        return cls(self._host, self._port, timeout=self.timeout)

    def request(self, method, path, json=_UNSET, body=None, content_type=_AUTO, headers=None,
                csrf=_AUTO, bearer=_AUTO, send_cookies=True, ensure_ascii=False):
        """Send one request; answer a Response.

        json: a value sent as JSON (Content-Type application/json unless content_type says
        otherwise). body: raw bytes or str sent as given with content_type (None: no header).
        csrf: _AUTO (the login's token on non-GET requests that carry the cookie), None/False
        (omit), or a string (sent as is). bearer: _AUTO (the client's), None (none), or a token.
        """
        method = method.upper()
        hdrs = {}
        if json is not _UNSET:
            payload = _json.dumps(json, ensure_ascii=ensure_ascii).encode("utf-8")
            ctype = "application/json" if content_type is _AUTO else content_type
        elif body is not None:
            payload = body.encode("utf-8") if isinstance(body, str) else bytes(body)
            ctype = None if content_type is _AUTO else content_type
        else:
            payload = None
            ctype = None if content_type is _AUTO else content_type
        if ctype is not None:
            hdrs["Content-Type"] = ctype
        hdrs["Accept"] = "application/json"

        cookie_sent = False
        if send_cookies and self.cookies:
            hdrs["Cookie"] = "; ".join("%s=%s" % kv for kv in self.cookies.items())
            cookie_sent = True

        token = self.bearer if bearer is _AUTO else bearer
        if token:
            hdrs["Authorization"] = "Bearer %s" % token

        if csrf is _AUTO:
            if (method not in _SAFE_METHODS and cookie_sent and self.send_csrf
                    and self.csrf_token):
                hdrs["X-CSRF-Token"] = self.csrf_token
        elif csrf:
            hdrs["X-CSRF-Token"] = csrf

        if headers:
            for k, v in headers.items():
                if v is None:
                    hdrs.pop(k, None)
                else:
                    hdrs[k] = v

        full_path = self._prefix + path
        conn = self._conn()
        started = time.monotonic()
        send_error = None
        try:
            try:
                conn.putrequest(method, full_path, skip_accept_encoding=True)
                for k, v in hdrs.items():
                    conn.putheader(k, v)
                if payload is not None or method in ("POST", "PUT", "PATCH"):
                    conn.putheader("Content-Length", str(len(payload or b"")))
                conn.endheaders()
                if payload:
                    view = memoryview(payload)
                    for off in range(0, len(view), 65536):
                        conn.send(view[off:off + 65536])
            except (BrokenPipeError, ConnectionResetError) as exc:
                # The server may answer (413...) and close before it read the whole body:
                # still try to read its answer.
                send_error = exc
            try:
                resp = conn.getresponse()
                raw = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                extra = " (after send error %r)" % send_error if send_error else ""
                raise ClientError("%s %s: no HTTP answer: %r%s" % (method, path, exc, extra))
        finally:
            conn.close()
        elapsed = time.monotonic() - started
        r = Response(method, path, resp.status, resp.reason, resp.msg, raw, elapsed, send_error)
        for sc in r.header_all("Set-Cookie"):
            name, val, attrs = parse_set_cookie(sc)
            if not name:
                continue
            if _cookie_expired(val, attrs):
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = val
        return r

    def get_all(self, path, name, **kw):
        """GET a paginated list to its end, following nextCursor with limit=200. Answers the
        last page's Response with json[name] holding every item (or the first non-200)."""
        items, cursor = [], None
        while True:
            sep = "&" if "?" in path else "?"
            url = path + sep + "limit=200" + ("&before=" + cursor if cursor else "")
            r = self.get(url, **kw)
            if r.status != 200 or not isinstance(r.json, dict):
                return r
            items.extend(r.json.get(name) or [])
            cursor = r.json.get("nextCursor")
            if not cursor:
                r.json[name] = items
                return r

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, json=_UNSET, **kw):
        return self.request("POST", path, json=json, **kw)

    def put(self, path, json=_UNSET, **kw):
        return self.request("PUT", path, json=json, **kw)

    def patch(self, path, json=_UNSET, **kw):
        return self.request("PATCH", path, json=json, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    # -- sessions --------------------------------------------------------------------------

    @property
    def session(self):
        return self.cookies.get("kr_session")

    def login(self, email, password):
        """POST /api/auth/login; on 200 keeps the cookie and the csrfToken."""
        r = self.request("POST", "/api/auth/login", json={"email": email, "password": password},
                         send_cookies=False, csrf=None, bearer=None)
        self.last_login = r
        if r.status == 200 and isinstance(r.json, dict):
            self.csrf_token = r.json.get("csrfToken")
            self.user = r.json.get("user")
        return r

    def logout(self):
        return self.request("POST", "/api/auth/logout")

    def clone(self):
        """A second client with the same cookies, CSRF token and bearer."""
        c = Client(self.base_url, bearer=self.bearer, timeout=self.timeout)
        c.cookies = dict(self.cookies)
        c.csrf_token = self.csrf_token
        c.send_csrf = self.send_csrf
        c.user = self.user
        return c


class RecordingClient(Client):
    """A Client that appends every answer to the list seen, as "METHOD path -> status body",
    for the checks that no secret shows up in any answer."""

    def __init__(self, base_url, seen, **kw):
        super().__init__(base_url, **kw)
        self.seen = seen

    def request(self, method, path, **kw):
        r = super().request(method, path, **kw)
        self.seen.append("%s %s -> %d %s" % (r.method, r.path, r.status, r.text))
        return r


# ---------------------------------------------------------------------------------------------
# Assertions

def _short(v, limit=600):
    s = repr(v)
    return s if len(s) <= limit else s[:limit] + "..."


# A made-up key of each provider's usual shape: (prefix, random characters[, suffix]).
_KEY_SHAPES = {"anthropic": ("sk-ant-api03-", 40), "openai": ("sk-proj-", 40),
               "google": ("AIzaSy", 33), "moonshot": ("sk-", 40),
               "openai_compatible": ("lmstudio-", 30)}


def fake_key(provider, remember=None, rng=None):
    """A random key in the provider's usual format (never a real one), appended to the
    list remember when given (for the checks that no secret shows up anywhere). rng: a
    random.Random for keys a seed replays; the secrets module's otherwise."""
    alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    choice = rng.choice if rng is not None else secrets.choice

    def rnd(n):
        return "".join(choice(alnum) for _ in range(n))
    if provider == "zai":
        k = rnd(32) + "." + rnd(16)
    else:
        prefix, n = _KEY_SHAPES[provider]
        k = prefix + rnd(n)
    if remember is not None:
        remember.append(k)
    return k


def leaked_keys(text, keys):
    """The keys (shortened to their first 6 characters) whose whole text, or the middle that
    no masked form shows (api.md: at most the first 7 and the last 4), appears in text."""
    out = []
    for k in keys:
        middle = k[7:-4] if len(k) >= 16 else k
        if k in text or (len(middle) >= 8 and middle in text):
            out.append(k[:6] + "...")
    return out


def at_once(calls):
    """Run the calls (functions answering a Response) in threads released together by a
    barrier, so that the requests overlap; their answers, in order."""
    start = threading.Barrier(len(calls))

    def go(call):
        start.wait(timeout=60)
        return call()
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(go, calls))


def admins_only_workspace(s, admin, n, instance_admin=None):
    """A fresh workspace whose only admins are n fresh users (instance admins when asked); the
    instance admin who made it stays as a viewer, to read it: (slug, [(user id, email,
    client)]). For tests racing admins against each other."""
    ws = create_workspace(admin)["slug"]
    out = []
    for i in range(n):
        u, e, pw = create_user(admin, name="Racer %d" % i, instance_admin=instance_admin)
        add_member(admin, ws, e, "admin")
        out.append((u["id"], e, user_client(s, e, pw)))
    r = admin.patch("/api/workspaces/%s/members/%s" % (ws, admin.user["id"]),
                    json={"role": "viewer"})
    if r.status != 200:
        raise CheckError("instance admin steps down to viewer in %s: %s" % (ws, r.describe()))
    return ws, out


def fcgi_request(sock_path, params, body=b"", timeout=10):
    """One request straight to a FastCGI socket (keyrelay-fcgi's api.sock), bypassing nginx,
    with the CGI params given (REMOTE_ADDR, say, which nginx would set); answers the
    response's stdout (headers and body) as text."""
    def record(rtype, content):
        return struct.pack(">BBHHBx", 1, rtype, 1, len(content), 0) + content

    def pair(k, v):
        k, v = k.encode(), v.encode()
        return bytes([len(k)]) + (bytes([len(v)]) if len(v) < 128 else
                                  struct.pack(">I", len(v) | 0x80000000)) + k + v
    names = b"".join(pair(k, v) for k, v in params.items())
    out = b""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as so:
        so.settimeout(timeout)
        so.connect(str(sock_path))
        so.sendall(record(1, struct.pack(">HB5x", 1, 0)) + record(4, names) + record(4, b"")
                   + (record(5, body) if body else b"") + record(5, b""))
        buf = b""
        while True:
            chunk = so.recv(65536)
            if not chunk:
                break
            buf += chunk
        while len(buf) >= 8:
            _, rtype, _, clen, plen = struct.unpack(">BBHHBx", buf[:8])
            if rtype == 6:
                out += buf[8:8 + clen]
            buf = buf[8 + clen + plen:]
    return out.decode("utf-8", "replace")


def wait_for(what, fn, timeout, interval=0.1):
    """fn() until it answers something true, which is returned; CheckError naming what
    (and the last answer) after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise CheckError("timed out after %.0f s waiting for %s (last: %.800r)"
                             % (timeout, what, last))
        time.sleep(interval)


def eq(actual, expected, what="value"):
    if actual != expected:
        raise CheckError("%s: expected %s, got %s" % (what, _short(expected), _short(actual)))
    return actual


def true(cond, message):
    if not cond:
        raise CheckError(message)
    return cond


def expect(status, resp, what=None):
    """Assert resp.status (an int, or a tuple of ints); print the whole answer on mismatch."""
    allowed = status if isinstance(status, (tuple, list, set)) else (status,)
    if resp.status not in allowed:
        want = "/".join(str(s) for s in allowed)
        raise CheckError("%sexpected HTTP %s, got %s" % (what + ": " if what else "", want,
                                                         resp.describe()))
    return resp


def error_shape_problems(resp):
    """Problems with an error answer's shape: {"error":{"code","message"[,"field"]}}, JSON."""
    problems = []
    ctype = resp.content_type.split(";")[0].strip().lower()
    if ctype != "application/json":
        problems.append("Content-Type is %r, not application/json" % resp.content_type)
    doc = resp.json
    if not isinstance(doc, dict):
        problems.append("body is not a JSON object (%s)" % (resp.json_error or type(doc).__name__))
        return problems
    if set(doc.keys()) != {"error"}:
        problems.append("top-level keys are %s, not exactly ['error']" % sorted(doc.keys()))
    err = doc.get("error")
    if not isinstance(err, dict):
        problems.append("error is not an object")
        return problems
    extra = set(err.keys()) - {"code", "message", "field"}
    if extra:
        problems.append("error has unexpected keys %s" % sorted(extra))
    code = err.get("code")
    if not isinstance(code, str):
        problems.append("error.code missing or not a string")
    elif code not in ERROR_STATUS:
        problems.append("error.code %r is not one of the contract's codes" % code)
    elif ERROR_STATUS[code] != resp.status:
        problems.append("error.code %r belongs to HTTP %d, answered with %d"
                        % (code, ERROR_STATUS[code], resp.status))
    msg = err.get("message")
    if not isinstance(msg, str) or not msg:
        problems.append("error.message missing, empty or not a string")
    if "field" in err and not isinstance(err["field"], str):
        problems.append("error.field is not a string")
    return problems


def expect_error(resp, status, code, field=_ANY, what=None):
    """Assert an error answer: status, exact shape, code, and (when given) field.

    field: a name (must equal), None (must be absent), or omitted (not checked)."""
    expect(status, resp, what)
    prefix = (what + ": ") if what else ""
    problems = error_shape_problems(resp)
    if problems:
        raise CheckError("%serror shape: %s; answer: %s" % (prefix, "; ".join(problems),
                                                            resp.describe()))
    err = resp.json["error"]
    if err.get("code") != code:
        raise CheckError("%sexpected code %r, got %r; answer: %s"
                         % (prefix, code, err.get("code"), resp.describe()))
    if field is not _ANY:
        if field is None and "field" in err:
            raise CheckError("%sexpected no field, got %r" % (prefix, err["field"]))
        if field is not None and err.get("field") != field:
            raise CheckError("%sexpected field %r, got %r; answer: %s"
                             % (prefix, field, err.get("field"), resp.describe()))
    return err


_RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")


def is_time(v):
    """An RFC 3339 UTC time string as api.md shows them (2026-11-21T22:49:05.123Z)."""
    return isinstance(v, str) and bool(_RFC3339_UTC.match(v))


def expect_time(v, what="time"):
    if not is_time(v):
        raise CheckError("%s: expected an RFC 3339 UTC time (...Z), got %s" % (what, _short(v)))
    return v


# ---------------------------------------------------------------------------------------------
# Names

def unique(prefix="t"):
    """A lower-case name unique to this run: prefix-<8 hex>."""
    return "%s-%s" % (prefix, secrets.token_hex(4))


def unique_slug(prefix="t"):
    return unique(prefix)


def unique_email(prefix="u"):
    return "%s@keyrelay.test" % unique(prefix)


def random_password():
    return "pw-" + secrets.token_urlsafe(18)


# ---------------------------------------------------------------------------------------------
# Check framework

class _Check:
    def __init__(self, checks, what, fatal):
        self.checks = checks
        self.what = what
        self.fatal = fatal

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.checks.ok(self.what)
            return False
        if not issubclass(exc_type, Exception):
            return False                         # KeyboardInterrupt, SystemExit
        if issubclass(exc_type, AssertionError):
            details = str(exc) or "assertion failed"
        else:
            frames = traceback.format_exception(exc_type, exc, tb)
            details = "%s: %s (%s)" % (exc_type.__name__, exc, frames[-2].strip()
                                       if len(frames) > 1 else "")
        self.checks.not_ok(self.what, details)
        if self.fatal:
            self.checks.done()
        return True


class Checks:
    """Each check prints `ok - what` or `not ok - what: details`; done() prints the totals
    and exits 1 if any check failed."""

    def __init__(self, name=""):
        self.name = name
        self.passed = 0
        self.failed = 0
        self.failures = []

    def __call__(self, what):
        """`with t("what"):` a check; an exception inside marks it failed."""
        return _Check(self, what, fatal=False)

    def setup(self, what):
        """Like a check, but a failure ends the script (nothing after it can work)."""
        return _Check(self, what, fatal=True)

    def ok(self, what):
        self.passed += 1
        print("ok - %s" % what, flush=True)

    def not_ok(self, what, details=""):
        self.failed += 1
        details = " | ".join(str(details).splitlines())
        self.failures.append((what, details))
        print("not ok - %s: %s" % (what, details), flush=True)

    def check(self, what, cond, details=""):
        if cond:
            self.ok(what)
        else:
            self.not_ok(what, details or "condition false")
        return bool(cond)

    def done(self):
        print("%d passed, %d failed" % (self.passed, self.failed), flush=True)
        sys.exit(1 if self.failed else 0)


def run(name, body):
    """Run body(checks); an exception escaping it counts as a failed check; then done()."""
    t = Checks(name)
    try:
        body(t)
    except SystemExit:
        raise
    except Exception as exc:   # noqa: BLE001 - reported as a failed check
        t.not_ok("%s: unexpected exception" % name,
                 "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    t.done()


# ---------------------------------------------------------------------------------------------
# Set-up helpers (raise SetupError on an unexpected answer)

def _need(status, resp, what):
    if resp.status != status:
        raise SetupError("%s: expected HTTP %d, got %s" % (what, status, resp.describe()))
    return resp


def admin_client(stack):
    """A client logged in as the stack's instance admin."""
    c = Client(stack.base_url)
    _need(200, c.login(stack.admin_email, stack.admin_password), "instance admin login")
    return c


@contextlib.contextmanager
def private_stack(t, prefix, label, env=None, config=None):
    """A stack of the test's own in a temporary directory, started as the setup step
    `label`; yields (stack, admin client). On the way out the stack stops (a problem, a
    sanitizer report say, fails the test) and the directory goes, unless
    KEYRELAY_TEST_KEEP is set."""
    import krstack  # noqa: E402 - krstack is a sibling of this module
    root = tempfile.mkdtemp(prefix=prefix)
    try:
        with t.setup(label):
            s = krstack.Stack.start(os.path.join(root, "s"), env=env, config=config)
            admin = admin_client(s)
        try:
            yield s, admin
        finally:
            for p in s.down():
                t.not_ok("stack down without problems", p)
    finally:
        if os.environ.get("KEYRELAY_TEST_KEEP"):
            print("# stack directory kept: %s" % root, flush=True)
        else:
            shutil.rmtree(root, ignore_errors=True)


def user_client(stack_or_url, email, password, seen=None):
    """A client logged in as email; a RecordingClient into the list seen when given."""
    base = stack_or_url if isinstance(stack_or_url, str) else stack_or_url.base_url
    c = Client(base) if seen is None else RecordingClient(base, seen)
    _need(200, c.login(email, password), "login as %s" % email)
    return c


def create_user(admin, email=None, name=None, password=None, instance_admin=None):
    """POST /api/users; answers (user object, email, password)."""
    email = email or unique_email()
    name = name or ("User " + email.split("@")[0])
    password = password or random_password()
    body = {"email": email, "name": name, "password": password}
    if instance_admin is not None:
        body["isInstanceAdmin"] = instance_admin
    r = _need(201, admin.post("/api/users", json=body), "create user %s" % email)
    if not isinstance(r.json, dict) or not isinstance(r.json.get("id"), str):
        raise SetupError("create user %s: no id in %s" % (email, r.describe()))
    return r.json, email, password


def create_workspace(admin, slug=None, name=None):
    """POST /api/workspaces as an instance admin; answers the workspace object."""
    slug = slug or unique_slug("ws")
    name = name or ("Workspace " + slug)
    r = _need(201, admin.post("/api/workspaces", json={"slug": slug, "name": name}),
              "create workspace %s" % slug)
    return r.json


def add_member(client, ws, email, role):
    r = _need(201, client.post("/api/workspaces/%s/members" % ws,
                               json={"email": email, "role": role}),
              "add %s to %s as %s" % (email, ws, role))
    return r.json


# ---------------------------------------------------------------------------------------------
# Prometheus text format

_SAMPLE_RE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?\s*$')
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')


def _parse_labels(s):
    labels = {}
    pos = 0
    while pos < len(s):
        m = _LABEL_RE.match(s, pos)
        if not m:
            raise ValueError("bad labels %r" % s)
        labels[m.group(1)] = (m.group(2).replace('\\"', '"').replace("\\n", "\n")
                              .replace("\\\\", "\\"))
        pos = m.end()
    return labels


def parse_prometheus(text):
    """-> (samples [(name, {labels}, float)], types {family: type}, problems [str])."""
    samples, types, problems = [], {}, []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 4 and parts[1] == "TYPE":
                types[parts[2]] = parts[3].strip()
            continue
        m = _SAMPLE_RE.match(line)
        if not m:
            problems.append("line %d is not a sample: %r" % (n, line))
            continue
        try:
            labels = _parse_labels(m.group(3) or "")
            value = float(m.group(4))
        except ValueError as exc:
            problems.append("line %d: %s" % (n, exc))
            continue
        samples.append((m.group(1), labels, value))
    return samples, types, problems


def all_pages(client, path, name, limit=200):
    """Every item of the paged list at path, following nextCursor."""
    items, cursor = [], None
    for _ in range(1000):
        r = client.get(path + "?limit=%d" % limit
                       + ("&before=%s" % urllib.parse.quote(cursor) if cursor else ""))
        expect(200, r, "GET %s page" % path)
        items += r.json[name]
        cursor = r.json.get("nextCursor")
        if cursor is None:
            return items
    raise CheckError("GET %s: still a nextCursor after 1000 pages" % path)


def check_pages(client, path, name, id_key, new_ids, foreign_id=None):
    """Pagination of the list at path (api.md "Conventions"): walking it with ?limit=2 and
    nextCursor gives every item once, newest first by (createdAt, id), with new_ids (in
    creation order) among them newest first; bad limit or before: 422 naming the field."""
    walked, cursor = [], None
    for _ in range(1000):
        r = client.get(path + "?limit=2" + ("&before=%s" % cursor if cursor else ""))
        expect(200, r, "GET %s page" % path)
        page = r.json[name]
        true("nextCursor" in r.json, "no nextCursor: %s" % r.describe())
        true(len(page) <= 2, "more than limit=2 items: %s" % r.describe())
        walked += page
        cursor = r.json["nextCursor"]
        if cursor is None:
            break
        eq(cursor, page[-1][id_key], "nextCursor is the last item's id")
    eq(cursor, None, "nextCursor after 1000 pages")
    ids = [x[id_key] for x in walked]
    eq(len(ids), len(set(ids)), "items seen twice in the walk")
    keys = [(x["createdAt"], x[id_key]) for x in walked]
    eq(keys, sorted(keys, reverse=True), "order (newest first by createdAt, id)")
    true(all(i in ids for i in new_ids), "new items missing from the walk")
    eq([i for i in ids if i in new_ids], list(reversed(new_ids)), "new items newest first")
    r = client.get(path + "?limit=200")
    expect(200, r)
    if r.json["nextCursor"] is None:
        eq([x[id_key] for x in r.json[name]], ids, "limit=200 against the walk")
    r = client.get(path)
    expect(200, r)
    true(len(r.json[name]) <= 50, "default limit above 50")
    eq(r.json["nextCursor"], ids[49] if len(ids) > 50 else None, "nextCursor, default limit")
    for bad in ("0", "201", "-1", "abc", "", "2.5"):
        expect_error(client.get(path + "?limit=" + bad), 422, "validation_failed",
                     field="limit", what="limit=%r" % bad)
    bads = ["nope", "00000000-0000-4000-8000-000000000000"] + ([foreign_id] if foreign_id else [])
    for bad in bads:
        expect_error(client.get(path + "?before=" + bad), 422, "validation_failed",
                     field="before", what="before=%r" % bad)

