#!/usr/bin/env python3
"""The job runner end to end (issue 4): real MariaDB, nginx, keyrelay-fcgi, keyrelay-runner
and the stub provider, on a PRIVATE stack tuned for speed (4 s leases, 1 s heartbeats,
backoff capped at 4 s, 8 calls in flight per runner).

1. One runner: a chat message answered (out message with the stub's text, usage and cost,
   one ok attempt); key->key failover on 401 (key invalid, next job skips it);
   provider->provider failover on quota (usedFallback); 429 with retry-after cools the key
   (the next job takes the other key; with one key the job waits for the cooldown);
   529/503 retried with backoff (status retrying, spacing between attempts, input and system
   prompt kept), then the fallback chain, which a retried job walks afresh; 400 fails at
   once; maxAttempts respected; no usable key fails with a clear error; a task posted into
   a chat still sends its input; cancel of a running job aborts the call within about a
   second.
2. Two runners on one queue: 40 jobs, each answered once, never two attempts at once.
3. Schedules with two runners: each slot fires exactly once; nextRunAt is the next slot in
   the schedule's zone; a job names its schedule (current values), and still after the
   schedule is deleted (the values it was made under).
4. SIGKILL of a runner mid-call: the job is rescued after its lease expires and answered
   exactly once.
5. SIGTERM: the runner finishes the calls in hand, exits 0 within runner.drain_seconds, and
   hands back a call longer than that, which another runner answers exactly once.
6. Attempt timeout. 7. The heartbeat extends only the leases a runner holds: a running job
   under a busy runner's id that it does not track expires and is rescued; one already at
   its last attempt is failed instead, and so is one lost by its runner a third time.
8. An idle runner backs off its claims (a few statements a second on the whole stack) and
   still takes the next job.
9. Claims ahead: a runner with 8 slots holds 8 more jobs ready but never makes more than 8
   calls; SIGTERM hands back the ready jobs and the calls past the drain window.

KEYRELAY_TEST_KEEP=1 keeps the stack's directory (logs) after the run.
Stand-alone: needs KEYRELAY_BIN_DIR (or a shared stack's stack.json in KEYRELAY_TEST_STACK to
find the programs); the private stack lives in a temporary directory.
"""
import datetime
import json
import os
import re
import secrets
import signal
import sys
import time
import zoneinfo

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from krclient import (CheckError, SetupError, create_workspace,  # noqa: E402
                      eq, expect, fake_key, private_stack, run, true, wait_for)

CONFIG = {
    "runner.lease_seconds": "4",
    "runner.heartbeat_seconds": "1",
    "runner.backoff_max_seconds": "4",
    "runner.attempt_timeout_seconds": "20",
    "runner.max_in_flight": "8",
    "runner.drain_seconds": "5",
}
# No system keys from the caller's environment: every candidate is a key of the test.
ENV = {v: "" for v in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY",
                       "ZAI_API_KEY", "MOONSHOT_API_KEY")}
MODEL = {"anthropic": "claude-sonnet-4-5-20250929", "openai": "gpt-4o-mini",
         "google": "gemini-2.5-flash"}
PRICE = {"anthropic": (3.0, 15.0), "openai": (0.15, 0.6), "google": (0.3, 2.5)}
FINAL = ("succeeded", "failed", "cancelled")


# ----------------------------------------------------------------------------------- helpers

def rnd(n=32):
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(n))


def new_secret(provider):
    return fake_key(provider)


def token(prefix="tok"):
    return "%s-%s" % (prefix, rnd(12))


def parse_time(s):
    if s is None:
        raise CheckError("time is null")
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)


def parse_db_time(s):
    fmt = "%Y-%m-%d %H:%M:%S.%f" if "." in s else "%Y-%m-%d %H:%M:%S"
    return datetime.datetime.strptime(s, fmt).replace(tzinfo=datetime.timezone.utc)


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)



def key_of_request(r):
    h = r.get("headers") or {}
    if h.get("x-api-key"):
        return h["x-api-key"]
    if h.get("x-goog-api-key"):
        return h["x-goog-api-key"]
    auth = h.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else None


def is_call(r):
    """A completion call (not a models or balance listing)."""
    return r.get("method") == "POST"


def runner_stub_sockets(pid, port):
    """Inodes of the ESTABLISHED TCP connections of process pid to 127.0.0.1:port."""
    inodes = set()
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            m = re.fullmatch(r"socket:\[(\d+)\]", link)
            if m:
                inodes.add(m.group(1))
    except OSError:
        return set()
    found = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            rem, st, inode = parts[2], parts[3], parts[9]
            if st == "01" and int(rem.split(":")[1], 16) == port and inode in inodes:
                found.add(inode)
    return found


class Ws:
    """One workspace of the test, driven through the API."""

    def __init__(self, s, admin, label):
        self.s = s
        self.admin = admin
        self.slug = create_workspace(admin, slug="rt-%s-%s" % (label, rnd(6).lower()))["slug"]
        self.base = "/api/workspaces/%s" % self.slug
        self.id = s.sql("SELECT id FROM workspaces WHERE slug = ?", self.slug)[0][0]
        self.secrets = {}           # key id -> secret

    def add_keys(self, provider, specs):
        """specs: [(mode, {stub options})]; registers each with the stub, adds them in
        order (priority 0, 1, ...) and answers [(id, secret)]."""
        secrets_ = []
        for mode, kw in specs:
            sec = new_secret(provider)
            self.s.stub.set_key(sec, mode, **kw)
            secrets_.append(sec)
        r = self.admin.post(self.base + "/keys", json={"provider": provider, "keys": secrets_})
        if r.status != 201:
            raise SetupError("add %s keys to %s: %s" % (provider, self.slug, r.describe()))
        ids = [k["id"] for k in r.json["keys"]]
        for i, sec in zip(ids, secrets_):
            self.secrets[i] = sec
        return list(zip(ids, secrets_))

    def providers(self, primary=None, chain=(), allow_system=False):
        body = {"fallbackChain": list(chain), "allowSystemKeys": allow_system}
        if primary:
            body["primary"] = primary
        r = self.admin.put(self.base + "/providers", json=body)
        if r.status != 200:
            raise SetupError("PUT providers of %s %s: %s" % (self.slug, body, r.describe()))
        return r.json

    def chat(self, title="runner test"):
        r = self.admin.post(self.base + "/chats", json={"title": title})
        if r.status != 201:
            raise SetupError("create chat: %s" % r.describe())
        return r.json["id"]

    def say(self, chat, content, system=None):
        body = {"content": content}
        if system is not None:
            body["systemPrompt"] = system
        r = self.admin.post(self.base + "/chats/%s/messages" % chat, json=body)
        if r.status != 202:
            raise SetupError("post message: %s" % r.describe())
        return r.json["job"]

    def task(self, input, **kw):
        body = {"type": "task", "input": input}
        body.update(kw)
        r = self.admin.post(self.base + "/jobs", json=body)
        if r.status != 202:
            raise SetupError("create task: %s" % r.describe())
        return r.json

    def job(self, jid):
        r = self.admin.get(self.base + "/jobs/%s" % jid)
        expect(200, r, "GET job %s" % jid)
        return r.json

    def wait(self, jid, statuses=FINAL, timeout=30):
        return wait_for("job %s to be %s" % (jid, "/".join(statuses)),
                        lambda: (lambda j: j if j["status"] in statuses else None)(self.job(jid)),
                        timeout, 0.15)

    def keys(self):
        r = self.admin.get(self.base + "/keys")
        expect(200, r, "GET keys")
        return {k["id"]: k for k in r.json["keys"]}

    def messages(self, chat):
        r = self.admin.get(self.base + "/chats/%s/messages" % chat)
        expect(200, r, "GET messages")
        return r.json["messages"]

    def out_messages(self, chat, jid):
        return [m for m in self.messages(chat) if m["direction"] == "out" and m["jobId"] == jid]

    def events(self, jid, type=None):
        rows = self.s.sql("SELECT seq, type, payload FROM events WHERE workspace_id = ? "
                          "ORDER BY seq", self.id)
        out = []
        for seq, typ, payload in rows:
            try:
                p = json.loads(payload)
            except ValueError:
                continue
            if p.get("jobId") == jid and (type is None or typ == type):
                out.append((int(seq), typ, p))
        return out


def calls_with(s, secret, since=0):
    """Completion calls the stub saw with secret (after the first `since` of them)."""
    return [r for r in s.stub.requests() if is_call(r) and key_of_request(r) == secret][since:]


def attempts_summary(j):
    return [(a["attempt"], a["provider"], a["keyId"], a["outcome"], a["httpStatus"])
            for a in j.get("attemptsLog") or []]


def runner_id_of(s, pid, timeout=30):
    rows = wait_for("runner pid %d to register" % pid, lambda: s.sql(
        "SELECT id FROM runners WHERE pid = ? AND stopped_at IS NULL "
        "ORDER BY started_at DESC LIMIT 1", pid), timeout, 0.2)
    return rows[0][0]


def job_rows(s, ids):
    if not ids:
        return {}
    q = "SELECT id, status, runner_id, lease_token, attempts FROM jobs WHERE id IN (%s)" % (
        ",".join("?" * len(ids)))
    return {r[0]: r for r in s.sql(q, *ids)}


def log_lines(text, needle):
    return [ln for ln in text.splitlines() if needle in ln]


def log_time(line):
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)", line)
    if not m:
        return None
    t = m.group(1)
    if "." not in t:
        t = t[:-1] + ".000Z"
    return parse_time(t)


# ------------------------------------------------------------------------------- the tests

def body(t):
    with private_stack(t, "krrt-", "setup: private stack (4 s leases, 1 s heartbeat, 8 in "
                       "flight)", env=ENV, config=CONFIG) as (s, admin):
        scenarios(t, s, admin)


def scenarios(t, s, admin):
    stub_port = int(s.state["stub_port"])

    # ================================================================ phase 1: one runner
    with t.setup("setup: workspaces, keys and jobs of the one-runner scenarios"):
        # basic chat answer
        wb = Ws(s, admin, "basic")
        text_b = "Bonjour from the stub %s" % rnd(8)
        (kb, sb), = wb.add_keys("anthropic", [("ok", {"text": text_b})])
        wb.providers("anthropic")
        chat_b = wb.chat()
        sys_b = "system-" + rnd(10)
        in_b = "please answer %s now" % token("basic")
        job_b = wb.say(chat_b, in_b, system=sys_b)

        # key -> key failover on 401
        wk = Ws(s, admin, "k2k")
        (k1, s1), (k2, s2) = wk.add_keys("anthropic", [("auth", {}), ("ok", {})])
        wk.providers("anthropic")
        chat_k = wk.chat()
        job_k = wk.say(chat_k, "first " + token())

        # provider -> provider failover on quota
        wp = Ws(s, admin, "p2p")
        (kq, sq), = wp.add_keys("anthropic", [("quota", {})])
        (ko, so), = wp.add_keys("openai", [("ok", {"text": "openai answers"})])
        wp.providers("anthropic", ["openai"])
        chat_p = wp.chat()
        job_p = wp.say(chat_p, "fall over " + token())

        # 429 with retry-after: two keys (the next job takes the other) and one key (waits)
        wr = Ws(s, admin, "rate2")
        (ka, sa), (kbk, sbk) = wr.add_keys("anthropic", [("rate", {"retry_after": 20,
                                                                   "times": 1}),
                                                          ("ok", {})])
        wr.providers("anthropic")
        job_r = wr.task("rate limited " + token())
        wr1 = Ws(s, admin, "rate1")
        (kc, sc), = wr1.add_keys("openai", [("rate", {"retry_after": 3, "times": 1})])
        wr1.providers("openai")
        job_r1 = wr1.task("wait for the cooldown " + token())

        # transient: 529 twice with a chain; 503 once and 503 twice with one provider
        wt = Ws(s, admin, "t529")
        (kt, st_), = wt.add_keys("anthropic", [("overloaded", {"times": 2})])
        (kto, sto), = wt.add_keys("openai", [("ok", {})])
        wt.providers("anthropic", ["openai"])
        chat_t = wt.chat()
        sys_t = "keep-me-" + rnd(10)
        in_t = "retry me " + token()
        job_t = wt.say(chat_t, in_t, system=sys_t)
        wt1 = Ws(s, admin, "t503a")
        (kt1, st1), = wt1.add_keys("openai", [("overloaded", {"times": 1})])
        wt1.providers("openai")
        job_t1 = wt1.task("503 once " + token())
        wt2 = Ws(s, admin, "t503b")
        (kt2, st2), = wt2.add_keys("openai", [("overloaded", {"times": 2})])
        wt2.providers("openai")
        job_t2 = wt2.task("503 twice " + token(), systemPrompt="sp-" + rnd(6))

        # 400: fails at once
        wq = Ws(s, admin, "bad")
        (kbad, sbad), = wq.add_keys("anthropic", [("bad_request", {})])
        wq.providers("anthropic")
        job_q = wq.task("bad request " + token())

        # maxAttempts: transient everywhere (3 providers), and 3 invalid keys
        wm = Ws(s, admin, "max")
        (km_a, sm_a), = wm.add_keys("anthropic", [("overloaded", {})])
        (km_o, sm_o), = wm.add_keys("openai", [("server_error", {})])
        (km_g, sm_g), = wm.add_keys("google", [("overloaded", {})])
        wm.providers("anthropic", ["openai", "google"])
        job_m = wm.task("never answered " + token(), maxAttempts=3)
        wm2 = Ws(s, admin, "max2")
        m2 = wm2.add_keys("anthropic", [("auth", {}), ("auth", {}), ("auth", {})])
        wm2.providers("anthropic")
        job_m2 = wm2.task("two keys only " + token(), maxAttempts=2)

        # no usable key
        wn = Ws(s, admin, "nokey")
        wn.providers(None, [], allow_system=False)
        job_n = wn.task("nobody can answer " + token())

        # a task posted into a chat that has history
        wc = Ws(s, admin, "taskchat")
        (kcx, scx), = wc.add_keys("anthropic", [("ok", {"text": "first answer"})])
        wc.providers("anthropic")
        chat_c = wc.chat()
        job_c0 = wc.say(chat_c, "hello " + token())

    # -- basic ---------------------------------------------------------------------------------
    with t("chat message: answered as an `out` message with the stub's text"):
        j = wb.wait(job_b["id"])
        eq(j["status"], "succeeded", "status (error %r, attempts %r)"
           % (j.get("error"), attempts_summary(j)))
        outs = wb.out_messages(chat_b, job_b["id"])
        eq(len(outs), 1, "out messages of the job")
        eq(outs[0]["content"], text_b, "answer content")
        eq(j["result"], text_b, "job result")
        true(j["deliveredAt"] is not None and j["finishedAt"] is not None,
             "deliveredAt/finishedAt not set: %r" % j)
    with t("chat job: provider, keyId, model, usage (tokens > 0, costUsd from the price "
           "table), usedFallback false, attempts 1"):
        eq((j["provider"], j["keyId"], j["model"], j["usedFallback"], j["attempts"]),
           ("anthropic", kb, MODEL["anthropic"], False, 1),
           "provider, keyId, model, usedFallback, attempts")
        u = j["usage"]
        true(u["inputTokens"] > 0, "inputTokens %r" % u)
        eq(u["outputTokens"], len(text_b.split()), "outputTokens (words of the answer)")
        want = (u["inputTokens"] * PRICE["anthropic"][0]
                + u["outputTokens"] * PRICE["anthropic"][1]) / 1e6
        true(u["costUsd"] > 0 and abs(u["costUsd"] - want) < 2e-6,
             "costUsd %r, expected %.6f" % (u["costUsd"], want))
    with t("chat job: attemptsLog holds one ok attempt (200) with key, model and times"):
        log = j["attemptsLog"]
        eq(len(log), 1, "attempts logged: %r" % log)
        a = log[0]
        eq((a["attempt"], a["provider"], a["keyId"], a["model"], a["outcome"],
            a["httpStatus"], a["error"]),
           (1, "anthropic", kb, MODEL["anthropic"], "ok", 200, None), "attempt")
        true(parse_time(a["startedAt"]) <= parse_time(a["finishedAt"]),
             "startedAt after finishedAt: %r" % a)
    with t("chat job: the provider got the message and the system prompt"):
        calls = calls_with(s, sb)
        eq(len(calls), 1, "calls with the key")
        dump = json.dumps(calls[0]["body"])
        true(in_b in dump and sys_b in dump, "request body lacks input or system prompt: %s"
             % dump[:600])
    with t("job_started, message_created and job_succeeded events, in that order"):
        types = [e[1] for e in wb.events(job_b["id"])]
        for want in ("job_started", "message_created", "job_succeeded"):
            true(want in types, "no %s event: %r" % (want, types))
        true(types.index("job_started") < types.index("message_created")
             < types.index("job_succeeded"), "event order %r" % types)
    with t("the message_created event carries the answer message as stored (GET messages), "
           "createdAt included"):
        (_, _, p), = wb.events(job_b["id"], "message_created")
        eq(p["message"], wb.out_messages(chat_b, job_b["id"])[0], "event's message")

    # -- key -> key --------------------------------------------------------------------------
    with t("key->key: 401 on the first key, the second answers; usedFallback false"):
        j = wk.wait(job_k["id"])
        eq(j["status"], "succeeded", "status (error %r)" % j.get("error"))
        eq((j["provider"], j["keyId"], j["usedFallback"], j["attempts"]),
           ("anthropic", k2, False, 2), "provider, keyId, usedFallback, attempts")
        eq([(a[1], a[2], a[3], a[4]) for a in attempts_summary(j)],
           [("anthropic", k1, "auth", 401), ("anthropic", k2, "ok", 200)], "attemptsLog")
        log = j["attemptsLog"]
        true(parse_time(log[1]["startedAt"]) >= parse_time(log[0]["finishedAt"])
             - datetime.timedelta(milliseconds=5),
             "second attempt started before the first finished: %r" % log)
        eq(len(wk.out_messages(chat_k, job_k["id"])), 1, "out messages")
    with t("key->key: the 401 key is marked invalid with its error"):
        keys = wk.keys()
        eq(keys[k1]["status"], "invalid", "status of the 401 key")
        true(keys[k1]["lastError"], "lastError of the 401 key is empty")
        true(keys[k2]["status"] in ("valid", "untested"), "second key %r" % keys[k2]["status"])
        true(any(e[1] == "key_status_changed" for e in wk_events_all(wk)),
             "no key_status_changed event")
    with t("key->key: the next job skips the invalid key (no call with it)"):
        before = len(calls_with(s, s1))
        jn = wk.say(chat_k, "second " + token())
        j2 = wk.wait(jn["id"])
        eq(j2["status"], "succeeded", "status")
        eq([(a[2], a[3]) for a in attempts_summary(j2)], [(k2, "ok")], "attemptsLog")
        eq(len(calls_with(s, s1)), before, "calls with the invalid key after it was marked")

    # -- provider -> provider ------------------------------------------------------------------
    with t("provider->provider: quota on the primary's only key, the chain answers, "
           "usedFallback true"):
        j = wp.wait(job_p["id"])
        eq(j["status"], "succeeded", "status (error %r)" % j.get("error"))
        eq((j["provider"], j["keyId"], j["model"], j["usedFallback"]),
           ("openai", ko, MODEL["openai"], True), "provider, keyId, model, usedFallback")
        eq([(a[1], a[2], a[3], a[4]) for a in attempts_summary(j)],
           [("anthropic", kq, "quota", 402), ("openai", ko, "ok", 200)], "attemptsLog")
        eq([m["content"] for m in wp.out_messages(chat_p, job_p["id"])], ["openai answers"],
           "out messages")
        eq(wp.keys()[kq]["status"], "exhausted", "status of the quota key")

    # -- rate limit ----------------------------------------------------------------------------
    with t("429 with retry-after 20: the key cools down for about the hint, the other key "
           "answers"):
        j = wr.wait(job_r["id"])
        eq(j["status"], "succeeded", "status (error %r)" % j.get("error"))
        eq([(a[2], a[3], a[4]) for a in attempts_summary(j)],
           [(ka, "rate", 429), (kbk, "ok", 200)], "attemptsLog")
        row = s.sql("SELECT k.cooldown_until, a.finished_at, k.status FROM provider_keys k "
                    "JOIN job_attempts a ON a.key_id = k.id AND a.job_id = ? "
                    "WHERE k.id = ?", job_r["id"], ka)
        true(row and row[0][0], "no cooldown_until on the rate-limited key: %r" % row)
        cool = (parse_db_time(row[0][0]) - parse_db_time(row[0][1])).total_seconds()
        true(18.5 <= cool <= 21.5, "cooldown_until is %.2f s after the 429 (hint 20 s)" % cool)
        true(row[0][2] in ("valid", "untested"), "rate-limited key status %r" % row[0][2])
        k = wr.keys()[ka]
        true(k["cooldownUntil"] is not None, "cooldownUntil not shown: %r" % k)
        eq(parse_time(k["cooldownUntil"]).replace(microsecond=0),
           parse_db_time(row[0][0]).replace(microsecond=0), "cooldownUntil of the API")
    with t("429: the next job takes the other key at once (no call with the cooling key)"):
        before = len(calls_with(s, sa))
        jn = wr.task("while cooling " + token())
        j2 = wr.wait(jn["id"], timeout=15)
        eq(j2["status"], "succeeded", "status")
        eq([(a[2], a[3]) for a in attempts_summary(j2)], [(kbk, "ok")], "attemptsLog")
        eq(len(calls_with(s, sa)), before, "calls with the cooling key")
    with t("429 on the only key: the job waits (retrying) for the hint, then succeeds"):
        j = wr1.wait(job_r1["id"])
        eq(j["status"], "succeeded", "status (error %r)" % j.get("error"))
        log = j["attemptsLog"]
        eq([(a[2], a[3]) for a in attempts_summary(j)], [(kc, "rate"), (kc, "ok")],
           "attemptsLog")
        gap = (parse_time(log[1]["startedAt"]) - parse_time(log[0]["finishedAt"])).total_seconds()
        true(gap >= 2.5, "second attempt %.2f s after the 429 with retry-after 3" % gap)
        true(wr1.events(job_r1["id"], "job_retrying"), "no job_retrying event")

    # -- transient -----------------------------------------------------------------------------
    def check_spacing(log, floors):
        for i, floor in enumerate(floors):
            gap = (parse_time(log[i + 1]["startedAt"])
                   - parse_time(log[i]["finishedAt"])).total_seconds()
            true(gap >= floor, "attempt %d started %.2f s after attempt %d finished (backoff "
                 "floor %.2f s): %r" % (i + 2, gap, i + 1, floor, attempts_summary_log(log)))

    with t("529 twice: retrying with backoff (>= 0.75 s), then the chain answers"):
        j = wt.wait(job_t["id"])
        eq(j["status"], "succeeded", "status (error %r, attempts %r)"
           % (j.get("error"), attempts_summary(j)))
        eq([(a[1], a[3], a[4]) for a in attempts_summary(j)],
           [("anthropic", "transient", 529), ("anthropic", "transient", 529),
            ("openai", "ok", 200)], "attemptsLog")
        check_spacing(j["attemptsLog"], [0.75, 0.75])
        eq((j["provider"], j["usedFallback"], j["attempts"]), ("openai", True, 3),
           "provider, usedFallback, attempts")
        eq(len(wt.events(job_t["id"], "job_retrying")), 2, "job_retrying events")
        eq(len(wt.out_messages(chat_t, job_t["id"])), 1, "out messages")
    with t("529 retries keep the input and the system prompt in every request"):
        calls = calls_with(s, st_) + calls_with(s, sto)
        eq(len(calls), 3, "calls of the job")
        for c in calls:
            dump = json.dumps(c["body"])
            true(in_t in dump and sys_t in dump, "a retry lost input or system prompt: %s"
                 % dump[:600])
    with t("a retried job walks the chain afresh: its primary, failed twice before the "
           "retry, is tried again after one more transient failure"):
        wrr = Ws(s, admin, "retry-run")
        wrr.add_keys("anthropic", [("overloaded", {"times": 3})])
        wrr.add_keys("openai", [("ok", {})])
        wrr.providers("anthropic", ["openai"])
        jid = wrr.task("fail, then retry " + token(), maxAttempts=2)["id"]
        j = wrr.wait(jid)
        eq((j["status"], [(a[0], a[1], a[3]) for a in attempts_summary(j)]),
           ("failed", [(1, "anthropic", "transient"), (2, "anthropic", "transient")]),
           "the first run: status and attemptsLog")
        expect(202, admin.post(wrr.base + "/jobs/%s/retry" % jid, json={}), "retry")
        j = wrr.wait(jid)
        eq((j["status"], j["provider"], j["usedFallback"], j["attempts"]),
           ("succeeded", "anthropic", False, 2), "status, provider, usedFallback, attempts")
        eq([(a[0], a[1], a[3]) for a in attempts_summary(j)],
           [(1, "anthropic", "transient"), (2, "anthropic", "transient"),
            (1, "anthropic", "transient"), (2, "anthropic", "ok")],
           "attemptsLog, in the order of the calls")
    with t("a key rotated while a call with its old secret is out: the old secret's 401 does "
           "not mark the new one invalid, and the job's next attempt answers with it"):
        wrot = Ws(s, admin, "rotated")
        ((kid, old),) = wrot.add_keys("anthropic", [("auth", {"delay_ms": 3000})])
        wrot.providers("anthropic")
        jid = wrot.task("rotate under me " + token(), maxAttempts=3)["id"]
        wait_for("the call with the old secret", lambda: calls_with(s, old), 15, 0.05)
        fresh = new_secret("anthropic")
        s.stub.set_key(fresh, "ok")
        expect(200, admin.post(wrot.base + "/keys/%s/rotate" % kid, json={"key": fresh}),
               "rotate")
        j = wrot.wait(jid)
        eq((j["status"], j["keyId"]), ("succeeded", kid), "the job (error %r, attempts %r)"
           % (j.get("error"), attempts_summary(j)))
        eq(wrot.keys()[kid]["status"], "valid", "the key's status")
    with t("503 once, one provider: retried after >= 0.75 s and answered"):
        j = wt1.wait(job_t1["id"])
        eq(j["status"], "succeeded", "status (error %r)" % j.get("error"))
        eq([(a[3], a[4]) for a in attempts_summary(j)], [("transient", 503), ("ok", 200)],
           "attemptsLog")
        check_spacing(j["attemptsLog"], [0.75])
        true(wt1.events(job_t1["id"], "job_retrying"), "no job_retrying event")
    with t("503 twice, one provider and no chain (maxAttempts 5): retried with backoff "
           "1 s, 2 s and answered"):
        j = wt2.wait(job_t2["id"])
        eq((j["status"], [(a[3], a[4]) for a in attempts_summary(j)]),
           ("succeeded", [("transient", 503), ("transient", 503), ("ok", 200)]),
           "job %s: status and attemptsLog (error %r)" % (j["id"], j.get("error")))
        check_spacing(j["attemptsLog"], [0.75, 1.5])

    # -- 400 -----------------------------------------------------------------------------------
    with t("400: failed at once, one attempt, the provider's message, no retry"):
        j = wq.wait(job_q["id"])
        eq(j["status"], "failed", "status")
        eq(j["attempts"], 1, "attempts")
        eq([(a[3], a[4]) for a in attempts_summary(j)], [("request", 400)], "attemptsLog")
        true(j["error"] and "is not a supported model name" in j["error"],
             "job error lacks the provider's message: %r" % j["error"])
        true("is not a supported model name" in (j["attemptsLog"][0]["error"] or ""),
             "attempt error %r" % j["attemptsLog"][0]["error"])
        eq(wq.events(job_q["id"], "job_retrying"), [], "job_retrying events")
        time.sleep(1.5)
        eq(len(calls_with(s, sbad)), 1, "calls with the key (1.5 s after the failure)")
        eq(wq.job(job_q["id"])["status"], "failed", "status later")
        true(wq.keys()[kbad]["status"] != "invalid", "a request error marked the key invalid")

    # -- maxAttempts ---------------------------------------------------------------------------
    with t("maxAttempts 3 with transient errors on three providers: failed after exactly 3 "
           "calls"):
        j = wm.wait(job_m["id"], timeout=40)
        eq(j["status"], "failed", "status")
        eq(j["attempts"], 3, "attempts")
        eq(len(j["attemptsLog"]), 3, "attemptsLog length: %r" % attempts_summary(j))
        true(all(a[3] == "transient" for a in attempts_summary(j)), "outcomes %r"
             % attempts_summary(j))
        time.sleep(1.5)
        n = sum(len(calls_with(s, x)) for x in (sm_a, sm_o, sm_g))
        eq(n, 3, "provider calls of the job")
    with t("maxAttempts 2 with three invalid keys: failed after 2 calls, the third key "
           "never called"):
        j = wm2.wait(job_m2["id"])
        eq(j["status"], "failed", "status")
        eq((j["attempts"], [(a[2], a[3]) for a in attempts_summary(j)]),
           (2, [(m2[0][0], "auth"), (m2[1][0], "auth")]), "attempts and attemptsLog")
        eq(len(calls_with(s, m2[2][1])), 0, "calls with the third key")
        eq(wm2.keys()[m2[2][0]]["status"], "untested", "third key status")

    # -- no usable key -------------------------------------------------------------------------
    with t("no usable key: the job fails with a clear error, no attempt"):
        j = wn.wait(job_n["id"])
        eq(j["status"], "failed", "status")
        true(j["error"] and "no usable key" in j["error"], "error %r" % j["error"])
        eq((j["attempts"], j["attemptsLog"]), (0, []), "attempts, attemptsLog")
        true(wn.events(job_n["id"], "job_failed"), "no job_failed event")

    # -- a task into a chat with history -------------------------------------------------------
    with t("a task posted into a chat with history sends its own input to the provider"):
        eq(wc.wait(job_c0["id"])["status"], "succeeded", "first chat job")
        tok = token("TASK")
        jt = wc.task("do this: " + tok, chatId=chat_c)
        j = wc.wait(jt["id"])
        eq(j["status"], "succeeded", "status")
        calls = calls_with(s, scx)
        eq(len(calls), 2, "calls")
        dump = json.dumps(calls[-1]["body"])
        true(tok in dump, "the task's input is not in the provider request: %s" % dump[:800])
    with t("a schedule firing into a chat with history sends its own input to the provider"):
        tok = token("SCHED")
        r = admin.post(wc.base + "/schedules", json={
            "description": "into the chat", "cron": "0 0 1 1 *", "timezone": "UTC",
            "input": "scheduled: " + tok, "chatId": chat_c, "enabled": True})
        expect(201, r, "create schedule")
        sid = r.json["id"]
        s.sql("SET time_zone = '+00:00'; UPDATE schedules SET next_run_at = NOW(3) - "
              "INTERVAL 1 SECOND WHERE id = ?", sid)
        rows = wait_for("the schedule to fire", lambda: s.sql(
            "SELECT job_id FROM schedule_fires WHERE schedule_id = ?", sid), 10, 0.2)
        j = wc.wait(rows[0][0])
        eq(j["status"], "succeeded", "status")
        eq(len(wc.out_messages(chat_c, j["id"])), 1, "out messages of the scheduled job")
        dump = json.dumps(calls_with(s, scx)[-1]["body"])
        true(tok in dump, "the schedule's input is not in the provider request: %s"
             % dump[:800])
    with t("a chat message's call carries the chat's history, oldest first, answers as the "
           "assistant, the new message last"):
        tok = token("NEXT")
        jm = wc.say(chat_c, "and now: " + tok)
        eq(wc.wait(jm["id"])["status"], "succeeded", "status")
        msgs = wc.messages(chat_c)
        mine = [m for m in msgs if m["jobId"] == jm["id"] or m["content"].endswith(tok)]
        before = msgs[:msgs.index(mine[0])]
        want = [{"role": "assistant" if m["direction"] == "out" else "user",
                 "content": m["content"]} for m in before]
        want.append({"role": "user", "content": "and now: " + tok})
        body = calls_with(s, scx)[-1]["body"]
        got = [{"role": m.get("role"), "content": m.get("content")}
               for m in body.get("messages", [])]
        eq(len(before) >= 4, True, "earlier messages in the chat (%d)" % len(before))
        eq(got, want, "the messages of the provider request")

    # -- cancel of a running job ---------------------------------------------------------------
    with t.setup("setup: a job whose call takes 10 s, running"):
        wx = Ws(s, admin, "cancel")
        (kx, sx), = wx.add_keys("anthropic", [("delay", {"delay_ms": 10000})])
        wx.providers("anthropic")
        chat_x = wx.chat()
        job_x = wx.say(chat_x, "cancel me " + token())
        wx.wait(job_x["id"], ("running",), timeout=15)
        wait_for("the call to reach the stub", lambda: calls_with(s, sx), 10)
        rpid = s.service_pid("runner")
        true(rpid, "no runner pid")
        socks0 = wait_for("the runner's connection to the stub",
                          lambda: runner_stub_sockets(rpid, stub_port), 5)
    with t("cancel of a running job: 200 cancelled"):
        t_cancel = utcnow()
        r = wx.admin.post(wx.base + "/jobs/%s/cancel" % job_x["id"])
        expect(200, r)
        eq(r.json["status"], "cancelled", "status")
    with t("cancel: the runner drops the provider connection within ~1.5 s"):
        wait_for("the runner to close its connection to the stub",
                 lambda: socks0 - runner_stub_sockets(rpid, stub_port), 1.5, 0.05)
    with t("cancel: the runner log says the call was aborted (within ~1.5 s)"):
        lines = wait_for("the abort in the runner log", lambda: [
            ln for ln in log_lines(s.p("logs", "runner.log").read_text(errors="replace"),
                                   job_x["id"]) if "abort" in ln], 5)
        when = log_time(lines[0])
        true(when is not None and (when - t_cancel).total_seconds() < 1.5,
             "aborted at %s, cancelled at %s: %s" % (when, t_cancel, lines[0]))
    with t("cancel: no answer ever arrives (checked after the stub's 10 s)"):
        left = 10.5 - (utcnow() - t_cancel).total_seconds()
        if left > 0:
            time.sleep(left)
        j = wx.job(job_x["id"])
        eq((j["status"], j["result"], j["deliveredAt"]), ("cancelled", None, None),
           "status, result, deliveredAt")
        eq(wx.out_messages(chat_x, job_x["id"]), [], "out messages")
        eq(wx.events(job_x["id"], "job_succeeded"), [], "job_succeeded events")
        eq(len(calls_with(s, sx)), 1, "calls with the key")
    with t("cancel: the aborted call is recorded in attemptsLog (outcome cancelled)"):
        j = wx.job(job_x["id"])
        eq([(a[2], a[3]) for a in attempts_summary(j)], [(kx, "cancelled")], "attemptsLog")

    # ================================================================ phase 2: two runners
    with t.setup("setup: a second runner"):
        r2 = s.start_runner("second")
        runner_id_of(s, r2.pid)
        rid1 = runner_id_of(s, s.service_pid("runner"))
    with t.setup("setup: 40 chat jobs, the stub answering after 300 ms"):
        w2 = Ws(s, admin, "two")
        (k40, s40), = w2.add_keys("anthropic", [("ok", {"delay_ms": 300})])
        w2.providers("anthropic")
        # A tested key is valid and healthy, its last_used_at not set yet. Every change of
        # that column is counted by a trigger (this key only).
        r = admin.post(w2.base + "/keys/%s/test" % k40)
        if r.status != 200 or not r.json.get("valid"):
            raise SetupError("test key: %s" % r.describe())
        touch_table = "kr_test_touch_%s" % rnd(8).lower()
        s.sql("CREATE TABLE %s (at DATETIME(6) NOT NULL)" % touch_table)
        s.sql("DELIMITER //\nCREATE TRIGGER %s_t AFTER UPDATE ON provider_keys FOR EACH ROW "
              "BEGIN IF NEW.id = ? AND NOT (NEW.last_used_at <=> OLD.last_used_at) THEN "
              "INSERT INTO %s VALUES (NOW(6)); END IF; END//\nDELIMITER ;"
              % (touch_table, touch_table), k40)
        jobs40 = {}
        for i in range(40):
            chat = w2.chat("c%d" % i)
            tok = token("J%02d" % i)
            jobs40[w2.say(chat, tok)["id"]] = (chat, tok)
    with t("two runners: all 40 jobs succeed"):
        ids = list(jobs40)

        def all_done():
            rows = job_rows(s, ids)
            return all(r[1] in FINAL for r in rows.values()) and rows
        rows = wait_for("40 jobs to finish", all_done, 60, 0.3)
        bad = {i: r[1] for i, r in rows.items() if r[1] != "succeeded"}
        eq(bad, {}, "jobs that did not succeed")
    with t("two runners: each job answered exactly once (one out message, one provider "
           "call, one job_started)"):
        calls = calls_with(s, s40)
        per_tok = {}
        for c in calls:
            dump = json.dumps(c["body"])
            for jid, (chat, tok) in jobs40.items():
                if tok in dump:
                    per_tok[jid] = per_tok.get(jid, 0) + 1
        problems = []
        for jid, (chat, tok) in jobs40.items():
            outs = w2.out_messages(chat, jid)
            started = w2.events(jid, "job_started")
            if len(outs) != 1 or per_tok.get(jid, 0) != 1 or len(started) != 1:
                problems.append("%s: %d out, %d calls, %d job_started"
                                % (jid, len(outs), per_tok.get(jid, 0), len(started)))
        eq(problems, [], "jobs answered other than once")
        n_attempts = int(s.sql("SELECT COUNT(*) FROM job_attempts WHERE workspace_id = ?",
                               w2.id)[0][0])
        eq(len(calls), n_attempts, "provider calls vs job_attempts rows")
    with t("two runners: no job ever had two attempts running at once"):
        rows = s.sql("SELECT job_id, attempt, started_at, finished_at FROM job_attempts "
                     "WHERE workspace_id = ? ORDER BY job_id, started_at", w2.id)
        by_job = {}
        for jid, n, st, fin in rows:
            by_job.setdefault(jid, []).append((parse_db_time(st), parse_db_time(fin), n))
        overlaps = []
        for jid, lst in by_job.items():
            for a, b in zip(lst, lst[1:]):
                if b[0] < a[1]:
                    overlaps.append((jid, a, b))
        eq(overlaps, [], "overlapping attempts")
    with t("two runners: both runners answered jobs"):
        owners = {r[2] for r in job_rows(s, list(jobs40)).values()}
        rid2 = runner_id_of(s, r2.pid)
        true(rid1 in owners and rid2 in owners,
             "jobs answered by runners %r; runners are %s and %s" % (owners, rid1, rid2))
    with t("40 answers on one healthy key: its lastUsedAt is set, by one write per runner "
           "(not one per answer)"):
        try:
            touches = int(s.sql("SELECT COUNT(*) FROM %s" % touch_table)[0][0])
        finally:
            s.sql("DROP TRIGGER IF EXISTS %s_t" % touch_table)
            s.sql("DROP TABLE IF EXISTS %s" % touch_table)
        true(w2.keys()[k40].get("lastUsedAt") is not None, "lastUsedAt of the key is set")
        true(1 <= touches <= 2, "last_used_at written %d time(s) for 40 answers by two "
             "runners within a few seconds" % touches)

    # ---------------------------------------------------------- schedules with two runners
    with t.setup("setup: 8 schedules in Europe/Berlin and UTC"):
        ws_s = Ws(s, admin, "sched")
        ws_s.add_keys("anthropic", [("ok", {})])
        ws_s.providers("anthropic")
        crons = [("30 9 * * *", "Europe/Berlin"), ("15 */2 * * *", "Europe/Berlin"),
                 ("0 0 * * 1", "Europe/Berlin"), ("45 23 * * *", "UTC")]
        scheds = []
        for i in range(8):
            cron, tz = crons[i % len(crons)]
            r = admin.post(ws_s.base + "/schedules", json={
                "description": "rt %d" % i, "cron": cron, "timezone": tz,
                "input": "scheduled " + token(), "enabled": True})
            expect(201, r, "create schedule")
            scheds.append((r.json["id"], cron, tz))
    for rnd_no in range(3):
        with t("schedules round %d: every due slot fires exactly once with two runners"
               % (rnd_no + 1)):
            ids = [x[0] for x in scheds]
            ph = ",".join("?" * len(ids))
            before = {sid: int(n) for sid, n in s.sql(
                "SELECT schedule_id, COUNT(*) FROM schedule_fires WHERE schedule_id IN (%s) "
                "GROUP BY schedule_id" % ph, *ids)}
            s.sql("SET time_zone = '+00:00'; UPDATE schedules SET next_run_at = NOW(3) - "
                  "INTERVAL 1 SECOND WHERE id IN (%s)" % ph, *ids)

            def fired():
                got = {sid: int(n) for sid, n in s.sql(
                    "SELECT schedule_id, COUNT(*) FROM schedule_fires WHERE schedule_id IN "
                    "(%s) GROUP BY schedule_id" % ph, *ids)}
                due = s.sql("SELECT COUNT(*) FROM schedules WHERE id IN (%s) AND "
                            "next_run_at <= UTC_TIMESTAMP(3)" % ph, *ids)[0][0]
                return got if int(due) == 0 else None
            got = wait_for("the schedules to fire", fired, 20, 0.2)
            time.sleep(2.5)  # both runners look every second: give a double fire its chance
            got = fired() or got
            diff = {sid: got.get(sid, 0) - before.get(sid, 0) for sid in ids}
            eq({k: v for k, v in diff.items() if v != 1}, {}, "schedules not fired once")
            jobs = {sid: int(n) for sid, n in s.sql(
                "SELECT schedule_id, COUNT(*) FROM jobs WHERE schedule_id IN (%s) "
                "GROUP BY schedule_id" % ph, *ids)}
            eq({sid: jobs.get(sid, 0) for sid in ids}, {sid: rnd_no + 1 for sid in ids},
               "jobs per schedule")
        with t("schedules round %d: nextRunAt is the next slot in the schedule's zone"
               % (rnd_no + 1)):
            problems = []
            for sid, cron, tz in scheds:
                slot = s.sql("SELECT fire_time FROM schedule_fires WHERE schedule_id = ? "
                             "ORDER BY fire_time DESC LIMIT 1", sid)[0][0]
                r = admin.get(ws_s.base + "/schedules/%s" % sid)
                expect(200, r)
                want = next_slot(cron, tz, parse_db_time(slot))
                got_next = parse_time(r.json["nextRunAt"])
                if got_next != want:
                    problems.append("%s %s (%s): nextRunAt %s, expected %s"
                                    % (sid, cron, tz, r.json["nextRunAt"], want.isoformat()))
                if r.json.get("lastRunAt") is None or parse_time(r.json["lastRunAt"]) \
                        .replace(microsecond=0) != parse_db_time(slot).replace(microsecond=0):
                    problems.append("%s: lastRunAt %s, slot %s"
                                    % (sid, r.json.get("lastRunAt"), slot))
            eq(problems, [], "schedule times")
    with t("schedules: the scheduled jobs carry their schedule and are answered"):
        ids = [x[0] for x in scheds]
        r = admin.get(ws_s.base + "/jobs?scheduleId=%s" % ids[0])
        expect(200, r)
        eq(len(r.json["jobs"]), 3, "jobs of the first schedule")
        true(all(j["schedule"] and j["schedule"]["id"] == ids[0] and j["type"] == "scheduled"
                 for j in r.json["jobs"]), "schedule info: %r" % r.json["jobs"])
        wait_for("the scheduled jobs to succeed", lambda: all(
            ws_s.job(j["id"])["status"] == "succeeded" for j in r.json["jobs"]), 20, 0.3)
    with t("schedules: a job names its schedule with the current description while the "
           "schedule exists, and with the one it had when it made the job after a DELETE"):
        sid, path = ids[0], ws_s.base + "/schedules/%s" % ids[0]
        made = admin.get(path).json
        expect(200, admin.patch(path, json={"description": "renamed " + rnd(6)}))
        renamed = admin.get(path).json["description"]

        def named():
            r = admin.get(ws_s.base + "/jobs?scheduleId=%s" % sid)
            expect(200, r)
            return [j["schedule"] for j in r.json["jobs"]]
        eq(named(), [{"id": sid, "description": renamed, "cron": made["cron"]}] * 3,
           "the jobs' schedule while it exists")
        expect(204, admin.delete(path))
        eq(named(), [{"id": sid, "description": made["description"], "cron": made["cron"]}]
           * 3, "the jobs' schedule after its DELETE")

    with t("second runner: SIGTERM, exit 0"):
        r2.kill(signal.SIGTERM)
        eq(r2.wait(20), 0, "exit status")

    # ================================================================ phase 3: SIGKILL
    with t.setup("setup: only the victim runner; 3 jobs whose calls take 6 s, all running "
                 "on it"):
        for p in s.stop_service("runner"):
            raise SetupError(p)
        victim = s.start_runner("victim")
        vid = runner_id_of(s, victim.pid)
        wk9 = Ws(s, admin, "kill")
        (k9, s9), = wk9.add_keys("anthropic", [("delay", {"delay_ms": 6000})])
        wk9.providers("anthropic")
        jobs9 = {}
        for i in range(3):
            chat = wk9.chat()
            jobs9[wk9.say(chat, "survive " + token())["id"]] = chat
        wait_for("the jobs to run on the victim", lambda: all(
            r[1] == "running" and r[2] == vid for r in job_rows(s, list(jobs9)).values()),
            15, 0.1)
        wait_for("the calls to reach the stub", lambda: len(calls_with(s, s9)) >= 3, 10)
        rescuer = s.start_runner("rescuer")
        rescuer_id = runner_id_of(s, rescuer.pid)
        time.sleep(0.5)
    with t("SIGKILL mid-call: the runner dies"):
        t_kill = time.monotonic()
        victim.kill(signal.SIGKILL)
        eq(victim.wait(10), -signal.SIGKILL, "exit status")
    with t("SIGKILL: the jobs are rescued after their lease expired and answered by the "
           "other runner"):
        def done():
            rows = job_rows(s, list(jobs9))
            return all(r[1] in FINAL for r in rows.values()) and rows
        rows = wait_for("the rescued jobs to finish", done, 40, 0.3)
        eq({i: (r[1], r[2]) for i, r in rows.items()},
           {i: ("succeeded", rescuer_id) for i in jobs9}, "status and runner of each job")
        took = time.monotonic() - t_kill
        true(took >= 4 + 6 - 1.5, "answered %.1f s after the kill: before the 4 s lease and "
             "a 6 s call could pass" % took)
        true(log_lines(rescuer.log_text(), "requeued"), "the rescuer's log has no 'requeued'")
    with t("SIGKILL: each job answered exactly once (one out message, attempts 1, two calls)"):
        problems = []
        for jid, chat in jobs9.items():
            outs = wk9.out_messages(chat, jid)
            j = wk9.job(jid)
            if len(outs) != 1 or j["attempts"] != 1 or len(j["attemptsLog"]) != 1:
                problems.append("%s: %d out messages, attempts %d, log %r"
                                % (jid, len(outs), j["attempts"], attempts_summary(j)))
        eq(problems, [], "jobs")
        eq(len(calls_with(s, s9)), 6, "calls (3 by the victim, 3 by the rescuer)")
        time.sleep(1)
        eq(int(s.sql("SELECT COUNT(*) FROM messages WHERE workspace_id = ? AND "
                     "direction = 'out'", wk9.id)[0][0]), 3, "out messages in the workspace")
    with t("rescuer: SIGTERM, exit 0"):
        rescuer.kill(signal.SIGTERM)
        eq(rescuer.wait(20), 0, "exit status")

    # ================================================================ phase 4: SIGTERM drain
    with t.setup("setup: the drainer runner (drain 4 s) with 3 calls of 2 s and one of 12 s "
                 "in flight"):
        drainer = s.start_runner("drainer", env={"KEYRELAY_RUNNER_DRAIN_SECONDS": "4"})
        did = runner_id_of(s, drainer.pid)
        wd = Ws(s, admin, "drain")
        (kd, sd), = wd.add_keys("anthropic", [("delay", {"delay_ms": 2000})])
        (kl, sl), = wd.add_keys("openai", [("delay", {"delay_ms": 12000, "times": 1})])
        wd.providers("anthropic")
        short = {}
        for i in range(3):
            chat = wd.chat()
            short[wd.say(chat, "short " + token())["id"]] = chat
        chat_l = wd.chat()
        r = admin.post(wd.base + "/jobs", json={"type": "task", "input": "long " + token(),
                                                "chatId": chat_l, "provider": "openai"})
        expect(202, r, "long job")
        long_id = r.json["id"]
        all_ids = list(short) + [long_id]
        wait_for("the 4 jobs to run on the drainer", lambda: all(
            r[1] == "running" and r[2] == did for r in job_rows(s, all_ids).values()),
            15, 0.1)
        wait_for("the 4 calls to reach the stub",
                 lambda: len(calls_with(s, sd)) >= 3 and len(calls_with(s, sl)) >= 1, 10)
    with t("SIGTERM with calls in flight: the runner exits 0 within drain_seconds"):
        t_term = time.monotonic()
        drainer.kill(signal.SIGTERM)
        rc = drainer.wait(15)
        took = time.monotonic() - t_term
        eq(rc, 0, "exit status")
        true(took <= 4 + 2.5, "exited %.1f s after SIGTERM (drain_seconds 4)" % took)
    with t("SIGTERM: the calls in hand were finished: the short jobs succeeded, by the "
           "drainer"):
        rows = job_rows(s, list(short))
        eq({i: (r[1], r[2]) for i, r in rows.items()}, {i: ("succeeded", did) for i in short},
           "status and runner")
        for jid, chat in short.items():
            eq(len(wd.out_messages(chat, jid)), 1, "out messages of %s" % jid)
    with t("SIGTERM: the call longer than the drain window was handed back (queued, no "
           "lease, no answer)"):
        row = job_rows(s, [long_id])[long_id]
        eq((row[1], row[3]), ("queued", None), "status, lease_token of the long job")
        eq(wd.out_messages(chat_l, long_id), [], "out messages of the long job")
        true(log_lines(drainer.log_text(), "handing back 1 job"),
             "the drainer's log does not say it handed back 1 job")
        rr = s.sql("SELECT stopped_at FROM runners WHERE id = ?", did)
        true(rr and rr[0][0], "the drainer is not marked stopped: %r" % rr)
    with t("SIGTERM: the hand-back is announced (the job's last event says queued)"):
        evs = wd.events(long_id)
        last = evs[-1] if evs else None
        true(last is not None and last[2].get("job", {}).get("status") == "queued",
             "events of the handed-back job: %r" % [(e[1], e[2].get("job", {}).get("status"))
                                                   for e in evs])
    with t("SIGTERM: another runner answers the handed-back job exactly once"):
        s.start_service("runner")
        j = wd.wait(long_id, timeout=30)
        eq(j["status"], "succeeded", "status (error %r)" % j.get("error"))
        eq(len(wd.out_messages(chat_l, long_id)), 1, "out messages")
        eq((j["attempts"], len(calls_with(s, sl))), (1, 2),
           "attempts, calls (the drained one and the answered one)")

    # ================================================================ phase 5: timeout
    with t.setup("setup: a runner with a 2 s attempt timeout; a call that takes 5 s once"):
        for p in s.stop_service("runner"):
            raise SetupError(p)
        tor = s.start_runner("timeout", env={"KEYRELAY_RUNNER_ATTEMPT_TIMEOUT_SECONDS": "2"})
        runner_id_of(s, tor.pid)
        wto = Ws(s, admin, "timeout")
        (kto2, sto2), = wto.add_keys("openai", [("delay", {"delay_ms": 5000, "times": 1})])
        wto.providers("openai")
        chat_to = wto.chat()
        sys_to = "sys-" + rnd(8)
        in_to = "slow " + token()
        job_to = wto.say(chat_to, in_to, system=sys_to)
    with t("attempt timeout: the slow call times out (transient), the retry answers"):
        j = wto.wait(job_to["id"], timeout=30)
        eq(j["status"], "succeeded", "status (error %r, log %r)"
           % (j.get("error"), attempts_summary(j)))
        log = j["attemptsLog"]
        eq([(a["outcome"], a["httpStatus"]) for a in log], [("transient", None), ("ok", 200)],
           "attemptsLog")
        took = (parse_time(log[0]["finishedAt"]) - parse_time(log[0]["startedAt"])).total_seconds()
        true(1.8 <= took <= 4, "the timed-out attempt lasted %.2f s (timeout 2 s)" % took)
        true("timed out" in (log[0]["error"] or ""), "attempt error %r" % log[0]["error"])
        eq(len(wto.out_messages(chat_to, job_to["id"])), 1, "out messages")
    with t("attempt timeout: the retry sent the same input and system prompt"):
        calls = calls_with(s, sto2)
        eq(len(calls), 2, "calls")
        for c in calls:
            dump = json.dumps(c["body"])
            true(in_to in dump and sys_to in dump, "lost input or system prompt: %s"
                 % dump[:600])
    with t("timeout runner: SIGTERM, exit 0"):
        tor.kill(signal.SIGTERM)
        eq(tor.wait(20), 0, "exit status")

    # ================================================================ phase 6: leases held
    with t.setup("setup: a runner busy with a 12 s call, and a running job under its id "
                 "that it does not hold (as after a failure it could not record)"):
        holder = s.start_runner("holder")
        holder_id = runner_id_of(s, holder.pid)
        wh = Ws(s, admin, "holder")
        wh.add_keys("anthropic", [("delay", {"delay_ms": 12000})])
        wh.providers("anthropic")
        slow = wh.task("slow " + token())["id"]
        wait_for("the slow job to run on the holder",
                 lambda: tuple(job_rows(s, [slow])[slow][1:3]) == ("running", holder_id), 15, 0.1)
        run_at = (utcnow() + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        orphan = wto.task("orphan " + token(), runAt=run_at)["id"]
        s.sql("UPDATE jobs SET status = 'running', runner_id = ?, lease_token = ?, "
              "lease_expires_at = NOW(3) + INTERVAL 2 SECOND, run_at = NOW(3), "
              "started_at = NOW(3) WHERE id = ?", holder_id, "orphan-" + rnd(16), orphan)
        # and one whose runner died after counting its last attempt, before failing it
        spent_in = "spent " + token()
        spent = wto.task(spent_in, runAt=run_at, maxAttempts=2)["id"]
        s.sql("UPDATE jobs SET status = 'running', runner_id = ?, lease_token = ?, "
              "lease_expires_at = NOW(3) + INTERVAL 2 SECOND, run_at = NOW(3), attempts = 2, "
              "started_at = NOW(3) WHERE id = ?", holder_id, "spent-" + rnd(16), spent)
        # and one lost by its runner twice before (a job whose call stops runners), and one
        # lost once
        poison_in, lost_in = "poison " + token(), "lost " + token()
        poison = wto.task(poison_in, runAt=run_at)["id"]
        lost = wto.task(lost_in, runAt=run_at)["id"]
        # and one lost twice that now records a failed attempt (overloaded once): the count
        # is of losses in a row, so that resets it
        wz = Ws(s, admin, "rescues")
        wz.add_keys("openai", [("overloaded", {"times": 1})])
        wz.providers("openai")
        mended = wz.task("mended " + token(), runAt=run_at)["id"]
        s.sql("UPDATE jobs SET rescues = 2, run_at = NOW(3) WHERE id = ?", mended)
        for jid, rescues in ((poison, 2), (lost, 1)):
            s.sql("UPDATE jobs SET status = 'running', runner_id = ?, lease_token = ?, "
                  "lease_expires_at = NOW(3) + INTERVAL 2 SECOND, run_at = NOW(3), "
                  "rescues = ?, started_at = NOW(3) WHERE id = ?", holder_id,
                  "lost-" + rnd(16), rescues, jid)
    with t("the heartbeat extends only the leases the runner holds: the orphan's lease "
           "expires, the job is rescued and answered while the slow call goes on"):
        j = wto.wait(orphan, timeout=11)
        eq((j["status"], j["attempts"]), ("succeeded", 1), "status, attempts (error %r)"
           % j.get("error"))
        eq(tuple(job_rows(s, [slow])[slow][1:3]), ("running", holder_id),
           "the slow job, still in its call (so the heartbeat was extending leases)")
        true(log_lines(holder.log_text(), "requeued"), "the holder's log has no 'requeued'")
    with t("a job rescued at its last attempt fails instead of being called again"):
        j = wto.wait(spent, timeout=11)
        eq((j["status"], j["attempts"]), ("failed", 2), "status, attempts")
        true("maxAttempts" in (j.get("error") or ""), "error %r" % j.get("error"))
        eq([c for c in calls_with(s, sto2) if spent_in in json.dumps(c["body"])], [],
           "calls with its input")
        eq(len(wto.events(spent, "job_failed")), 1, "job_failed events")
    with t("a job lost by its runner a third time fails instead of stopping more runners; "
           "one lost once is queued again and answered"):
        j = wto.wait(poison, timeout=11)
        eq((j["status"], j["attempts"]), ("failed", 0), "status, attempts")
        true("stopped answering in 3 runs" in (j.get("error") or ""), "error %r"
             % j.get("error"))
        eq([c for c in calls_with(s, sto2) if poison_in in json.dumps(c["body"])], [],
           "calls with its input")
        j = wto.wait(lost, timeout=11)
        eq((j["status"], j["attempts"], s.sql("SELECT rescues FROM jobs WHERE id = ?",
           lost)[0][0]), ("succeeded", 1, "2"), "status, attempts, rescues")
    with t("a job lost twice that then records a failed attempt counts its losses afresh"):
        j = wz.wait(mended, timeout=20)
        eq((j["status"], [a["outcome"] for a in j["attemptsLog"]],
            s.sql("SELECT rescues FROM jobs WHERE id = ?", mended)[0][0]),
           ("succeeded", ["transient", "ok"], "0"), "status, attempts, rescues")
    with t("retry of the job failed for its rescues: counted afresh, answered"):
        expect(202, wto.admin.post(wto.base + "/jobs/%s/retry" % poison), "POST retry")
        eq(s.sql("SELECT rescues FROM jobs WHERE id = ?", poison)[0][0], "0", "rescues")
        j = wto.wait(poison, timeout=11)
        eq((j["status"], j["attempts"]), ("succeeded", 1), "status, attempts (error %r)"
           % j.get("error"))
    with t("the slow job's lease was kept alive past its 4 s and it is answered once"):
        j = wh.wait(slow, timeout=30)
        eq((j["status"], j["attempts"]), ("succeeded", 1), "status, attempts (error %r)"
           % j.get("error"))
    with t("holder runner: SIGTERM, exit 0"):
        holder.kill(signal.SIGTERM)
        eq(holder.wait(20), 0, "exit status")

    # ================================================================ phase 8: an idle runner
    with t.setup("setup: one runner, nothing due"):
        idler = s.start_runner("idle")
        runner_id_of(s, idler.pid)
        wait_for("no job queued, running or retrying", lambda: int(s.sql(
            "SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running', 'retrying')")[0][0])
            == 0, 30, 0.2)
        time.sleep(1)                   # claims that find nothing lengthen the pause
    with t("an idle runner backs off: under 25 statements a second on the whole stack (a "
           "claim every 20 ms alone would be 50)"):
        def executed():
            return int(s.sql("SHOW GLOBAL STATUS LIKE 'Com_stmt_execute'")[0][1])
        before, t0 = executed(), time.monotonic()
        time.sleep(4)
        rate = (executed() - before) / (time.monotonic() - t0)
        true(rate < 25, "%.1f prepared statements a second while idle" % rate)
    with t("after the idle time, a new job is claimed and answered"):
        wi = Ws(s, admin, "idle")
        wi.add_keys("anthropic", [("ok", {})])
        wi.providers("anthropic")
        j = wi.wait(wi.task("after the quiet " + token())["id"])
        eq(j["status"], "succeeded", "status (error %r)" % j.get("error"))
    with t("idle runner: SIGTERM, exit 0"):
        idler.kill(signal.SIGTERM)
        eq(idler.wait(20), 0, "exit status")

    # ================================================================ phase 9: claims ahead
    with t.setup("setup: 20 jobs calling a stub that answers after 8 s, one runner with "
                 "8 slots"):
        ahr = s.start_runner("ahead")
        ahr_id = runner_id_of(s, ahr.pid)
        wa = Ws(s, admin, "ahead")
        ((_, sa),) = wa.add_keys("anthropic", [("delay", {"delay_ms": 8000})])
        wa.providers("anthropic")
        ahead_ids = [wa.task("ahead %d %s" % (i, token()))["id"] for i in range(20)]
        wait_for("8 calls at the stub", lambda: len(calls_with(s, sa)) >= 8, 15)

        def claimed():
            rows = job_rows(s, ahead_ids).values()
            return sum(tuple(r[1:3]) == ("running", ahr_id) for r in rows) >= 16
        wait_for("16 of the jobs to be claimed", claimed, 10, 0.1)
    with t("the runner claims 8 jobs ahead (as many as its 8 slots), leaves 4 queued, and "
           "calls only 8 at once"):
        time.sleep(1)
        eq(len(calls_with(s, sa)), 8, "calls at the stub")
        eq(sorted(r[1] for r in job_rows(s, ahead_ids).values()),
           ["queued"] * 4 + ["running"] * 16, "statuses of the 20 jobs")
    with t("SIGTERM: the jobs claimed ahead and the calls past the drain window are handed "
           "back (queued, no lease, no attempt)"):
        ahr.kill(signal.SIGTERM)
        eq(ahr.wait(20), 0, "exit status")
        rows = job_rows(s, ahead_ids)
        eq(sorted((r[1], r[3], int(r[4])) for r in rows.values()), [("queued", None, 0)] * 20,
           "status, lease_token, attempts of the 20 jobs")
        true(log_lines(ahr.log_text(), "handing back 8 job(s) claimed ahead"),
             "the log does not say it handed back the 8 jobs claimed ahead")
        true(log_lines(ahr.log_text(), "handing back 8 job(s)"),
             "the log does not say it handed back the 8 calls")

    with t("no sanitizer report in any runner's log"):
        eq(s.sanitizer_reports(), [], "sanitizer reports")


def wk_events_all(ws):
    rows = ws.s.sql("SELECT seq, type FROM events WHERE workspace_id = ? ORDER BY seq", ws.id)
    return [(int(a), b) for a, b in rows]


def attempts_summary_log(log):
    return [(a["attempt"], a["provider"], a["outcome"], a["startedAt"], a["finishedAt"])
            for a in log]


def _field(spec, lo, hi):
    out = set()
    for part in spec.split(","):
        step = 1
        if "/" in part:
            part, st = part.split("/")
            step = int(st)
        if part == "*":
            a, b = lo, hi
        elif "-" in part:
            a, b = map(int, part.split("-"))
        else:
            a = b = int(part)
        out.update(range(a, b + 1, step))
    return out


def next_slot(cron, tz, after):
    """The first minute strictly after `after` (UTC) matching a simple cron in zone tz
    (minute, hour, day of month, month, day of week; '*', lists, ranges, steps)."""
    mi, ho, dom, mon, dow = cron.split()
    mins, hours = _field(mi, 0, 59), _field(ho, 0, 23)
    doms, mons = _field(dom, 1, 31), _field(mon, 1, 12)
    dows = {d % 7 for d in _field(dow, 0, 7)}
    zone = zoneinfo.ZoneInfo(tz)
    t = after.replace(second=0, microsecond=0) + datetime.timedelta(minutes=1)
    for _ in range(8 * 24 * 60 + 1):
        lt = t.astimezone(zone)
        if (lt.minute in mins and lt.hour in hours and lt.day in doms and lt.month in mons
                and (lt.isoweekday() % 7) in dows):
            return t
        t += datetime.timedelta(minutes=1)
    raise CheckError("no slot of %r within 8 days" % cron)


if __name__ == "__main__":
    run("runner", body)
