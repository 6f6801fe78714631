#!/usr/bin/env python3
"""Summarize client.py JSON lines: counts, errors, outage window (first to last failure) and
the first success after the last failure, relative to an event time (--event, epoch seconds).
    python3 summarize.py client.jsonl [--event 1790000000.123]
"""
import argparse
import collections
import json


def main():
    p = argparse.ArgumentParser()
    p.add_argument("files", nargs="+")
    p.add_argument("--event", type=float, default=None, help="epoch seconds of the fault")
    a = p.parse_args()
    for path in a.files:
        recs = [json.loads(x) for x in open(path) if x.strip()]
        recs = [r for r in recs if not r.get("summary")]
        recs.sort(key=lambda r: r["t"])
        bad = [r for r in recs if r.get("error")]
        errors = collections.Counter((r["error"][:70] + (" [reused conn]" if r.get("stale") else "")) for r in bad)
        ev = a.event

        def rel(t, ev=ev):
            return "%+.2f s" % (t - ev) if ev else "%.2f" % t
        print("%s: requests %d, ok %d, failed %d (of which no answer on a reused connection: %d)" % (
            path, len(recs), len(recs) - len(bad), len(bad), sum(1 for r in bad if r.get("stale"))))
        for e, n in errors.most_common(8):
            print("   %5d  %s" % (n, e))
        if bad:
            last_bad = bad[-1]
            after = [r for r in recs if r["t"] > last_bad["t"] and not r.get("error")]
            print("   first failure sent at %s, last failure sent at %s" % (rel(bad[0]["t"]), rel(last_bad["t"])))
            if after:
                print("   first success after it: sent %s, answered %s" % (rel(after[0]["t"]), rel(after[0]["t"] + after[0]["dt"])))
        lat = sorted(r["dt"] for r in recs if not r.get("error"))
        if lat:
            print("   ok latency p50 %.1f ms, max %.1f ms" % (lat[len(lat) // 2] * 1000, lat[-1] * 1000))


if __name__ == "__main__":
    main()
