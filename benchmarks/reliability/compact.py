#!/usr/bin/env python3
"""Shrink raw results to small text files (run after summarize.py, which reads client.jsonl).

For every client*.jsonl under the given folders: keep the failed requests (the first and
last 200 when more) in <name>-failed.jsonl and per-second counts in <name>-per-second.txt (second since the first
request, ok, failed), then delete the full file. For every journal.txt: drop the access-log lines
of the health endpoints the pollers call 20 times a second (their count is kept in a last line).
    python3 compact.py benchmarks/results/reliability/<date>
"""
import collections
import json
import os
import sys


def client(path):
    recs = [json.loads(x) for x in open(path) if x.strip()]
    reqs = sorted((r for r in recs if not r.get("summary")), key=lambda r: r["t"])
    base = path[: -len(".jsonl")]
    failed = [r for r in reqs if r.get("error")]
    if len(failed) > 400:  # a fast-failing loop during an outage: the first and last 200 tell it
        failed = failed[:200] + [{"compact": "%d failed requests left out" % (len(failed) - 400)}] + failed[-200:]
    with open(base + "-failed.jsonl", "w") as f:
        for r in failed:
            f.write(json.dumps(r) + "\n")
        for r in recs:
            if r.get("summary"):
                f.write(json.dumps(r) + "\n")
    per = collections.OrderedDict()
    t0 = reqs[0]["t"] if reqs else 0
    for r in reqs:
        s = int(r["t"] - t0)
        ok, bad = per.get(s, (0, 0))
        per[s] = (ok + (0 if r.get("error") else 1), bad + (1 if r.get("error") else 0))
    with open(base + "-per-second.txt", "w") as f:
        f.write("# second since first request (epoch %.3f), ok, failed\n" % t0)
        for s, (ok, bad) in per.items():
            f.write("%d %d %d\n" % (s, ok, bad))
    os.remove(path)


def journal(path):
    lines = open(path, encoding="utf-8", errors="replace").readlines()
    keep = [x for x in lines if '"GET /health' not in x]
    if len(keep) != len(lines):
        keep.append("# compact.py: %d access-log lines of GET /health* removed\n" % (len(lines) - len(keep)))
        open(path, "w").writelines(keep)


for top in sys.argv[1:]:
    for d, _, files in os.walk(top):
        for name in files:
            p = os.path.join(d, name)
            if name.startswith("client") and name.endswith(".jsonl") and not name.endswith("-failed.jsonl"):
                client(p)
            elif name == "journal.txt":
                journal(p)
