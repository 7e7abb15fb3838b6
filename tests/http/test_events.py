#!/usr/bin/env python3
"""Server-sent events: GET /api/workspaces/{ws}/events (api.md "Events (server-sent events)").

The stream starts with `retry: 3000`; events written to the database reach open streams
within 2 s; Last-Event-ID (header) and ?lastEventId= resume with nothing missed and nothing
repeated; an id older than the retained events gives `event: resync`; a workspace's stream
never carries another's events; a revoked token, ended session or removed member ends the
stream; a comment arrives within 16 s; 50 streams on one workspace all get the same event
while the database statement rate stays that of one stream; a caller's and a workspace's
streams past events.streams_per_client and events.streams_per_workspace answer 429; SIGTERM
with open streams exits 0 within 10 s. The API socket refuses the route (400): streams
belong to the events socket.

Events are written the way kr_event_append writes them (the workspace's event_seq taken under
its row lock, then the row, in one transaction), so the test needs no job or settings code.

Runs against the shared stack ($KEYRELAY_TEST_STACK) and a private one (statement rates,
SIGTERM), started with krstack.Stack.start.
"""
import http.client
import json
import os
import re
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import krstack  # noqa: E402
from krclient import (CheckError, Client, add_member, admin_client, create_user,  # noqa: E402
                      create_workspace, eq, expect, expect_error, fcgi_request, run, true)

KRSTACK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib", "krstack.py")
DELIVERY_S = 2.0        # an event reaches an open stream within this
PING_S = 16.0           # a comment at least every 15 s
REVOKE_S = 70.0         # a revoked caller's stream ends within this (30 s re-checks)
STOP_S = 10.0           # SIGTERM with open streams: exit within this
MANY = 50
WS_CAP = MANY + 5       # the private stack's events.streams_per_workspace


# ---------------------------------------------------------------------------------------------
# An event stream client: http.client, one reader thread per stream feeding a queue.

class Stream:
    """One GET .../events. status, headers; lines [(monotonic time, line)]; events [dict]
    with id, event, data (parsed JSON when it is JSON), at; comments [(time, text)];
    ended once the server closed the stream."""

    def __init__(self, base_url, ws, cookies=None, bearer=None, last_event_id=None,
                 query=None, timeout=120.0, slash=False):
        u = urllib.parse.urlsplit(base_url)
        self.path = "/api/workspaces/%s/events%s" % (ws, "/" if slash else "")
        if query:
            self.path += "?" + urllib.parse.urlencode(query)
        hdrs = {"Accept": "text/event-stream"}
        if cookies:
            hdrs["Cookie"] = "; ".join("%s=%s" % kv for kv in cookies.items())
        if bearer:
            hdrs["Authorization"] = "Bearer " + bearer
        if last_event_id is not None:
            hdrs["Last-Event-ID"] = str(last_event_id)
        self.opened = time.monotonic()
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
        self.conn.request("GET", self.path, headers=hdrs)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = self.resp.headers
        self.lines, self.events, self.comments = [], [], []
        self.ended = None             # monotonic time of the end of the stream
        self.retry = None
        self.body = b""
        self._q = queue.Queue()
        self._ev = {}
        self._data = []
        if self.status == 200:
            threading.Thread(target=self._reader, daemon=True).start()
        else:
            self.body = self.resp.read()
            self.ended = time.monotonic()

    def _reader(self):
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    break
                self._q.put((time.monotonic(), line))
        except Exception:   # noqa: BLE001 - closed under our feet: the stream is over
            pass
        self._q.put((time.monotonic(), None))

    def _take(self, at, raw):
        if raw is None:
            self.ended = at
            return
        line = raw.decode("utf-8").rstrip("\r\n")
        self.lines.append((at, line))
        if line == "":
            if self._data:          # no data lines: nothing to dispatch (HTML standard)
                ev = dict(self._ev)
                text = "\n".join(self._data)
                try:
                    ev["data"] = json.loads(text)
                except ValueError:
                    ev["data"] = text
                ev["at"] = at
                self.events.append(ev)
            self._ev, self._data = {}, []
        elif line.startswith(":"):
            self.comments.append((at, line[1:].strip()))
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                self._data.append(value)
            elif name in ("id", "event"):
                self._ev[name] = value
            elif name == "retry":
                self.retry = value

    def pump(self, wait=0.0):
        """Take what has arrived, waiting up to wait seconds for the first line."""
        try:
            self._take(*self._q.get(timeout=wait) if wait > 0 else self._q.get_nowait())
            while True:
                self._take(*self._q.get_nowait())
        except queue.Empty:
            pass

    def wait_for(self, pred, timeout):
        """Pump until pred(self) is true or the stream ended; answers pred(self)."""
        deadline = time.monotonic() + timeout
        while True:
            self.pump()
            if pred(self) or self.ended is not None:
                return bool(pred(self))
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.pump(min(left, 0.2))

    def ids(self):
        return [int(e["id"]) for e in self.events if "id" in e and e.get("event") != "resync"]

    def has_id(self, seq):
        return lambda st: seq in st.ids()

    def close(self):
        try:
            if self.conn.sock is not None:
                self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.conn.close()


def wait_for_ok(open_stream, seconds):
    """open_stream() until a stream answers 200, for at most seconds: that stream, or
    None."""
    deadline = time.monotonic() + seconds
    while True:
        st = open_stream()
        if st.status == 200:
            return st
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)


def open_ok(what, *args, **kw):
    st = Stream(*args, **kw)
    if st.status != 200:
        raise CheckError("%s: expected HTTP 200, got %d %s" % (what, st.status, st.body[:300]))
    true(st.wait_for(lambda x: x.lines, 5), "%s: no first line within 5 s" % what)
    return st


# ---------------------------------------------------------------------------------------------
# Events written as kr_event_append writes them.

def ws_id(s, slug):
    rows = s.sql("SELECT id FROM workspaces WHERE slug = ?", slug)
    if len(rows) != 1:
        raise CheckError("workspace %s not found in the database" % slug)
    return rows[0][0]


def emit(s, wid, kind="settings_changed", count=1, marker=""):
    """Append count events to the workspace in one transaction; answers their ids."""
    rows = s.sql(
        "START TRANSACTION;"
        "SELECT event_seq INTO @base FROM workspaces WHERE id = ? FOR UPDATE;"
        "UPDATE workspaces SET event_seq = event_seq + ? WHERE id = ?;"
        "INSERT INTO events (workspace_id, seq, type, payload) "
        "SELECT ?, @base + seq, ?, CONCAT('{\"type\":\"', ?, '\",\"n\":', seq, "
        "',\"marker\":\"', ?, '\",\"at\":\"2026-01-01T00:00:00.000Z\"}') "
        "FROM seq_1_to_%d;"
        "COMMIT;"
        "SELECT @base;" % count, wid, count, wid, wid, kind, kind, marker)
    base = int(rows[-1][0])
    return list(range(base + 1, base + count + 1))


def latest(s, wid):
    return int(s.sql("SELECT event_seq FROM workspaces WHERE id = ?", wid)[0][0])


# ---------------------------------------------------------------------------------------------

def shared_checks(t, s):
    base = s.base_url
    with t.setup("setup: admin, workspaces A, B, C, tokens"):
        admin = admin_client(s)
        ws_a = create_workspace(admin)["slug"]
        ws_b = create_workspace(admin)["slug"]
        ws_c = create_workspace(admin)["slug"]
        id_a, id_b, id_c = ws_id(s, ws_a), ws_id(s, ws_b), ws_id(s, ws_c)

        def token(ws, role="viewer", name="sse"):
            r = admin.post("/api/workspaces/%s/tokens" % ws, json={"name": name, "role": role})
            expect(201, r, "create token in %s" % ws)
            return r.json["secret"], r.json["id"]
        tok_a, _ = token(ws_a)
        tok_b, _ = token(ws_b)

    with t("no credentials: 401 unauthorized"):
        st = Stream(base, ws_a)
        eq(st.status, 401, "status")
        expect_error(Client(base).get("/api/workspaces/%s/events" % ws_a), 401, "unauthorized")

    with t("B's token on A's stream: 404 not_found, like a missing workspace"):
        expect_error(Client(base, bearer=tok_b).get("/api/workspaces/%s/events" % ws_a),
                     404, "not_found")

    with t("a Last-Event-ID that is not a number: 422 field lastEventId"):
        r = Client(base, bearer=tok_a).get("/api/workspaces/%s/events" % ws_a,
                                           headers={"Last-Event-ID": "12abc"})
        expect_error(r, 422, "validation_failed", field="lastEventId")

    for what, raw in (("too long to read", "9" * 30), ("badly escaped", "%zz"),
                      ("not a number", "12abc")):
        with t("a ?lastEventId= %s: 422 field lastEventId (not a stream from now, which "
               "would hide what was missed)" % what):
            # a stream would never end: the read times out and fails the check
            r = Client(base, bearer=tok_a, timeout=10).get(
                "/api/workspaces/%s/events?lastEventId=%s" % (ws_a, raw))
            expect_error(r, 422, "validation_failed", field="lastEventId")

    with t("the API socket refuses the events route: 400 (streams are the events socket's)"):
        out = fcgi_request(s.p("api.sock"), {
            "REQUEST_METHOD": "GET", "REQUEST_URI": "/api/workspaces/%s/events" % ws_a,
            "HTTP_AUTHORIZATION": "Bearer " + tok_a, "HTTP_HOST": "localhost",
            "SERVER_PORT": "80", "REMOTE_ADDR": "127.0.0.1"})
        true(out.startswith("Status: 400"), "answer: %r" % out[:400])
        true("events socket" in out, "answer does not name the events socket: %r" % out[:400])

    streams = []
    try:
        with t("stream opens: 200 text/event-stream, no-store, first line `retry: 3000`"):
            sa = open_ok("A stream", base, ws_a, bearer=tok_a)
            streams.append(sa)
            true(sa.headers.get("Content-Type", "").startswith("text/event-stream"),
                 "Content-Type %r" % sa.headers.get("Content-Type"))
            eq(sa.headers.get("Cache-Control"), "no-store", "Cache-Control")
            eq(sa.lines[0][1], "retry: 3000", "first line")

        with t("a session (cookie) opens a stream too"):
            sc = open_ok("cookie stream", base, ws_a, cookies=admin.cookies)
            streams.append(sc)

        with t("`/events/` (a trailing slash, as the API's other routes allow) opens a "
               "stream too"):
            ss = open_ok("slash stream", base, ws_a, bearer=tok_a, slash=True)
            ss.close()
            eq(ss.lines[0][1], "retry: 3000", "first line")

        with t("B's stream opens"):
            sb = open_ok("B stream", base, ws_b, bearer=tok_b)
            streams.append(sb)

        with t("an event written to A reaches A's open streams within 2 s"):
            t0 = time.monotonic()
            (seq,) = emit(s, id_a, marker="A1")
            true(sa.wait_for(sa.has_id(seq), DELIVERY_S + 1),
                 "event %d not on A's stream; lines: %r" % (seq, sa.lines[-6:]))
            ev = [e for e in sa.events if e.get("id") == str(seq)][0]
            true(ev["at"] - t0 <= DELIVERY_S, "took %.2f s" % (ev["at"] - t0))
            eq(ev.get("event"), "settings_changed", "event:")
            eq(ev["data"].get("type"), "settings_changed", "data.type")
            eq(ev["data"].get("marker"), "A1", "data.marker")
            true(sc.wait_for(sc.has_id(seq), DELIVERY_S), "not on the cookie stream")
            print("# delivery latency %.0f ms" % ((ev["at"] - t0) * 1000), flush=True)

        with t("a stream without Last-Event-ID starts at the latest event (nothing older)"):
            eq([e for e in sa.events if int(e.get("id", 0)) < seq], [], "older events")

        with t("B's stream never carries A's events; B's own arrive with B's ids"):
            emit(s, id_a, count=3, marker="A2")
            (bseq,) = emit(s, id_b, marker="B1")
            true(sb.wait_for(sb.has_id(bseq), DELIVERY_S + 1), "B's event missing: %r"
                 % sb.lines[-6:])
            time.sleep(0.5)
            sb.pump()
            markers = [e["data"].get("marker") for e in sb.events if isinstance(e["data"], dict)]
            eq(markers, ["B1"], "markers on B's stream")
            true(all(not str(e["data"].get("marker", "")).startswith("B")
                     for e in sa.events if isinstance(e["data"], dict)), "B's event on A's stream")

        with t("ids on a stream increase by one with no repeats"):
            sa.wait_for(lambda x: len(x.ids()) >= 4, DELIVERY_S)
            ids = sa.ids()
            eq(ids, list(range(ids[0], ids[0] + len(ids))), "ids")

        with t("a real change: PUT providers puts settings_changed on A's stream within 2 s"):
            before = set(sa.ids())
            t0 = time.monotonic()
            expect(200, admin.put("/api/workspaces/%s/providers" % ws_a,
                                  json={"allowSystemKeys": False}))
            true(sa.wait_for(lambda x: any(e.get("event") == "settings_changed" and
                                           int(e["id"]) not in before for e in x.events),
                             DELIVERY_S + 1), "no settings_changed: %r" % sa.lines[-6:])
            ev = [e for e in sa.events if int(e["id"]) not in before][0]
            true(ev["at"] - t0 <= DELIVERY_S, "took %.2f s" % (ev["at"] - t0))
            eq(ev["data"].get("type"), "settings_changed", "data.type")
            true(isinstance(ev["data"].get("at"), str), "data.at: %r" % ev["data"])

        # -- resume ---------------------------------------------------------------------
        with t("resume with Last-Event-ID after a disconnect: 5 missed events, in order, once"):
            last_seen = sa.ids()[-1]
            sa.close()
            missed = [emit(s, id_a, marker="gap%d" % i)[0] for i in range(5)]
            sr = open_ok("resumed stream", base, ws_a, bearer=tok_a, last_event_id=last_seen)
            streams.append(sr)
            true(sr.wait_for(lambda x: len(x.ids()) >= 5, DELIVERY_S + 1), "got %r" % sr.ids())
            eq(sr.ids(), missed, "ids after resuming")
            (live,) = emit(s, id_a, marker="after-resume")
            true(sr.wait_for(sr.has_id(live), DELIVERY_S + 1), "live event after resume")
            time.sleep(0.5)
            sr.pump()
            eq(sr.ids(), missed + [live], "ids: catch-up then live, no gap, no repeat")

        with t("resume with ?lastEventId= works the same"):
            sq = open_ok("query stream", base, ws_a, bearer=tok_a,
                         query={"lastEventId": missed[1]})
            streams.append(sq)
            true(sq.wait_for(sq.has_id(live), DELIVERY_S + 1), "got %r" % sq.ids())
            eq(sq.ids(), missed[2:] + [live], "ids")

        with t("Last-Event-ID wins over ?lastEventId= (a browser reconnecting to the same URL)"):
            sh = open_ok("header+query stream", base, ws_a, bearer=tok_a,
                         query={"lastEventId": missed[0]}, last_event_id=missed[3])
            streams.append(sh)
            true(sh.wait_for(sh.has_id(live), DELIVERY_S + 1), "got %r" % sh.ids())
            eq(sh.ids(), [missed[4], live], "ids")

        with t("resume across 1,200 events (several catch-up pages, past the hub's ring)"):
            start = sr.ids()[-1]
            batch = emit(s, id_a, kind="job_queued", count=1200, marker="bulk")
            sbig = open_ok("bulk resume", base, ws_a, bearer=tok_a, last_event_id=start)
            streams.append(sbig)
            true(sbig.wait_for(sbig.has_id(batch[-1]), 15), "got %d events" % len(sbig.ids()))
            eq(sbig.ids(), batch, "ids")
            true(sr.wait_for(sr.has_id(batch[-1]), 15), "live stream: %d" % len(sr.ids()))
            eq(sr.ids(), missed + [live] + batch, "the live stream got all 1,200 once, in order")

        for st in streams:
            st.close()
        streams.clear()

        # -- resync ---------------------------------------------------------------------
        with t("an id older than the retained events: event resync with the latest id"):
            old = emit(s, id_c, count=10, marker="old")
            s.sql("DELETE FROM events WHERE workspace_id = ? AND seq <= ?", id_c, old[4])
            sy = open_ok("resync stream", base, ws_c, cookies=admin.cookies,
                         last_event_id=old[1])
            streams.append(sy)
            true(sy.wait_for(lambda x: x.events, DELIVERY_S), "no event: %r" % sy.lines)
            ev = sy.events[0]
            eq(ev.get("event"), "resync", "event:")
            data = dict(ev["data"])
            true(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", data.pop("at", "")),
                 "resync data has an RFC 3339 \"at\": %r" % ev["data"])
            eq(data, {"type": "resync", "lastEventId": old[-1]}, "data")
            (after,) = emit(s, id_c, marker="post-resync")
            true(sy.wait_for(sy.has_id(after), DELIVERY_S + 1), "no event after resync")
            eq(sy.ids(), [after], "only new events after the resync")

        with t("an id still retained right at the edge resumes without resync"):
            se = open_ok("edge stream", base, ws_c, cookies=admin.cookies,
                         last_event_id=old[4])
            streams.append(se)
            true(se.wait_for(se.has_id(after), DELIVERY_S + 1), "got %r" % se.lines)
            eq([e.get("event") for e in se.events].count("resync"), 0, "resync events")
            eq(se.ids(), old[5:] + [after], "ids")

        with t("an id from the future: resync with the latest id"):
            sf = open_ok("future stream", base, ws_c, cookies=admin.cookies,
                         last_event_id=after + 1000)
            streams.append(sf)
            true(sf.wait_for(lambda x: x.events, DELIVERY_S), "no event: %r" % sf.lines)
            eq(sf.events[0].get("event"), "resync", "event:")
            eq(sf.events[0]["data"].get("lastEventId"), after, "lastEventId")
    finally:
        for st in streams:
            st.close()
    return admin, ws_a, id_a


def revocation_checks(t, s, admin, ws_a, id_a):
    """Token revoked, session ended, member removed: each stream ends; meanwhile a quiet
    stream shows its heartbeat comments."""
    base = s.base_url
    streams = []
    try:
        with t.setup("setup: a token, a user session and a member's session on A; quiet Q"):
            r = admin.post("/api/workspaces/%s/tokens" % ws_a,
                           json={"name": "to revoke", "role": "viewer"})
            expect(201, r)
            sec, tid = r.json["secret"], r.json["id"]
            u1, e1, p1 = create_user(admin)
            u2, e2, p2 = create_user(admin)
            add_member(admin, ws_a, e1, "viewer")
            add_member(admin, ws_a, e2, "member")
            c1, c2 = Client(base), Client(base)
            expect(200, c1.login(e1, p1))
            expect(200, c2.login(e2, p2))
            ws_q = create_workspace(admin)["slug"]
            q = open_ok("quiet stream", base, ws_q, cookies=admin.cookies)
            st = open_ok("token stream", base, ws_a, bearer=sec)
            sl = open_ok("session stream", base, ws_a, cookies=c1.cookies)
            sm = open_ok("member stream", base, ws_a, cookies=c2.cookies)
            keep = open_ok("unrevoked stream", base, ws_a, bearer=None, cookies=admin.cookies)
            streams += [q, st, sl, sm, keep]

        with t("DELETE the token, log the user out, remove the member: 204s"):
            t0 = time.monotonic()
            expect(204, admin.delete("/api/workspaces/%s/tokens/%s" % (ws_a, tid)))
            expect((200, 204), c1.logout())
            expect(204, admin.delete("/api/workspaces/%s/members/%s" % (ws_a, u2["id"])))

        for name, x in (("revoked token", st), ("ended session", sl), ("removed member", sm)):
            with t("the %s's stream ends within %d s" % (name, REVOKE_S)):
                true(x.wait_for(lambda y: y.ended is not None, REVOKE_S - (time.monotonic() - t0)),
                     "still open after %.0f s" % (time.monotonic() - t0))
                print("# %s: stream ended %.1f s after the revocation, %.1f s after it opened"
                      % (name, x.ended - t0, x.ended - x.opened), flush=True)

        with t("no event reached the revoked streams after they ended"):
            (seq,) = emit(s, id_a, marker="after-revocation")
            true(keep.wait_for(keep.has_id(seq), DELIVERY_S + 1), "unrevoked stream missed it")
            for x in (st, sl, sm):
                true(seq not in x.ids(), "event on a revoked stream")

        with t("an unrevoked stream stays open through its re-check"):
            true(keep.ended is None, "ended")

        with t("a comment (`: ping`) within 16 s on a quiet stream, and again after"):
            q.wait_for(lambda y: len(y.comments) >= 2, 2 * PING_S + 1 - (time.monotonic() - q.opened))
            true(q.comments, "no comment in %.0f s: %r" % (time.monotonic() - q.opened, q.lines))
            first = q.comments[0][0] - q.opened
            true(first <= PING_S, "first comment after %.1f s" % first)
            true(len(q.comments) >= 2, "only %d comment(s) in %.0f s"
                 % (len(q.comments), time.monotonic() - q.opened))
            gap = q.comments[1][0] - q.comments[0][0]
            true(gap <= PING_S, "%.1f s between comments" % gap)
            eq(q.comments[0][1], "ping", "comment text")
            print("# heartbeat: first after %.1f s, then every %.1f s" % (first, gap), flush=True)
    finally:
        for x in streams:
            x.close()


def stmt_count(p):
    return int(p.sql("SHOW GLOBAL STATUS LIKE 'Com_stmt_execute'")[0][1])


def rate(p, seconds=3.0):
    c0, t0 = stmt_count(p), time.monotonic()
    time.sleep(seconds)
    c1, t1 = stmt_count(p), time.monotonic()
    return (c1 - c0) / (t1 - t0)


def private_checks(t):
    tmp = tempfile.mkdtemp(prefix="kr-sse-")
    p = None
    streams, extra = [], []
    try:
        with t.setup("setup: a private stack (runner stopped: only fcgi queries the database)"):
            p = krstack.Stack.start(tmp, config={
                "fcgi.events_threads": "64", "events.streams_per_client": str(MANY),
                "events.streams_per_workspace": str(WS_CAP)})
            eq(p.stop_service("runner"), [], "problems stopping the runner")
            admin = admin_client(p)
            ws = create_workspace(admin)["slug"]
            wid = ws_id(p, ws)
            emit(p, wid, marker="warm-up")

        with t("statement rate with 1 stream, then with 50 on the same workspace: < 2x"):
            streams.append(open_ok("stream 1", p.base_url, ws, cookies=admin.cookies))
            time.sleep(1.0)
            r1 = rate(p)
            for i in range(MANY - 1):
                streams.append(open_ok("stream %d" % (i + 2), p.base_url, ws,
                                       cookies=admin.cookies))
            time.sleep(1.0)
            r50 = rate(p)
            print("# Com_stmt_execute: %.1f/s with 1 stream, %.1f/s with %d streams"
                  % (r1, r50, MANY), flush=True)
            true(r1 > 0, "no statements at all with one stream: is the poller running?")
            true(r50 < 2 * r1, "%.1f/s with %d streams vs %.1f/s with 1" % (r50, MANY, r1))

        with t("all 50 streams receive the same event within 2 s, once"):
            t0 = time.monotonic()
            (seq,) = emit(p, wid, marker="fan-out")
            late = [i for i, x in enumerate(streams)
                    if not x.wait_for(x.has_id(seq), DELIVERY_S + 1 - (time.monotonic() - t0))]
            eq(late, [], "streams without the event")
            worst = max(x.events[-1]["at"] for x in streams) - t0
            true(worst <= DELIVERY_S, "slowest delivery %.2f s" % worst)
            for x in streams:
                eq(x.ids().count(seq), 1, "copies of the event")
            print("# fan-out to %d streams: slowest %.0f ms" % (MANY, worst * 1000), flush=True)

        with t("the statement rate while events flow is still independent of the streams"):
            r50b = rate(p)
            print("# Com_stmt_execute with %d streams, idle again: %.1f/s" % (MANY, r50b),
                  flush=True)
            true(r50b < 2 * r1, "%.1f/s" % r50b)

        with t("limits: the caller's stream past events.streams_per_client (%d) answers 429; "
               "a viewer token fills the workspace to events.streams_per_workspace (%d), "
               "then 429; another workspace still opens; a stream closed frees its place"
               % (MANY, WS_CAP)):
            def refused(st, what):
                eq(st.status, 429, "%s: status (%r)" % (what, st.body[:200]))
                eq(json.loads(st.body)["error"]["code"], "rate_limited", what + ": code")
                true(st.headers.get("Retry-After"), what + ": no Retry-After")
            refused(Stream(p.base_url, ws, cookies=admin.cookies), "the admin's stream %d"
                    % (MANY + 1))
            r = admin.post("/api/workspaces/%s/tokens" % ws, json={"name": "cap",
                                                                    "role": "viewer"})
            expect(201, r, "create a viewer token")
            tok = r.json["secret"]
            for i in range(WS_CAP - MANY):
                extra.append(open_ok("token stream %d" % (i + 1), p.base_url, ws, bearer=tok))
            refused(Stream(p.base_url, ws, bearer=tok), "the workspace's stream %d"
                    % (WS_CAP + 1))
            other = create_workspace(admin)["slug"]
            r = admin.post("/api/workspaces/%s/tokens" % other, json={"name": "cap",
                                                                       "role": "viewer"})
            expect(201, r, "create a token in another workspace")
            extra.append(open_ok("another workspace's stream", p.base_url, other,
                                 bearer=r.json["secret"]))
            extra.pop(0).close()
            st = wait_for_ok(lambda: Stream(p.base_url, ws, bearer=tok), 5)
            true(st is not None, "no stream opened again after one of the token's closed")
            extra.append(st)
            for x in extra:
                x.close()
            extra.clear()

        with t("clients that leave free their threads at once: 50 closed, 50 new open (64 threads)"):
            for x in streams:
                x.close()
            streams.clear()
            time.sleep(2.0)
            t0 = time.monotonic()
            for i in range(MANY):
                # events.streams_per_client is MANY: a place is free once the server saw
                # its client leave (it looks every second)
                st = wait_for_ok(lambda: Stream(p.base_url, ws, cookies=admin.cookies), 5)
                true(st is not None, "new stream %d did not open" % (i + 1))
                streams.append(st)
            print("# %d new streams open %.2f s after %d clients left"
                  % (MANY, time.monotonic() - t0 + 2.0, MANY), flush=True)

        with t("SIGTERM with %d open streams: fcgi exits 0 within %d s, streams end" % (MANY, STOP_S)):
            t0 = time.monotonic()
            problems = p.stop_service("fcgi")
            took = time.monotonic() - t0
            eq(problems, [], "problems stopping fcgi")
            true(took <= STOP_S, "took %.1f s" % took)
            print("# fcgi stopped %.2f s after SIGTERM with %d open streams" % (took, MANY),
                  flush=True)
            open_left = [i for i, x in enumerate(streams)
                         if not x.wait_for(lambda y: y.ended is not None, 2)]
            eq(open_left, [], "streams still open")

        with t("no sanitizer report in the private stack's logs"):
            eq(p.sanitizer_reports(), [], "reports")
    finally:
        for x in streams + extra:
            x.close()
        try:
            if p is not None:
                problems = p.down()
                t.check("private stack stops cleanly", not problems,
                        " || ".join(str(x)[:1500] for x in problems or []))
            else:
                subprocess.run([sys.executable, KRSTACK, "down", tmp], check=False, timeout=120)
        except Exception as exc:   # noqa: BLE001
            t.not_ok("private stack down", repr(exc))
        if t.failed == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            shutil.rmtree(os.path.join(tmp, "mariadb"), ignore_errors=True)
            print("# logs of the private stack left in %s/logs" % tmp, flush=True)


def body(t):
    s = krstack.Stack.from_env()
    admin, ws_a, id_a = shared_checks(t, s)
    revocation_checks(t, s, admin, ws_a, id_a)
    private_checks(t)


if __name__ == "__main__":
    run("events", body)
