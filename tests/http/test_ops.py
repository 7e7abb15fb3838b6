#!/usr/bin/env python3
"""Operations: /healthz, and /metrics (Prometheus text) through nginx from 127.0.0.1:
request counts by route and status, a latency histogram, a database error counter.

Runs against the shared stack ($KEYRELAY_TEST_STACK); adds one workspace and one job.
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import krstack  # noqa: E402
from krclient import (CheckError, Client, eq, expect, parse_prometheus, run,  # noqa: E402
                      true)

ROUTE_LABELS = ("route", "path", "handler", "endpoint")
STATUS_LABELS = ("status", "code", "status_code")
DB_ERROR_RE = re.compile(r"(db|database|mariadb|mysql|sql).*(error|fail)", re.I)


def family_type(types, name):
    """The # TYPE of a sample name (name itself, or without _total/_bucket/_sum/_count)."""
    if name in types:
        return types[name]
    for suffix in ("_total", "_bucket", "_sum", "_count", "_created"):
        if name.endswith(suffix) and name[:-len(suffix)] in types:
            return types[name[:-len(suffix)]]
    return None


def label_of(labels, names):
    for n in names:
        if n in labels:
            return labels[n]
    return None


def request_counters(samples, types):
    """Samples of counters labelled with a route and a status."""
    out = []
    for name, labels, value in samples:
        if family_type(types, name) != "counter":
            continue
        if label_of(labels, ROUTE_LABELS) is None or label_of(labels, STATUS_LABELS) is None:
            continue
        out.append((name, labels, value))
    return out


def count_for(counters, route_part, status):
    """Sum of request counters whose route contains route_part with the given status."""
    total = 0.0
    for _, labels, value in counters:
        if (route_part in label_of(labels, ROUTE_LABELS)
                and label_of(labels, STATUS_LABELS) == str(status)):
            total += value
    return total


def scrape(c):
    r = c.get("/metrics")
    expect(200, r, "GET /metrics")
    samples, types, problems = parse_prometheus(r.text)
    return r, samples, types, problems


def body(t):
    s = krstack.Stack.from_env()
    c = Client(s.base_url)

    # -- healthz --------------------------------------------------------------------------
    with t("GET /healthz: 200 {\"status\":\"ok\",\"db\":\"ok\"} as application/json"):
        r = c.get("/healthz")
        expect(200, r)
        eq(r.json, {"status": "ok", "db": "ok"}, "body")
        true(r.is_json(), "Content-Type %r" % r.content_type)

    with t("GET /healthz needs no authentication and sets no cookie"):
        r = Client(s.base_url).get("/healthz")
        expect(200, r)
        eq(r.header_all("Set-Cookie"), [], "Set-Cookie")

    # -- metrics ----------------------------------------------------------------------------
    with t("GET /metrics from 127.0.0.1: 200, Prometheus text format"):
        r, samples, types, problems = scrape(c)
        true(r.content_type.startswith("text/plain"), "Content-Type %r" % r.content_type)
        eq(problems, [], "unparsable lines")
        true(len(samples) > 0, "no samples")
        true(len(types) > 0, "no # TYPE lines")

    with t("/metrics has request counters labelled by route and status"):
        _, samples, types, _ = scrape(c)
        ctr = request_counters(samples, types)
        true(ctr, "no counter with labels %s and %s; families: %s"
             % ("/".join(ROUTE_LABELS), "/".join(STATUS_LABELS), sorted(types)))

    with t("request counters count by route and status (3 x 401 on /api/auth/me)"):
        _, samples, types, _ = scrape(c)
        before = count_for(request_counters(samples, types), "auth/me", 401)
        for _ in range(3):
            expect(401, Client(s.base_url).get("/api/auth/me"))
        _, samples, types, _ = scrape(c)
        ctr = request_counters(samples, types)
        after = count_for(ctr, "auth/me", 401)
        if after - before < 3:
            shown = ["%s%s %g" % (n, lb, v) for n, lb, v in ctr][:15]
            raise CheckError("auth/me 401 counter went %g -> %g; counters: %s"
                             % (before, after, shown))

    with t("the route label is the route pattern, not the raw path (no slugs in labels)"):
        slug = "metrics-probe-%d" % os.getpid()
        Client(s.base_url).get("/api/workspaces/%s/members" % slug)
        _, samples, types, _ = scrape(c)
        bad = [lb for _, lb, _ in request_counters(samples, types)
               if slug in label_of(lb, ROUTE_LABELS)]
        eq(bad, [], "route labels holding a concrete slug")

    with t("/metrics has a latency histogram (_bucket{le=...}, +Inf, _sum, _count)"):
        _, samples, types, _ = scrape(c)
        hists = sorted(n for n, ty in types.items() if ty == "histogram")
        true(hists, "no # TYPE ... histogram")
        buckets = [(n, lb, v) for n, lb, v in samples if n.endswith("_bucket") and "le" in lb]
        true(buckets, "no _bucket{le=...} samples")
        fam = buckets[0][0][:-len("_bucket")]
        names = {n for n, _, _ in samples}
        true(fam + "_sum" in names, "%s_sum missing" % fam)
        true(fam + "_count" in names, "%s_count missing" % fam)
        true(any(lb.get("le") == "+Inf" for n, lb, _ in buckets if n == fam + "_bucket"),
             "no le=\"+Inf\" bucket for %s" % fam)

    with t("histogram buckets are cumulative and +Inf equals _count"):
        _, samples, types, _ = scrape(c)
        series = {}
        counts = {}
        for n, lb, v in samples:
            if n.endswith("_bucket") and "le" in lb:
                key = (n[:-7], tuple(sorted((k, x) for k, x in lb.items() if k != "le")))
                series.setdefault(key, []).append((float(lb["le"]), v))
            elif n.endswith("_count"):
                counts[(n[:-6], tuple(sorted(lb.items())))] = v
        true(series, "no histogram series")
        for key, pts in series.items():
            pts.sort()
            vals = [v for _, v in pts]
            true(vals == sorted(vals), "%s: buckets not cumulative: %r" % (key, pts))
            true(pts[-1][0] == float("inf"), "%s: last bucket is not +Inf" % (key,))
            true(key in counts, "%s: no matching _count" % (key,))
            eq(pts[-1][1], counts[key], "%s: +Inf bucket vs _count" % (key,))

    with t("/metrics has a database error counter"):
        _, samples, types, _ = scrape(c)
        hits = [n for n, _, _ in samples if DB_ERROR_RE.search(n)
                and family_type(types, n) == "counter"]
        true(hits, "no counter named like db/database..error; families: %s" % sorted(types))

    with t("/metrics shows jobs by status, calls in flight, attempts and their latency"):
        def sample(samples, name, **labels):
            for n, lb, v in samples:
                if n == name and all(lb.get(k) == x for k, x in labels.items()):
                    return v
            return None
        _, before, _, _ = scrape(c)
        ok_before = sample(before, "keyrelay_attempts_5m", outcome="ok")
        done_before = sample(before, "keyrelay_jobs", status="succeeded")
        true(ok_before is not None and done_before is not None,
             "keyrelay_attempts_5m{outcome=ok} or keyrelay_jobs{status=succeeded} missing")
        true(sample(before, "keyrelay_runners") >= 1, "no live runner counted")
        true(sample(before, "keyrelay_runner_calls_in_flight") is not None, "no in-flight gauge")
        # One job answered by the stub moves the counts.
        admin = Client(s.base_url)
        admin.login(s.admin_email, s.admin_password)
        slug = "ops-" + os.urandom(4).hex()
        expect(201, admin.post("/api/workspaces", json={"slug": slug, "name": "ops"}))
        key = "sk-ant-api03-ops-" + os.urandom(8).hex()
        s.stub.set_key(key, "ok")
        expect(201, admin.post("/api/workspaces/%s/keys" % slug,
                               json={"provider": "anthropic", "keys": key}))
        job = admin.post("/api/workspaces/%s/jobs" % slug, json={"type": "task", "input": "x"})
        expect(202, job)
        for _ in range(100):
            st = admin.get("/api/workspaces/%s/jobs/%s" % (slug, job.json["id"])).json["status"]
            if st in ("succeeded", "failed"):
                break
            time.sleep(0.2)
        eq(st, "succeeded", "the job")
        _, after, _, _ = scrape(c)
        true(sample(after, "keyrelay_jobs", status="succeeded") >= done_before + 1,
             "keyrelay_jobs{status=succeeded} did not grow")
        true(sample(after, "keyrelay_attempts_5m", outcome="ok") >= ok_before + 1,
             "keyrelay_attempts_5m{outcome=ok} did not grow")
        true(sample(after, "keyrelay_attempt_latency_5m_seconds_count") >= 1,
             "no attempt in the latency histogram")

    with t("no sanitizer report or crash in the stack logs"):
        logs = s.log_text()
        for marker in ("AddressSanitizer", "runtime error:", "LeakSanitizer",
                       "Segmentation fault", "core dumped"):
            true(marker not in logs, "%r in the logs" % marker)


if __name__ == "__main__":
    run("ops", body)
