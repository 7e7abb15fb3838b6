#!/usr/bin/env python3
"""MariaDB outage: with the database stopped the API answers 503 unavailable (never 502: the
FastCGI process must not crash), /healthz 503; after the database is back the same request
answers 200 with the same data within 30 s, served by the same keyrelay-fcgi process.

Starts a private stack of its own (krstack.Stack.start) so the shared stack is not disturbed;
needs KEYRELAY_BIN_DIR like krstack.py itself.
"""
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import krstack  # noqa: E402
from krclient import (CheckError, Client, admin_client, create_workspace, eq,  # noqa: E402
                      expect, expect_error, parse_prometheus, run, true)

RECOVERY_SECONDS = 30
REQUEST_SECONDS = 15          # an answer while the database is down must not hang longer
DOWN_REQUESTS = 5
BURST = 64                    # requests after recovery (fcgi.threads defaults to 16)
BURST_WORKERS = 24
SETTLE_SECONDS = 1.5          # past keyrelay's reconnect back-off of one attempt a second
DB_ERROR_RE = re.compile(r"(db|database|mariadb|mysql|sql).*(error|fail)", re.I)
KRSTACK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib", "krstack.py")


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def fcgi_pids(stack_dir):
    """Pids of keyrelay-fcgi processes belonging to the stack in stack_dir."""
    stack_dir = os.path.realpath(stack_dir).encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        cmd = _read("/proc/%s/cmdline" % entry).split(b"\0")
        if not cmd or not os.path.basename(cmd[0]).startswith(b"keyrelay-fcgi"):
            continue
        if stack_dir in b" ".join(cmd) or stack_dir in _read("/proc/%s/environ" % entry):
            pids.append(int(entry))
    return sorted(pids)


def _start_time(pid):
    stat = _read("/proc/%d/stat" % pid).decode(errors="replace")
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None


def fcgi_pid(s):
    """(pid, start time) of the stack's running keyrelay-fcgi: from DIR/run/fcgi.pid
    ("pid starttime", written by krstack), checked against /proc."""
    pids = fcgi_pids(s.dir)
    rec = _read(os.path.join(str(s.dir), "run", "fcgi.pid")).split()
    if len(rec) >= 1:
        pid = int(rec[0])
        if pid not in pids:
            raise CheckError("run/fcgi.pid names %d, but the running keyrelay-fcgi of the stack "
                             "are %r" % (pid, pids))
    elif len(pids) == 1:
        pid = pids[0]
    else:
        raise CheckError("expected one keyrelay-fcgi process of %s, found %r" % (s.dir, pids))
    return pid, _start_time(pid)


def db_error_total(c):
    r = c.get("/metrics")
    expect(200, r, "GET /metrics")
    samples, _, _ = parse_prometheus(r.text)
    hits = [(n, v) for n, _, v in samples if DB_ERROR_RE.search(n)
            and not n.endswith(("_bucket", "_sum", "_count"))]
    if not hits:
        raise CheckError("no database error counter in /metrics")
    return sum(v for _, v in hits)


def outage(t, s, c, expected, label):
    """One stop/start cycle of MariaDB with the checks around it."""
    pid_before = None
    with t("%s: keyrelay-fcgi pid known before the outage" % label):
        pid_before = fcgi_pid(s)

    with t("%s: MariaDB stops" % label):
        s.stop_mariadb()

    with t("%s: GET /api/workspaces while the database is down: 503 unavailable x%d, "
           "never 502, each within %d s" % (label, DOWN_REQUESTS, REQUEST_SECONDS)):
        seen = []
        for _ in range(DOWN_REQUESTS):
            r = c.get("/api/workspaces")
            seen.append((r.status, round(r.elapsed, 1)))
            if r.status == 502:
                raise CheckError("502 from nginx (fcgi gone?): %s; so far %r"
                                 % (r.describe(), seen))
            expect_error(r, 503, "unavailable")
            true(r.elapsed <= REQUEST_SECONDS, "answer took %.1f s" % r.elapsed)

    with t("%s: /healthz while the database is down: 503" % label):
        r = Client(s.base_url).get("/healthz")
        expect(503, r)
        true(r.is_json(), "Content-Type %r" % r.content_type)
        true(r.json != {"status": "ok", "db": "ok"}, "claims ok: %s" % r.describe())

    with t("%s: login while the database is down: 503 unavailable (not 401)" % label):
        r = Client(s.base_url).login(s.admin_email, s.admin_password)
        expect_error(r, 503, "unavailable")

    with t("%s: keyrelay-fcgi still runs (same pid) during the outage" % label):
        eq(fcgi_pid(s), pid_before, "fcgi pid")

    with t("%s: MariaDB starts again" % label):
        s.start_mariadb()

    with t("%s: with MariaDB back (and %.1f s to settle), %d concurrent GETs all answer 200 "
           "(stale connections are reconnected and retried, not answered 503)"
           % (label, SETTLE_SECONDS, BURST)):
        time.sleep(SETTLE_SECONDS)
        paths = ["/api/auth/me", "/api/workspaces"] * (BURST // 2)
        with concurrent.futures.ThreadPoolExecutor(max_workers=BURST_WORKERS) as pool:
            answers = list(pool.map(lambda p: c.clone().get(p), paths))
        bad = [a for a in answers if a.status != 200]
        if bad:
            raise CheckError("%d of %d answers not 200 although MariaDB is up again; first: %s"
                             % (len(bad), len(answers), bad[0].describe(300)))

    with t("%s: within %d s the same request answers 200 with the same data"
           % (label, RECOVERY_SECONDS)):
        deadline = time.monotonic() + RECOVERY_SECONDS
        history = []
        while True:
            r = c.get("/api/workspaces")
            history.append(r.status)
            if r.status == 200 or time.monotonic() > deadline:
                break
            if r.status == 502:
                raise CheckError("502 while recovering: %s" % r.describe())
            time.sleep(0.5)
        if r.status != 200:
            raise CheckError("no 200 within %d s; statuses %r; last %s"
                             % (RECOVERY_SECONDS, sorted(set(history)), r.describe()))
        eq(r.json, expected, "GET /api/workspaces after recovery")

    with t("%s: /healthz answers 200 ok again" % label):
        r = Client(s.base_url).get("/healthz")
        expect(200, r)
        eq(r.json, {"status": "ok", "db": "ok"}, "body")

    with t("%s: writes work again (POST /api/workspaces 201)" % label):
        ws = create_workspace(c)
        r = c.get("/api/workspaces")
        expect(200, r)
        true(any(w.get("slug") == ws["slug"] for w in r.json["workspaces"]), r.describe())
        expected["workspaces"] = r.json["workspaces"]

    with t("%s: the same keyrelay-fcgi process (pid and start time) served it all" % label):
        eq(fcgi_pid(s), pid_before, "fcgi pid")


def body(t):
    tmp = tempfile.mkdtemp(prefix="kr-dbrestart-")
    s = None
    try:
        with t.setup("setup: a private stack in %s" % tmp):
            s = krstack.Stack.start(tmp)

        with t.setup("setup: admin login, a workspace, baseline GET /api/workspaces"):
            c = admin_client(s)
            create_workspace(c, name="Survives the outage")
            r = c.get("/api/workspaces")
            expect(200, r)
            expected = r.json
            fcgi_pid(s)

        with t("baseline database error counter readable"):
            errors_before = db_error_total(c)

        outage(t, s, c, expected, "first outage")

        with t("the database error counter went up during the outage"):
            after = db_error_total(c)
            true(after > errors_before, "db error counter %g -> %g" % (errors_before, after))

        outage(t, s, c, expected, "second outage")

        with t("the session survived both outages: GET /api/auth/me 200"):
            expect(200, c.get("/api/auth/me"))

        with t("no sanitizer report or crash in the stack logs"):
            logs = s.log_text()
            for marker in ("AddressSanitizer", "runtime error:", "LeakSanitizer",
                           "Segmentation fault", "core dumped"):
                true(marker not in logs, "%r in the logs" % marker)
    finally:
        try:
            if s is not None:
                problems = s.down()
                t.check("private stack stops cleanly (no sanitizer report, nothing killed)",
                        not problems, " || ".join(str(x)[:1500] for x in problems or []))
            else:   # Stack.start failed part-way: stop whatever it started
                subprocess.run([sys.executable, KRSTACK, "down", tmp], check=False,
                               timeout=120)
        except Exception as exc:   # noqa: BLE001
            t.not_ok("stack down", repr(exc))
        if t.failed == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        else:   # keep the logs and config for inspection, not the 100 MB datadir
            shutil.rmtree(os.path.join(tmp, "mariadb"), ignore_errors=True)
            print("# logs of the private stack left in %s/logs" % tmp, flush=True)

if __name__ == "__main__":
    run("db_restart", body)
