#!/usr/bin/env python3
"""A whole keyrelay stack on one machine: MariaDB, keyrelay-fcgi, keyrelay-runner and nginx.

Used by the HTTP tests (a throwaway stack per build directory, or a private one per test that
breaks things) and by deploy/local.sh (a persistent development stack in var/). Python 3
standard library only.

Command line:
    krstack.py up DIR        start a fresh throwaway stack in DIR (wipes a previous one there)
    krstack.py down DIR      stop everything started for DIR (idempotent); exit 1 when a program
                             logged a sanitizer report or had to be killed
    krstack.py status DIR
    krstack.py local-up DIR --bin-dir BIN [--port PORT]     persistent stack (deploy/local.sh)
    krstack.py local-down DIR
    krstack.py local-status DIR

Layout of DIR (mode 0700):
    stack.json (0600, holds the secrets)  keyrelay.conf (0600)  master.key (0400)  .krstack
    mariadb/ (datadir)  mariadb.sock  api.sock  events.sock
    nginx/ (nginx.conf, keyrelay-site.conf, pid, temp/)  run/*.pid  logs/*.log
    stub/ (test stacks: the stub AI provider's stub.port, stub.pid, stub.log)

Test stacks (`up`, Stack.start) also run the stub AI provider (tests/stub/stub_provider.py),
started before the programs: they get KEYRELAY_PROVIDER_<ID>_BASE_URL pointing at the stub's
per-provider URLs and KEYRELAY_BASE_URL_ALLOWLIST=<the stub's origin> (after the origins
the caller's environment or Stack.start(env=...) lists), except where the caller's
environment, Stack.start(env=...) or Stack.start(config=...) sets the URLs, or the config
sets base_url_allowlist. stack.json holds "stub_dir" and "stub_urls" {provider: url}; s.stub
is a tests/stub/stubctl.Stub attached to it (s.stub.set_key(key, "auth"));
s.stop_service("stub") / s.start_service("stub") stop it and start it again on the same port
(its key modes and request log are lost); `down` stops it.
The local stack (`local-up`) has no stub.

Python API (see tests/http): Stack.from_env(), Stack.start(dir), s.sql(), s.admin(),
s.stop_mariadb(), s.start_mariadb(), s.stop_service(name), s.start_service(name), s.down(),
s.log_text(), s.stub, s.stub_urls, s.service_pid(name).

More runners on one stack (the stack's own runner is the service "runner"):
s.start_runner(name, env=None) starts another keyrelay-runner (config of the stack, runner.name
"<runner.name>-<name>", extra environment env such as {"KEYRELAY_RUNNER_DRAIN_SECONDS": "3"})
logging to DIR/logs/runner-<name>.log and answers an ExtraRunner handle: .name, .pid, .log,
.kill(sig), .wait(timeout) -> exit status or None, .running(), .stop() -> problems,
.log_text(). `down` stops the extra runners that are still running (before MariaDB) and looks
for sanitizer reports in their logs too.

Environment: every variable of the caller reaches the programs (stub provider URLs, system
provider keys, KEYRELAY_* overrides of config keys, ASAN_OPTIONS), except the KEYRELAY_*
variables that would point the programs away from this stack (KEYRELAY_CONFIG, KEYRELAY_DB_*,
KEYRELAY_FCGI_SOCKET, KEYRELAY_FCGI_EVENTS_SOCKET, KEYRELAY_SECRETS_*) and local.sh's
KEYRELAY_ADMIN_PASSWORD. Stack.start(dir, env={...}) sets variables for one private stack,
blocked ones included.
"""

import argparse
import atexit
import json
import os
import pwd
import re
import secrets
import select
import shutil
import signal
import socket
import string
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NGINX_TEMPLATES = REPO / "nginx"
SERVICES = ("mariadb", "fcgi", "runner", "nginx")
PROGRAMS = ("keyrelay-fcgi", "keyrelay-runner", "keyrelay-admin")
DB_NAME = "keyrelay"
DB_USER = "keyrelay"
WORKSPACE = "default"
MASTER_KEY_ID = "k1"
TEST_ADMIN_EMAIL = "admin@keyrelay.test"
LOCAL_ADMIN_EMAIL = "admin@localhost"
# Variables that must not override what the stack wires up itself.
ENV_BLOCKED = {
    "KEYRELAY_CONFIG", "KEYRELAY_DB_HOST", "KEYRELAY_DB_PORT", "KEYRELAY_DB_SOCKET",
    "KEYRELAY_DB_NAME", "KEYRELAY_DB_USER", "KEYRELAY_DB_PASSWORD", "KEYRELAY_FCGI_SOCKET",
    "KEYRELAY_FCGI_EVENTS_SOCKET", "KEYRELAY_SECRETS_MASTER_KEYS",
    "KEYRELAY_SECRETS_ACTIVE_MASTER_KEY", "KEYRELAY_ADMIN_PASSWORD",
}
SANITIZER_PATTERNS = re.compile(
    r"ERROR: (AddressSanitizer|LeakSanitizer|ThreadSanitizer|MemorySanitizer)"
    r"|runtime error: |SUMMARY: UndefinedBehaviorSanitizer")
UNIX_PATH_MAX = 107  # sun_path is 108 bytes with the terminating NUL
STUB = "stub"        # the stub AI provider of test stacks (a service besides SERVICES)
STUB_DIR = REPO / "tests" / "stub"
# Environment variable and configuration key of the allowlist of openai_compatible base URLs.
ALLOWLIST_ENV, ALLOWLIST_KEY = "KEYRELAY_BASE_URL_ALLOWLIST", "base_url_allowlist"

# Timeouts in seconds (sanitized builds start slowly on a 2-core machine).
T_MARIADB = 90
T_FCGI = 45
T_NGINX = 20
T_HEALTHZ = 90
T_STOP = 25
T_ADMIN = 180
T_STUB = 30


class StackError(Exception):
    """Something of the stack could not be started or stopped; the message says what."""


# ------------------------------------------------------------------------------------------
# small helpers

def _log(msg):
    print("krstack: " + msg, file=sys.stderr, flush=True)


def _tail(path, lines=40):
    try:
        data = Path(path).read_bytes()
    except OSError:
        return "(no %s)" % path
    text = data.decode("utf-8", "replace").splitlines()[-lines:]
    return "---- last %d lines of %s ----\n%s" % (len(text), path, "\n".join(text))


def free_port():
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _random_password(n=20):
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _write_private(path, text):
    """Writes a file readable by its owner only (created 0600, never world-readable)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _proc_start_time(pid):
    """Start time of a process (clock ticks since boot), or None when it does not exist or
    is a zombie. Together with the pid it names one process, so a reused pid is not killed."""
    try:
        stat = Path("/proc/%d/stat" % pid).read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _read_from(path, offset):
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _stubctl():
    """tests/stub/stubctl.py (imported on first use; the local stack never needs it)."""
    if str(STUB_DIR) not in sys.path:
        sys.path.insert(0, str(STUB_DIR))
    import stubctl
    return stubctl


def _provider_env(provider):
    """Environment variable and configuration key of a provider's base URL."""
    return ("KEYRELAY_PROVIDER_%s_BASE_URL" % provider.upper(),
            "provider.%s_base_url" % provider)


def _plain_env():
    """Environment for MariaDB and nginx: the caller's, without KEYRELAY_* (secrets)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("KEYRELAY_")}


class SqlSession:
    """One mariadb client connection, kept open: run(sql) sends statements (parameters
    bound as in Stack.sql) and answers their output lines once they have all run."""

    _MARK = "kr-session-mark"

    def __init__(self, argv):
        self.p = subprocess.Popen(argv + ["--unbuffered"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._buf = b""

    def run(self, query, *params, timeout=30):
        try:
            self.p.stdin.write((bind_sql(query, params) + ";\nSELECT '%s';\n"
                                % self._MARK).encode("utf-8"))
            self.p.stdin.flush()
        except OSError as e:
            raise StackError("mariadb session: %s" % e)
        lines, fd = [], self.p.stdout.fileno()
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self._buf:
                line, self._buf = self._buf.split(b"\n", 1)
                line = line.decode("utf-8", "replace")
                if line == self._MARK:
                    return lines
                lines.append(line)
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise StackError("mariadb session: no answer in %d s" % timeout)
            chunk = os.read(fd, 65536)
            if not chunk:
                raise StackError("mariadb session ended: %s"
                                 % self.p.stderr.read().decode("utf-8", "replace").strip())
            self._buf += chunk

    def close(self):
        """Ends the session; an open transaction is rolled back first, and its locks are
        gone when this returns (the server would otherwise end it on its own time)."""
        if self.p.poll() is None:
            try:
                self.run("ROLLBACK", timeout=10)
            except (StackError, OSError):
                pass
            self.p.stdin.close()
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.p.stdout.close()
        self.p.stderr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _tool(name):
    """Path of a system program; /usr/sbin is not on a normal user's PATH on Debian."""
    found = shutil.which(name) or next(
        (p for p in ("/usr/sbin/" + name, "/sbin/" + name) if os.access(p, os.X_OK)), None)
    if not found:
        raise StackError("%s not found: install the Debian packages of deploy/packages.txt "
                         "(deploy/install-packages.sh)" % name)
    return found


def _unix_listening(path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


def _tcp_listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _http_get(url, timeout=3):
    """(status, body) of a GET; status 0 when there was no HTTP answer at all."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except (OSError, ValueError) as e:
        return 0, str(e)


# --- SQL literals for Stack.sql ---

def _sql_literal(v):
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError("SQL parameter: %r has no SQL literal" % v)
        return repr(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        b = bytes(v)
        return "X'%s'" % b.hex() if b else "''"
    if hasattr(v, "isoformat"):
        v = v.isoformat(sep=" ") if hasattr(v, "hour") and hasattr(v, "date") else v.isoformat()
    if isinstance(v, str):
        out = []
        for ch in v:
            out.append({"\\": "\\\\", "'": "\\'", "\0": "\\0", "\n": "\\n", "\r": "\\r",
                        "\x1a": "\\Z"}.get(ch, ch))
        return "'" + "".join(out) + "'"
    raise TypeError("SQL parameter of type %s is not supported" % type(v).__name__)


def bind_sql(query, params):
    """Replaces the placeholders `?` or `%s` outside quoted strings and comments by the
    escaped literals of params, in order."""
    if not params:
        return query
    out = []
    i, n, k = 0, len(query), 0
    while i < n:
        c = query[i]
        if c in "'\"`":
            j = i + 1
            while j < n:
                if query[j] == "\\" and c != "`":
                    j += 2
                    continue
                if query[j] == c:
                    if j + 1 < n and query[j + 1] == c:
                        j += 2
                        continue
                    break
                j += 1
            out.append(query[i:j + 1])
            i = j + 1
            continue
        if query.startswith("--", i) or c == "#":
            j = query.find("\n", i)
            j = n if j < 0 else j
            out.append(query[i:j])
            i = j
            continue
        if query.startswith("/*", i):
            j = query.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(query[i:j])
            i = j
            continue
        if c == "?" or query.startswith("%s", i):
            if k >= len(params):
                raise ValueError("SQL: more placeholders than parameters in %r" % query)
            out.append(_sql_literal(params[k]))
            k += 1
            i += 1 if c == "?" else 2
            continue
        out.append(c)
        i += 1
    if k != len(params):
        raise ValueError("SQL: %d parameters for %d placeholders" % (len(params), k))
    return "".join(out)


_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
_XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"


def _parse_xml_results(text):
    """Rows of the `mariadb --xml` output (one XML document per result set)."""
    # XML 1.0 cannot carry control characters: park them in a private-use plane meanwhile.
    text = _XML_BAD.sub(lambda m: chr(0xF0000 + ord(m.group())), text)
    rows = []
    for doc in text.split('<?xml version="1.0"?>'):
        if not doc.strip():
            continue
        root = ET.fromstring(doc.strip())
        for row in root.iter("row"):
            vals = []
            for f in row.iter("field"):
                if f.get(_XSI_NIL) == "true":
                    vals.append(None)
                else:
                    v = f.text or ""
                    vals.append("".join(chr(ord(ch) - 0xF0000) if 0xF0000 <= ord(ch) < 0xF0020
                                        else ch for ch in v))
            rows.append(tuple(vals))
    return rows


# ------------------------------------------------------------------------------------------

class Stack:
    """One stack, described by DIR/stack.json."""

    def __init__(self, dir, state):
        self.dir = Path(dir).resolve()
        self.state = state
        self._children = {}          # name -> Popen, for services this process started
        self._extra_env = dict(state.get("env") or {})
        self._down_done = False
        self._stub = None            # stubctl.Stub attached to the stub (s.stub)

    # ---- construction -------------------------------------------------------------------

    @classmethod
    def load(cls, dir):
        dir = Path(dir).resolve()
        path = dir / "stack.json"
        try:
            state = json.loads(path.read_text())
        except FileNotFoundError:
            raise StackError("%s: no stack here (no stack.json)" % dir) from None
        return cls(dir, state)

    @classmethod
    def from_env(cls):
        d = os.environ.get("KEYRELAY_TEST_STACK")
        if not d:
            raise StackError("KEYRELAY_TEST_STACK is not set (ctest sets it; or run "
                             "`krstack.py up DIR` and export KEYRELAY_TEST_STACK=DIR)")
        return cls.load(d)

    @classmethod
    def start(cls, dir, env=None, config=None, bin_dir=None):
        """Starts a fresh private stack in dir and returns it. It is stopped when this
        process exits (or by the shared stack's `down` if this process is killed).
        env: extra environment for the programs; config: extra keyrelay.conf keys."""
        parent = os.environ.get("KEYRELAY_TEST_STACK")
        if bin_dir is None and not os.environ.get("KEYRELAY_BIN_DIR") and parent:
            try:  # the programs of the shared stack, rather than a guessed build directory
                bin_dir = cls.load(parent).state.get("bin_dir")
            except StackError:
                pass
        s = cls._fresh(dir, mode="test", env=env, config=config, bin_dir=bin_dir)
        if parent and Path(parent).resolve() != s.dir and (Path(parent) / ".krstack").exists():
            with open(Path(parent) / "private-stacks.txt", "a", encoding="utf-8") as f:
                f.write(str(s.dir) + "\n")
        atexit.register(lambda: None if s._down_done else s._down_quietly())
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL):
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            s._up()
        except BaseException:
            s._down_quietly()
            raise
        return s

    @classmethod
    def _fresh(cls, dir, mode, env=None, config=None, bin_dir=None, port=None):
        dir = Path(dir).resolve()
        if mode == "local":
            if (dir / "mariadb").exists():
                raise StackError("%s/stack.json is missing but %s/mariadb holds data: restore "
                                 "stack.json, or remove %s to start over" % (dir, dir, dir))
        elif dir.exists() and any(dir.iterdir()):
            if not (dir / ".krstack").exists():
                raise StackError("%s exists, is not empty and is not a stack directory; "
                                 "refusing to wipe it" % dir)
            try:
                cls.load(dir)._down_quietly()
            except StackError:
                pass
            _Stopper.stop_all_in(dir)  # pid files without a stack.json (an aborted up)
            shutil.rmtree(dir)
        bin_dir = _resolve_bin_dir(bin_dir)
        state = {
            "mode": mode,
            "dir": str(dir),
            "bin_dir": str(bin_dir),
            "config": str(dir / "keyrelay.conf"),
            "mariadb_socket": str(dir / "mariadb.sock"),
            "mariadb_port": None,
            "db_name": DB_NAME,
            "db_user": DB_USER,
            "db_password": None,
            "http_port": port,
            "base_url": None,
            "admin_email": TEST_ADMIN_EMAIL if mode == "test" else None,
            "admin_password": None,
            "workspace": WORKSPACE,
            "db_created": False,
            "admin_created": False,
            "workspace_created": False,
            "env": dict(env or {}),
            "config_extra": dict(config or {}),
            "stub_dir": str(dir / "stub") if mode == "test" else None,
            "stub_port": None,
            "stub_urls": None,
        }
        s = cls(dir, state)
        s._make_dirs()
        (dir / ".krstack").write_text("created by tests/lib/krstack.py\n")
        return s

    # ---- public attributes --------------------------------------------------------------

    base_url = property(lambda self: self.state["base_url"])
    admin_email = property(lambda self: self.state["admin_email"])
    admin_password = property(lambda self: self.state["admin_password"])
    workspace = property(lambda self: self.state["workspace"])
    config = property(lambda self: self.state["config"])
    bin_dir = property(lambda self: Path(self.state["bin_dir"]))
    http_port = property(lambda self: self.state["http_port"])
    mariadb_socket = property(lambda self: self.state["mariadb_socket"])
    db_name = property(lambda self: self.state["db_name"])
    db_user = property(lambda self: self.state["db_user"])
    db_password = property(lambda self: self.state["db_password"])
    stub_urls = property(lambda self: dict(self.state.get("stub_urls") or {}))

    @property
    def stub(self):
        """A tests/stub/stubctl.Stub attached to this stack's stub AI provider (test stacks):
        s.stub.set_key(key, mode, ...), s.stub.requests(), s.stub.base_url(provider)."""
        if not self.state.get("stub_dir"):
            raise StackError("%s: this stack has no stub provider (a local stack)" % self.dir)
        if self._stub is None:
            self._stub = _stubctl().Stub.attach(self.state["stub_dir"])
        return self._stub

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.down()

    # ---- paths --------------------------------------------------------------------------

    def p(self, *parts):
        return self.dir.joinpath(*parts)

    def _make_dirs(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        for sub in ("logs", "run", "nginx", "nginx/temp"):
            self.p(sub).mkdir(exist_ok=True)
        for path in (self.p("mariadb.sock"), self.p("api.sock"), self.p("events.sock")):
            if len(str(path).encode()) > UNIX_PATH_MAX:
                raise StackError("socket path too long for a unix socket (%d bytes, max %d): "
                                 "%s; use a shorter stack directory"
                                 % (len(str(path).encode()), UNIX_PATH_MAX, path))

    def _save(self):
        _write_private(self.p("stack.json"), json.dumps(self.state, indent=2) + "\n")

    # ---- environment and config ---------------------------------------------------------

    def _env(self):
        env = {k: v for k, v in os.environ.items() if k not in ENV_BLOCKED}
        env.update(self._extra_env)
        env["KEYRELAY_CONFIG"] = self.config
        # The stub provider (test stacks), unless the caller chose the URLs itself.
        urls = self.state.get("stub_urls") or {}
        cfg = self.state.get("config_extra") or {}
        for provider, url in urls.items():
            var, key = _provider_env(provider)
            if var not in env and key not in cfg:
                env[var] = url
        if urls and ALLOWLIST_KEY not in cfg:
            # the stub's origin, after the caller's when it gave a list (another stub's)
            stub_origin = "http://127.0.0.1:%d" % self.state["stub_port"]
            given = env.get(ALLOWLIST_ENV, "").strip(", ")
            env[ALLOWLIST_ENV] = given + "," + stub_origin if given else stub_origin
        return env

    def _write_config(self):
        st = self.state
        keys = [
            ("db.host", "127.0.0.1"),
            ("db.port", str(st["mariadb_port"])),
            # The unix socket wins over host and port: no TCP on the hot path.
            ("db.socket", st["mariadb_socket"]),
            ("db.name", st["db_name"]),
            ("db.user", st["db_user"]),
            ("db.password", st["db_password"]),
            ("fcgi.socket", str(self.p("api.sock"))),
            ("fcgi.events_socket", str(self.p("events.sock"))),
            ("fcgi.socket_mode", "0660"),
            ("secrets.master_keys", "%s=file:%s" % (MASTER_KEY_ID, self.p("master.key"))),
            ("secrets.active_master_key", MASTER_KEY_ID),
            ("runner.name", "%s-%s" % ("test" if st["mode"] == "test" else "local",
                                       socket.gethostname())),
            ("log.level", "debug" if st["mode"] == "test" else "info"),
        ]
        if st["mode"] == "test":
            # Tests running side by side sign in as the one shared admin and open event
            # streams (browser pages too): the default of 8 per user is for people.
            # test_events checks the limits on a private stack of its own.
            keys.append(("events.streams_per_client", "64"))
        extra = dict(st.get("config_extra") or {})
        lines = ["# Generated by tests/lib/krstack.py for the %s stack in %s; rewritten at every"
                 % (st["mode"], self.dir),
                 "# start. Every key is documented in deploy/keyrelay.conf.example.", ""]
        for k, v in keys:
            lines.append("%s = %s" % (k, extra.pop(k, v)))
        for k, v in extra.items():
            lines.append("%s = %s" % (k, v))
        _write_private(self.config, "\n".join(lines) + "\n")

    # ---- whole stack --------------------------------------------------------------------

    def _up(self, on_admin=None):
        """Brings every part up; creates what the state says does not exist yet.
        on_admin(email, password) is called as soon as the first admin is made, before the
        services start: a later failure must not lose the only copy of the password."""
        st = self.state
        for prog in PROGRAMS:
            if not os.access(self.bin_dir / prog, os.X_OK):
                raise StackError("%s not found or not executable in %s (build it first: "
                                 "cmake --build <build dir>)" % (prog, self.bin_dir))
        if st["db_password"] is None:
            st["db_password"] = _random_password(24)
        if st["mode"] == "test" and st["admin_password"] is None:
            st["admin_password"] = _random_password(20)
        self._save()
        if st.get("stub_dir"):
            self.start_stub()  # before any program: their environment names its URLs
        if not self.p("mariadb", "mysql").is_dir():
            st["db_created"] = st["admin_created"] = st["workspace_created"] = False
            self._install_mariadb()
        if not self.running("mariadb"):
            self.start_mariadb()
        if not st["db_created"]:
            self._create_database()
            st["db_created"] = True
            self._save()
        self._ensure_master_key()
        self._write_config()
        self._admin_checked("migrate")
        created_login = None
        if not st["admin_created"]:
            created_login = self._create_admin()
            if on_admin is not None:
                on_admin(*created_login)
        if not st["workspace_created"]:
            self._admin_checked("create-workspace", "--slug", WORKSPACE, "--name", "Default",
                                "--owner", st["admin_email"])
            st["workspace_created"] = True
            self._save()
        for name in ("fcgi", "runner", "nginx"):
            if not self.running(name):
                self.start_service(name)
        self._save()
        self.wait_healthy()
        return created_login

    def _ensure_master_key(self):
        """DIR/master.key: 32 random bytes as 64 hex digits, mode 0400, made once with the
        database. Without it the secrets in the database cannot be decrypted."""
        path = self.p("master.key")
        if path.exists():
            return
        if self.state["workspace_created"]:
            raise StackError("%s is missing but the database was made with it: restore it "
                             "(the keys stored in the database cannot be decrypted without "
                             "it), or remove %s to start over" % (path, self.dir))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")

    def _create_admin(self):
        st = self.state
        password = st["admin_password"]
        if st["mode"] == "local":
            st["admin_email"] = os.environ.get("KEYRELAY_ADMIN_EMAIL") or LOCAL_ADMIN_EMAIL
            password = os.environ.get("KEYRELAY_ADMIN_PASSWORD") or _random_password(20)
        self._admin_checked("create-user", "--email", st["admin_email"], "--name", "Admin",
                            "--instance-admin", input=password + "\n")
        st["admin_created"] = True
        self._save()
        return (st["admin_email"], password)

    def down(self):
        """Stops everything (idempotent). Returns a list of problems: sanitizer reports in
        the programs' logs, programs that had to be killed."""
        problems = []
        for extra in self._private_stacks():
            try:
                problems += Stack.load(extra).down()
            except StackError:
                pass
            _Stopper.stop_all_in(extra)
        for name in self.state.get("extra_runners") or []:
            problems += self._stop(ExtraRunner.service(name))
        for name in reversed(SERVICES):
            problems += self._stop(name)
        problems += self.stop_stub()
        problems += self.sanitizer_reports()
        self._down_done = True
        return problems

    def _down_quietly(self):
        try:
            for p in self.down():
                _log(p)
        except Exception as e:  # pragma: no cover - best effort at exit
            _log("down %s: %s" % (self.dir, e))

    def _private_stacks(self):
        try:
            lines = self.p("private-stacks.txt").read_text().split()
        except OSError:
            return []
        return sorted({Path(x) for x in lines if Path(x, ".krstack").exists()})

    def sanitizer_reports(self):
        found = []
        extra = [ExtraRunner.service(n) for n in self.state.get("extra_runners") or []]
        for name in ["fcgi", "runner", "admin"] + extra:
            path = self.p("logs", name + ".log")
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            m = SANITIZER_PATTERNS.search(text)
            if m:
                start = text.rfind("\n", 0, max(0, m.start() - 200)) + 1
                found.append("sanitizer report in %s:\n%s" % (path, text[start:start + 4000]))
        return found

    def log_text(self):
        parts = []
        for path in sorted(self.p("logs").glob("*.log")):
            parts.append("==> %s <==\n%s" % (path.name, path.read_text(errors="replace")))
        return "\n".join(parts)

    def wait_healthy(self, timeout=T_HEALTHZ):
        url = self.base_url + "/healthz"
        deadline = time.monotonic() + timeout
        status, body = 0, ""
        while time.monotonic() < deadline:
            status, body = _http_get(url)
            if status == 200 and self.running("nginx"):
                return
            for name in ("fcgi", "runner", "nginx", "mariadb"):
                if not self.running(name):
                    raise StackError("%s exited while waiting for %s\n%s"
                                     % (name, url, self._service_tails(name)))
            time.sleep(0.3)
        raise StackError("GET %s did not answer 200 within %d s (last: %s %s)\n%s\n%s"
                         % (url, timeout, status, body[:300], self._service_tails("fcgi"),
                            self._service_tails("nginx")))

    def status(self):
        lines = []
        for name in SERVICES:
            rec = _Stopper.read(self.p("run", name + ".pid"))
            lines.append("%-8s %s" % (name, "running (pid %d)" % rec[0] if self.running(name)
                                      else "stopped"))
        if self.state.get("stub_dir"):
            rec = _Stopper.read(self.p("run", STUB + ".pid"))
            lines.append("%-8s %s" % (STUB, "running (pid %d) on http://127.0.0.1:%s"
                                      % (rec[0], self.state.get("stub_port"))
                                      if self.running(STUB) else "stopped"))
        if self.base_url:
            code, body = _http_get(self.base_url + "/healthz")
            lines.append("%-8s %s -> %s %s" % ("healthz", self.base_url + "/healthz",
                                               code or "no answer", body.strip()[:200]))
        return "\n".join(lines)

    # ---- programs -----------------------------------------------------------------------

    def _admin_checked(self, *args, input=None):
        r = self.admin(*args, input=input)
        with open(self.p("logs", "admin.log"), "a", encoding="utf-8") as f:
            f.write("$ keyrelay-admin %s -> %d\n%s%s" % (args[0], r.returncode, r.stdout,
                                                        r.stderr))
        if r.returncode != 0:
            raise StackError("keyrelay-admin %s failed (exit %d):\n%s%s"
                             % (args[0], r.returncode, r.stdout[-2000:], r.stderr[-4000:]))
        return r

    def admin(self, *args, input=None, timeout=T_ADMIN):
        """Runs keyrelay-admin --config DIR/keyrelay.conf ARGS; returns the CompletedProcess
        (text mode; not checked)."""
        if isinstance(input, (bytes, bytearray)):
            input = bytes(input).decode("utf-8")
        return subprocess.run(
            [str(self.bin_dir / "keyrelay-admin"), "--config", self.config, *map(str, args)],
            input=input, stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True, text=True, env=self._env(), timeout=timeout)

    def _mariadb_argv(self):
        user = pwd.getpwuid(os.getuid()).pw_name
        return [_tool("mariadb"), "--no-defaults", "--protocol=socket",
                "--socket=" + self.mariadb_socket, "--user=" + user,
                "--default-character-set=utf8mb4", "--batch"]

    def session(self):
        """A SqlSession of its own on the database (as its superuser), kept open until
        closed: for holding a transaction or a lock while something else runs."""
        return SqlSession(self._mariadb_argv() + ["--database=" + self.db_name,
                                                  "--skip-column-names"])

    def _mariadb_client(self, sql, database=None, xml=False, timeout=60):
        argv = self._mariadb_argv()
        if database:
            argv.append("--database=" + database)
        if xml:
            argv.append("--xml")
        r = subprocess.run(argv, input=sql.encode("utf-8"), capture_output=True,
                           timeout=timeout)
        if r.returncode != 0:
            raise StackError("mariadb: %s" % r.stderr.decode("utf-8", "replace").strip())
        return r.stdout.decode("utf-8", "replace")

    def sql(self, query, *params):
        """Runs SQL (as the database's superuser, on the unix socket, database keyrelay) and
        returns the rows of its result sets as tuples of str or None. Placeholders: `?` or
        `%s`; parameters are escaped. Binary columns: select HEX(col)."""
        out = self._mariadb_client(bind_sql(query, params) + "\n", database=self.db_name,
                                   xml=True)
        return _parse_xml_results(out)

    # ---- MariaDB ------------------------------------------------------------------------

    def _install_mariadb(self):
        datadir = self.p("mariadb")
        if datadir.exists():
            shutil.rmtree(datadir)
        user = pwd.getpwuid(os.getuid()).pw_name
        argv = [_tool("mariadb-install-db"), "--no-defaults", "--datadir=" + str(datadir),
                "--tmpdir=" + self._mariadb_tmpdir(),
                "--auth-root-authentication-method=socket", "--auth-root-socket-user=" + user,
                "--skip-test-db", "--skip-name-resolve"]
        if os.getuid() == 0:
            argv.append("--user=root")
        # A second try on a fresh directory: one failed installation (see _mariadb_tmpdir)
        # must not fail a whole test run; one that fails twice is a real problem.
        for attempt in (1, 2):
            with open(self.p("logs", "mariadb-install.log"), "ab") as log:
                # A session of its own: on a timeout its mariadbd --bootstrap child goes too,
                # so it cannot hold the data directory during the second try.
                p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     start_new_session=True)
                try:
                    status = "exit %d" % p.wait(timeout=180)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
                    status = "no end after 180 s"
            if status == "exit 0":
                return
            if attempt == 1:
                _log("mariadb-install-db failed (%s), trying once more; its log: %s"
                     % (status, self.p("logs", "mariadb-install.log")))
                shutil.rmtree(datadir, ignore_errors=True)
        raise StackError("mariadb-install-db failed twice (%s)\n%s"
                         % (status, _tail(self.p("logs", "mariadb-install.log"))))

    def _mariadb_tmpdir(self):
        """A temporary directory of this stack's own, for installing and running MariaDB.
        With the shared /tmp, one CI run's installation failed: MariaDB found one of its
        temporary table files gone ("Error on delete of '/tmp/#sql-temptable-...'") while
        other tests were installing their own MariaDB at the same time."""
        tmp = self.p("mariadb-tmp")
        tmp.mkdir(mode=0o700, exist_ok=True)
        return str(tmp)

    def start_mariadb(self):
        st = self.state
        if self.running("mariadb"):
            return
        # The port may change only while no program has it in its configuration yet (a new
        # test stack; the local stack with its programs stopped: _up rewrites the config).
        may_move = (not (self.running("fcgi") or self.running("runner"))
                    and (st["mode"] == "local" or not st["db_created"]))
        log = self.p("logs", "mariadb.log")
        for attempt in range(3):
            if st["mariadb_port"] is None or (
                    may_move and (attempt > 0 or not _port_free(st["mariadb_port"]))):
                st["mariadb_port"] = free_port()
            # The settings a server installs (deploy/mariadb/keyrelay.cnf), and nothing else
            # from the machine's MariaDB configuration.
            argv = [_tool("mariadbd"),
                    "--defaults-file=" + str(REPO / "deploy" / "mariadb" / "keyrelay.cnf"),
                    "--datadir=" + str(self.p("mariadb")),
                    "--tmpdir=" + self._mariadb_tmpdir(),
                    "--socket=" + self.mariadb_socket,
                    "--port=%d" % st["mariadb_port"],
                    "--bind-address=127.0.0.1",
                    "--pid-file=" + str(self.p("mariadb", "mariadbd.pid")),
                    "--log-error=" + str(log),
                    "--character-set-server=utf8mb4",
                    "--collation-server=utf8mb4_unicode_ci",
                    "--skip-name-resolve",
                    "--max-connections=1000"]
            if os.getuid() == 0:
                argv.append("--user=root")
            offset = _size(log)
            self._spawn("mariadb", argv, log, env=_plain_env())
            try:
                self._wait(lambda: _unix_listening(self.mariadb_socket), "mariadb", T_MARIADB,
                           "MariaDB to listen on " + self.mariadb_socket)
                self._save()
                return
            except StackError:
                self._stop("mariadb")
                if "Address already in use" in _read_from(log, offset) and may_move and attempt < 2:
                    _log("MariaDB port %d taken, retrying with another" % st["mariadb_port"])
                    continue
                raise

    def stop_mariadb(self):
        return self._stop("mariadb")

    def _create_database(self):
        pw = self.state["db_password"]
        assert re.fullmatch(r"[A-Za-z0-9]+", pw)
        stmts = ["CREATE DATABASE IF NOT EXISTS `%s` CHARACTER SET utf8mb4 "
                 "COLLATE utf8mb4_unicode_ci;" % DB_NAME]
        for host in ("localhost", "127.0.0.1"):
            stmts.append("CREATE USER IF NOT EXISTS '%s'@'%s' IDENTIFIED BY '%s';"
                         % (DB_USER, host, pw))
            stmts.append("GRANT ALL PRIVILEGES ON `%s`.* TO '%s'@'%s';" % (DB_NAME, DB_USER, host))
        self._mariadb_client("\n".join(stmts) + "\n")

    # ---- services -----------------------------------------------------------------------

    def start_service(self, name):
        """Starts one of mariadb|fcgi|runner|nginx (no-op when it runs) and waits until it
        is ready (listening sockets; the runner: still alive after a moment)."""
        if name == "mariadb":
            return self.start_mariadb()
        if name == STUB:
            return self.start_stub()
        if name not in SERVICES:
            raise ValueError("unknown service %r (mariadb|fcgi|runner|nginx|stub)" % name)
        if self.running(name):
            return
        if name == "nginx":
            return self._start_nginx()
        prog = "keyrelay-" + name
        log = self.p("logs", name + ".log")
        self._spawn(name, [str(self.bin_dir / prog), "--config", self.config], log,
                    env=self._env())
        if name == "fcgi":
            self._wait(lambda: (_unix_listening(self.p("api.sock"))
                                and _unix_listening(self.p("events.sock"))),
                       name, T_FCGI, "keyrelay-fcgi to listen on api.sock and events.sock")
        else:
            time.sleep(0.3)
            if not self.running(name):
                raise StackError("%s exited right after starting\n%s" % (prog, _tail(log)))

    def service_pid(self, name):
        """Pid of a running service (mariadb|fcgi|runner|nginx|stub, or "runner-<name>" of
        start_runner), else None."""
        rec = _Stopper.read(self.p("run", name + ".pid"))
        return rec[0] if rec is not None and self.running(name) else None

    def start_runner(self, name, env=None):
        """Starts one more keyrelay-runner on this stack (see the module docstring) and
        answers its ExtraRunner handle. name: [a-z0-9-]{1,40}, not one that runs already."""
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,39}", name or ""):
            raise ValueError("runner name %r: use [a-z0-9-]{1,40}" % name)
        service = ExtraRunner.service(name)
        if self.running(service):
            raise StackError("runner %r runs already (pid %d)"
                             % (name, self.service_pid(service)))
        names = self.state.setdefault("extra_runners", [])
        if name not in names:
            names.append(name)
            self._save()
        run_env = self._env()
        base = (self.state.get("config_extra") or {}).get("runner.name") or (
            "%s-%s" % ("test" if self.state["mode"] == "test" else "local",
                       socket.gethostname()))
        run_env["KEYRELAY_RUNNER_NAME"] = "%s-%s" % (base, name)
        run_env.update(env or {})
        log = self.p("logs", service + ".log")
        self._spawn(service, [str(self.bin_dir / "keyrelay-runner"), "--config", self.config],
                    log, env=run_env)
        time.sleep(0.3)
        if not self.running(service):
            raise StackError("keyrelay-runner %r exited right after starting\n%s"
                             % (name, _tail(log)))
        return ExtraRunner(self, name, self._children[service], log)

    def stop_service(self, name):
        if name == STUB:
            return self.stop_stub()
        if name not in SERVICES:
            raise ValueError("unknown service %r (mariadb|fcgi|runner|nginx|stub)" % name)
        return self._stop(name)

    # ---- stub AI provider (test stacks) -------------------------------------------------

    def start_stub(self):
        """Starts the stub provider in DIR/stub (no-op when it runs). The first start takes a
        free port; a restart takes the same one, since the programs' URLs name it."""
        st = self.state
        if not st.get("stub_dir"):
            raise StackError("%s: this stack has no stub provider (a local stack)" % self.dir)
        if self.running(STUB):
            return
        stubctl = _stubctl()
        extra = () if st.get("stub_port") is None else ("--port", str(st["stub_port"]))
        try:
            stub = stubctl.Stub.start(st["stub_dir"], detach=True, timeout=T_STUB,
                                      extra_args=extra)
        except stubctl.StubError as e:
            raise StackError("stub provider: %s\n%s"
                             % (e, _tail(Path(st["stub_dir"], "stub.log")))) from None
        start = None
        for _ in range(100):
            start = _proc_start_time(stub.proc.pid)
            if start is not None or stub.proc.poll() is not None:
                break
            time.sleep(0.01)
        self._children[STUB] = stub.proc
        if start is not None:
            _Stopper.write(self.p("run", STUB + ".pid"), stub.proc.pid, start)
        st["stub_port"] = stub.port
        st["stub_urls"] = stub.base_urls()
        self._stub = None
        self._save()

    def stop_stub(self):
        """Stops the stub provider (idempotent). Returns problems, like down()."""
        problems = self._stop(STUB)
        if self.state.get("stub_dir"):
            try:
                os.unlink(Path(self.state["stub_dir"], "stub.pid"))
            except OSError:
                pass
        return problems

    def running(self, name):
        rec = _Stopper.read(self.p("run", name + ".pid"))
        if rec is None:
            return False
        child = self._children.get(name)
        if child is not None and child.pid == rec[0] and child.poll() is not None:
            return False
        return _proc_start_time(rec[0]) == rec[1]

    def _spawn(self, name, argv, log, env):
        with open(log, "ab") as logf:
            logf.write(("---- %s starting %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"),
                                                   argv[0])).encode())
            logf.flush()
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf,
                                    stderr=subprocess.STDOUT, env=env, cwd=str(self.dir),
                                    start_new_session=True, close_fds=True)
        start = None
        for _ in range(100):
            start = _proc_start_time(proc.pid)
            if start is not None or proc.poll() is not None:
                break
            time.sleep(0.01)
        self._children[name] = proc
        if start is not None:
            _Stopper.write(self.p("run", name + ".pid"), proc.pid, start)

    def _wait(self, ready, name, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            if not self.running(name):
                raise StackError("%s exited while waiting for %s\n%s"
                                 % (name, what, self._service_tails(name)))
            time.sleep(0.1)
        raise StackError("timed out after %d s waiting for %s\n%s"
                         % (timeout, what, self._service_tails(name)))

    def _service_tails(self, name):
        logs = {"nginx": ["nginx.log", "nginx-error.log"], "mariadb": ["mariadb.log"]}
        return "\n".join(_tail(self.p("logs", f)) for f in logs.get(name, [name + ".log"]))

    def _stop(self, name):
        child = self._children.pop(name, None)
        return _Stopper.stop(self.p("run", name + ".pid"), name, child)

    # ---- nginx --------------------------------------------------------------------------

    def _render_nginx(self):
        st = self.state
        site = (NGINX_TEMPLATES / "keyrelay-site.conf.in").read_text()
        repl = {
            "@LISTEN@": "127.0.0.1:%d" % st["http_port"],
            "@SERVER_NAME@": "localhost",
            "@STATIC_ROOT@": str(REPO / "static"),
            "@API_SOCKET@": str(self.p("api.sock")),
            "@EVENTS_SOCKET@": str(self.p("events.sock")),
        }
        for k, v in repl.items():
            site = site.replace(k, v)
        main = (NGINX_TEMPLATES / "nginx-local.conf.in").read_text()
        repl = {
            "@USER_DIRECTIVE@": "user root;" if os.getuid() == 0 else "",
            "@RUN_DIR@": str(self.p("nginx")),
            "@LOG_DIR@": str(self.p("logs")),
            "@TEMP_DIR@": str(self.p("nginx", "temp")),
            "@SITE_CONF@": str(self.p("nginx", "keyrelay-site.conf")),
        }
        for k, v in repl.items():
            main = main.replace(k, v)
        for text, fname in ((site, "keyrelay-site.conf"), (main, "nginx.conf")):
            left = re.findall(r"@[A-Z_]+@", text)
            if left:
                raise StackError("nginx template %s: unknown placeholders %s" % (fname, left))
            self.p("nginx", fname).write_text(text)

    def _start_nginx(self):
        st = self.state
        for attempt in range(3):
            if st["http_port"] is None or (st["mode"] == "test" and attempt > 0):
                st["http_port"] = free_port()
            st["base_url"] = "http://127.0.0.1:%d" % st["http_port"]
            if st["mode"] == "local" and not _port_free(st["http_port"]):
                # Another program there would answer in nginx's place (even /healthz).
                raise StackError("port %d is in use: stop what listens there or choose "
                                 "another (KEYRELAY_HTTP_PORT)" % st["http_port"])
            self._render_nginx()
            self._save()
            argv = [_tool("nginx"), "-p", str(self.p("nginx")), "-e", str(self.p("logs", "nginx-error.log")),
                    "-c", str(self.p("nginx", "nginx.conf"))]
            t = subprocess.run(argv + ["-t", "-q"], capture_output=True, text=True)
            if t.returncode != 0:
                raise StackError("nginx configuration test failed:\n%s%s" % (t.stdout, t.stderr))
            log = self.p("logs", "nginx.log")
            offset = (_size(log), _size(self.p("logs", "nginx-error.log")))
            self._spawn("nginx", argv, log, env=_plain_env())
            try:
                self._wait(lambda: _tcp_listening(st["http_port"]), "nginx", T_NGINX,
                           "nginx to listen on 127.0.0.1:%d" % st["http_port"])
                return
            except StackError:
                self._stop("nginx")
                new = _read_from(log, offset[0]) + _read_from(self.p("logs", "nginx-error.log"),
                                                               offset[1])
                if "Address already in use" not in new:
                    raise
                if st["mode"] == "test" and attempt < 2:
                    continue
                raise StackError("port %d is in use: stop what listens there or choose "
                                 "another (KEYRELAY_HTTP_PORT)" % st["http_port"]) from None


class ExtraRunner:
    """A keyrelay-runner started by Stack.start_runner (a child of this process)."""

    def __init__(self, stack, name, proc, log):
        self.stack = stack
        self.name = name
        self.proc = proc
        self.log = Path(log)

    @staticmethod
    def service(name):
        return "runner-" + name

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc.poll() is None

    def kill(self, sig=signal.SIGTERM):
        """Sends sig to the runner (not to a process group); no-op once it has exited."""
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout=None):
        """Its exit status (negative: killed by that signal), or None if it still runs
        after timeout seconds."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        """SIGTERM, wait, SIGKILL after T_STOP s (like stop_service). Returns problems."""
        return self.stack._stop(self.service(self.name)) if self.running() else []

    def log_text(self):
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def __repr__(self):
        return "<ExtraRunner %s pid %d>" % (self.name, self.proc.pid)


class _Stopper:
    """Pid records DIR/run/NAME.pid ("pid starttime") and stopping by them."""

    @staticmethod
    def write(path, pid, start):
        Path(path).write_text("%d %s\n" % (pid, start))

    @staticmethod
    def read(path):
        try:
            pid, start = Path(path).read_text().split()
            return int(pid), start
        except (OSError, ValueError):
            return None

    @staticmethod
    def stop(path, name, child=None, timeout=T_STOP):
        """SIGTERM to the process group, wait, SIGKILL after timeout. Returns problems."""
        rec = _Stopper.read(path)
        problems = []
        if rec is not None and _proc_start_time(rec[0]) == rec[1]:
            pid = rec[0]
            _Stopper._signal(pid, signal.SIGTERM)
            if not _Stopper._wait_gone(pid, rec[1], child, timeout):
                problems.append("%s (pid %d) did not stop within %d s of SIGTERM: killed"
                                % (name, pid, timeout))
                _Stopper._signal(pid, signal.SIGKILL)
                _Stopper._wait_gone(pid, rec[1], child, 10)
            elif child is not None:
                # _wait_gone may see the zombie before child.poll() reaped it: reap it now,
                # so that its exit status is known (returncode None is not a status).
                try:
                    status = child.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    status = None
                if status is not None and status != 0:
                    problems.append("%s (pid %d) exited with status %d after SIGTERM"
                                    % (name, pid, status))
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return problems

    @staticmethod
    def _signal(pid, sig):
        try:
            os.killpg(pid, sig)  # started with its own session: pgid == pid
        except OSError:
            try:
                os.kill(pid, sig)
            except OSError:
                pass

    @staticmethod
    def _wait_gone(pid, start, child, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if child is not None:
                if child.poll() is not None:
                    return True
            else:
                try:  # a child of ours that another Stack object started: reap it
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
            if _proc_start_time(pid) != start:
                return True
            time.sleep(0.05)
        return False

    @staticmethod
    def stop_all_in(dir):
        for pidfile in Path(dir, "run").glob("*.pid"):
            _Stopper.stop(pidfile, pidfile.stem)


def _resolve_bin_dir(bin_dir):
    bin_dir = bin_dir or os.environ.get("KEYRELAY_BIN_DIR")
    if not bin_dir:
        for cand in ("build-test", "build"):
            if (REPO / cand / "fcgi" / "keyrelay-fcgi").exists():
                bin_dir = REPO / cand / "fcgi"
                break
    if not bin_dir:
        raise StackError("KEYRELAY_BIN_DIR is not set (the build directory's fcgi/ folder "
                         "with keyrelay-fcgi, keyrelay-runner and keyrelay-admin)")
    return Path(bin_dir).resolve()


# ------------------------------------------------------------------------------------------
# command line

def _cmd_up(args):
    s = Stack._fresh(args.dir, mode="test", bin_dir=args.bin_dir)
    try:
        s._up()
    except BaseException as e:
        _log("up failed: %s" % e)
        for p in s.down():
            _log(p)
        return 1
    print("stack up: %s (dir %s, admin %s, secrets in %s)"
          % (s.base_url, s.dir, s.admin_email, s.p("stack.json")))
    return 0


def _cmd_down(args):
    dir = Path(args.dir)
    if not dir.exists():
        return 0
    try:
        s = Stack.load(dir)
    except StackError:
        _Stopper.stop_all_in(dir)
        return 0
    problems = s.down()
    for p in problems:
        _log(p)
    print("stack down: %s%s" % (s.dir, " (%d problems)" % len(problems) if problems else ""))
    return 1 if problems else 0


def _cmd_status(args):
    try:
        s = Stack.load(args.dir)
    except StackError as e:
        print(e)
        return 1
    print(s.status())
    return 0


def _cmd_local_up(args):
    dir = Path(args.dir).resolve()
    if (dir / "stack.json").exists():
        s = Stack.load(dir)
        s.state["bin_dir"] = str(Path(args.bin_dir).resolve())
        s._make_dirs()
    else:
        s = Stack._fresh(dir, mode="local", bin_dir=args.bin_dir, port=args.port)
    if args.port and args.port != s.state["http_port"]:
        if s.running("nginx"):
            _log("nginx already runs on port %s; `down` first to change the port"
                 % s.state["http_port"])
        else:
            s.state["http_port"] = args.port
    def show_login(email, password):
        print("Created the first instance admin (the workspace `default` will be theirs).")
        print("  login:    %s" % email)
        if os.environ.get("KEYRELAY_ADMIN_PASSWORD"):
            print("  password: (the one in KEYRELAY_ADMIN_PASSWORD)")
        else:
            print("  password: %s" % password)
            print("  (shown this once and stored nowhere; lost it? `deploy/local.sh down`, "
                  "remove var/ and `up` again)")
        sys.stdout.flush()
    try:
        s._up(on_admin=show_login)
    except StackError as e:
        _log("up failed: %s" % e)
        _log("what is running stays running; `deploy/local.sh down` stops it")
        return 1
    print("keyrelay is up: %s (data in %s)" % (s.base_url, s.dir))
    return 0


def _cmd_local_down(args):
    dir = Path(args.dir)
    if not (dir / "stack.json").exists():
        if dir.exists():
            _Stopper.stop_all_in(dir)
        print("nothing to stop")
        return 0
    s = Stack.load(dir)
    for p in s.down():
        _log(p)
    print("stopped (data kept in %s)" % s.dir)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="krstack.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("up", help="start a fresh throwaway stack in DIR")
    p.add_argument("dir")
    p.add_argument("--bin-dir", help="default: $KEYRELAY_BIN_DIR")
    p.set_defaults(fn=_cmd_up)
    p = sub.add_parser("down", help="stop the stack in DIR (idempotent)")
    p.add_argument("dir")
    p.set_defaults(fn=_cmd_down)
    p = sub.add_parser("status", help="what runs in DIR")
    p.add_argument("dir")
    p.set_defaults(fn=_cmd_status)
    p = sub.add_parser("local-up", help="start (and create once) the persistent local stack")
    p.add_argument("dir")
    p.add_argument("--bin-dir", required=True)
    p.add_argument("--port", type=int, default=8080)
    p.set_defaults(fn=_cmd_local_up)
    p = sub.add_parser("local-down", help="stop the local stack, keeping its data")
    p.add_argument("dir")
    p.set_defaults(fn=_cmd_local_down)
    p = sub.add_parser("local-status", help="what of the local stack runs")
    p.add_argument("dir")
    p.set_defaults(fn=_cmd_status)
    args = ap.parse_args(argv)
    try:
        return args.fn(args)
    except StackError as e:
        _log(str(e))
        return 1


if __name__ == "__main__":
    sys.exit(main())
