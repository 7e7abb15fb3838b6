#!/usr/bin/env python3
"""Drive the stub AI provider (tests/stub/stub_provider.py) from tests. Standard library only.

    from stubctl import Stub
    stub = Stub.start(tmpdir)                 # own process; port in tmpdir/stub.port,
                                              # its log (method, path, status) in tmpdir/stub.log
    stub.base_url("anthropic")                # http://127.0.0.1:P/anthropic
    stub.set_key("sk-test-1", "rate", retry_after=3, times=1)
    ... point keyrelay at stub.base_url(provider) ...
    stub.requests(provider="openai")          # what the stub saw, in order
    stub.clear()                              # forget keys and requests
    stub.stop()                               # SIGTERM; returns the exit status (0)

`with Stub.start(tmpdir) as stub:` stops it at the end of the block.

Command line (for shell scripts and ctest fixtures; the stub keeps running after `up`):
    stubctl.py up DIR [--quiet]   start a stub in DIR, print `PROVIDER URL` lines
    stubctl.py down DIR           stop it (exit 1 when it had to be killed)
    stubctl.py urls DIR           print the base URLs of a running stub
    stubctl.py set-key DIR KEY MODE [--text T] [--delay-ms N] [--retry-after S] [--times N]
    stubctl.py requests DIR       print the request log (JSON)
    stubctl.py clear DIR
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
STUB_PY = os.path.join(HERE, "stub_provider.py")

# provider id -> path of its base URL on the stub
BASE_PATHS = {
    "anthropic": "/anthropic",
    "openai": "/openai/v1",
    "google": "/gemini/v1beta",
    "zai": "/zai/api/paas/v4",
    "moonshot": "/moonshot/v1",
    "openai_compatible": "/compat/v1",
}
PROVIDERS = tuple(BASE_PATHS)
MODES = ("ok", "auth", "forbidden", "quota", "rate", "overloaded", "server_error", "bad_request",
         "delay", "cutoff", "oversized", "redirect", "echo_key")
# Python-style keyword -> the control API's field
KW_FIELDS = {"text": "text", "delay_ms": "delayMs", "delayMs": "delayMs",
             "retry_after": "retryAfter", "retryAfter": "retryAfter", "times": "times"}

# Never through a proxy: the stub is on loopback.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class StubError(Exception):
    pass


class Stub:
    def __init__(self, port, proc=None, directory=None):
        self.port = port
        self.proc = proc
        self.dir = directory
        self.url = "http://127.0.0.1:%d" % port

    # ---- lifecycle

    @classmethod
    def start(cls, tmpdir, quiet=False, timeout=15.0, detach=False, extra_args=()):
        """Start a stub whose files (stub.port, stub.log, stub.pid) live in tmpdir; wait until
        it answers /_stub/health. detach: a session of its own (outlives the caller)."""
        os.makedirs(tmpdir, exist_ok=True)
        port_file = os.path.join(tmpdir, "stub.port")
        try:
            os.unlink(port_file)
        except FileNotFoundError:
            pass
        args = [sys.executable, "-B", STUB_PY, "--port", "0", "--port-file", port_file]
        if quiet:
            args.append("--quiet")
        args.extend(extra_args)
        with open(os.path.join(tmpdir, "stub.log"), "ab") as log:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=detach, close_fds=True)
        with open(os.path.join(tmpdir, "stub.pid"), "w") as f:
            f.write("%d\n" % proc.pid)
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise StubError("stub_provider exited with %s; see %s"
                                % (proc.returncode, os.path.join(tmpdir, "stub.log")))
            port = _read_port(port_file)
            if port:
                stub = cls(port, proc, tmpdir)
                if stub.healthy():
                    return stub
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise StubError("stub_provider did not start within %.0f s" % timeout)
            time.sleep(0.02)

    @classmethod
    def attach(cls, tmpdir):
        """A Stub for one already running with its files in tmpdir (stubctl.py up)."""
        port = _read_port(os.path.join(tmpdir, "stub.port"))
        if not port:
            raise StubError("no stub running in %s" % tmpdir)
        return cls(port, None, tmpdir)

    def stop(self, timeout=10.0):
        """SIGTERM, wait; kill after timeout. Returns the exit status (0 on a clean stop,
        -9 when it had to be killed, None when it was not ours and no pid file was found)."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self._forget_pid()
            return self.proc.returncode
        pid = self._pid()
        if pid is None:
            return None
        status = _stop_pid(pid, timeout)
        self._forget_pid()
        return status

    def _pid(self):
        try:
            with open(os.path.join(self.dir, "stub.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError, TypeError):
            return None

    def _forget_pid(self):
        if self.dir:
            try:
                os.unlink(os.path.join(self.dir, "stub.pid"))
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def log_text(self):
        """The stub's own stderr log (one `METHOD /path STATUS` line per request)."""
        try:
            with open(os.path.join(self.dir, "stub.log"), encoding="utf-8",
                      errors="replace") as f:
                return f.read()
        except (OSError, TypeError):
            return ""

    # ---- URLs

    def base_url(self, provider):
        if provider not in BASE_PATHS:
            raise KeyError("unknown provider %r (one of %s)" % (provider, ", ".join(PROVIDERS)))
        return self.url + BASE_PATHS[provider]

    def base_urls(self):
        return {p: self.base_url(p) for p in PROVIDERS}

    # ---- control API

    def healthy(self):
        try:
            status, _ = self._call("GET", "/_stub/health", timeout=2)
            return status == 200
        except (OSError, StubError):
            return False

    def set_key(self, key, mode="ok", **kw):
        """Tell the stub how to answer calls with key: mode (see MODES) and optional
        text, delay_ms, retry_after (seconds), times (the next N calls, then "ok")."""
        spec = {"key": key, "mode": mode}
        for name, value in kw.items():
            if name not in KW_FIELDS:
                raise TypeError("set_key: unknown option %r" % name)
            if value is not None:
                spec[KW_FIELDS[name]] = value
        status, body = self._call("POST", "/_stub/keys", spec)
        if status != 200:
            raise StubError("set_key: %s %s" % (status, body))

    def clear_keys(self):
        self._call("DELETE", "/_stub/keys")

    def clear_requests(self):
        self._call("DELETE", "/_stub/requests")

    def clear(self):
        """Forget every key mode and every logged request."""
        self.clear_keys()
        self.clear_requests()

    def requests(self, provider=None):
        """Requests the stub saw, oldest first: dicts with provider, method, path (with query),
        headers (lower-case names), body (parsed JSON, text or None), status, time."""
        status, body = self._call("GET", "/_stub/requests")
        if status != 200:
            raise StubError("requests: %s" % status)
        reqs = body["requests"]
        if provider is not None:
            reqs = [r for r in reqs if r["provider"] == provider]
        return reqs

    def _call(self, method, path, obj=None, timeout=10):
        data = None if obj is None else json.dumps(obj).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with _OPENER.open(req, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw.decode("utf-8", "replace")


def _read_port(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _alive(pid):
    """True while pid runs (a zombie waiting for a reaper other than us counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _stop_pid(pid, timeout):
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:  # reap it when it is our child
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return 0
        except ChildProcessError:
            pass
        if not _alive(pid):
            return 0
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return 0
    return -9


def _cli(argv=None):
    ap = argparse.ArgumentParser(description="Control the keyrelay stub AI provider.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up")
    up.add_argument("dir")
    up.add_argument("--quiet", action="store_true")
    for name in ("down", "urls", "requests", "clear"):
        sub.add_parser(name).add_argument("dir")
    sk = sub.add_parser("set-key")
    sk.add_argument("dir")
    sk.add_argument("key")
    sk.add_argument("mode", choices=MODES)
    sk.add_argument("--text")
    sk.add_argument("--delay-ms", type=int)
    sk.add_argument("--retry-after", type=float)
    sk.add_argument("--times", type=int)
    a = ap.parse_args(argv)

    if a.cmd == "up":
        stub = Stub.start(a.dir, quiet=a.quiet, detach=True)
        for p, u in stub.base_urls().items():
            print(p, u)
        return 0
    stub = Stub.attach(a.dir) if a.cmd != "down" else None
    if a.cmd == "down":
        try:
            stub = Stub.attach(a.dir)
        except StubError:
            stub = Stub(0, None, a.dir)
        status = stub.stop()
        return 0 if status in (0, None) else 1
    if a.cmd == "urls":
        for p, u in stub.base_urls().items():
            print(p, u)
    elif a.cmd == "set-key":
        stub.set_key(a.key, a.mode, text=a.text, delay_ms=a.delay_ms,
                     retry_after=a.retry_after, times=a.times)
    elif a.cmd == "requests":
        json.dump(stub.requests(), sys.stdout, indent=1)
        print()
    elif a.cmd == "clear":
        stub.clear()
    return 0


if __name__ == "__main__":
    sys.exit(_cli())
