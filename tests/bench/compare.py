#!/usr/bin/env python3
"""keyrelay-runner beside pg-boss and BullMQ, measured in the same sitting (runner.sh).

    compare.py --keyrelay RUN1.json [RUN2.json ...] --queues QUEUES.jsonl

Each --keyrelay file is one runner_bench.py --json output (its runs in order); the k-th line of
QUEUES.jsonl for a scenario and queue (tests/bench/queues.sh with QUEUES_JSON) is that queue's
run k. runner.sh runs the queues right after keyrelay's run of the same scenario, so run k of
each was measured seconds apart.
Scenarios a and b: wall time over the physical limit (lower is better); c: jobs/s (higher is
better). The aims are issue 4's.
"""

import argparse
import json
import statistics
from pathlib import Path

SCENARIOS = {
    "a": ("1 s stub, 5,000 jobs, 500 in flight: wall / limit (10 s)", "ratio", 1.04),
    "b": ("1 s stub, 20,000 jobs, 2,000 in flight: wall / limit (10 s)", "ratio", 1.08),
    "c": ("stub at once, 20,000 jobs, 64 in flight: jobs/s", "jobs_per_s", None),
}
QUEUES = (("pgboss", "pg-boss"), ("bullmq", "BullMQ"))


def figure(r, key):
    return "%.3f" % r[key] if key == "ratio" else "%.0f" % r[key]


def ahead(kr, ref, key):
    """How many times better keyrelay did than ref."""
    return ref[key] / kr[key] if key == "ratio" else kr[key] / ref[key]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keyrelay", nargs="+", required=True)
    ap.add_argument("--queues", required=True)
    args = ap.parse_args()

    kr = {}  # scenario -> [result per run]
    for f in args.keyrelay:
        for r in json.loads(Path(f).read_text()):
            if r.get("run") != "profile" and r["scenario"] in SCENARIOS:
                kr.setdefault(r["scenario"], []).append(r)
    ref = {}  # (scenario, queue) -> [row per run]
    qpath = Path(args.queues)
    for line in (qpath.read_text().splitlines() if qpath.exists() else []):
        row = json.loads(line)
        ref.setdefault((row["scenario"], row["queue"]), []).append(row)

    print()
    print("Same sitting: each scenario by keyrelay-runner, then at once by BullMQ and pg-boss "
          "(tests/bench/queues.sh), run by run")
    for sc, (title, key, aim) in SCENARIOS.items():
        if sc not in kr:
            continue
        print("  (%s) %s%s" % (sc, title, " (aim <= %.2f)" % aim if aim else
                                 " (aim: above both)"))
        ahead_of = {q: [] for q, _ in QUEUES}
        for k, r in enumerate(kr[sc]):
            parts = ["keyrelay %s (%.0f MB)" % (figure(r, key), r["peak_rss_mb"])]
            for q, label in QUEUES:
                rows = ref.get((sc, q), [])
                if k < len(rows) and rows[k]["completed"] == rows[k]["jobs"]:
                    x = ahead(r, rows[k], key)
                    ahead_of[q].append(x)
                    parts.append("%s %s (%.0f MB, keyrelay %.2fx)"
                                 % (label, figure(rows[k], key), rows[k]["peak_rss_mb"], x))
                else:
                    parts.append("%s not measured" % label)
            print("      run %d: %s" % (k + 1, ";  ".join(parts)))
        for q, label in QUEUES:
            if ahead_of[q]:
                print("      keyrelay ahead of %s by %.2fx (median of %d), %.2fx at least"
                      % (label, statistics.median(ahead_of[q]), len(ahead_of[q]),
                         min(ahead_of[q])))


if __name__ == "__main__":
    main()
