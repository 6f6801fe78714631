#!/usr/bin/env python3
"""Turns the per-run JSON lines of collect.py into the figures of docs/benchmarks.md."""

import argparse
import json
import platform
import statistics
import sys
import time


def figures(run):
    ms = run["models"]
    delays = sum(m["delay_s"] for m in ms)
    boot = ms[-1]["healthy"] - ms[0]["unit_start"]
    # The moment the next model may start: its gate opening (the prestart chain), or its unit
    # starting (the older chain, where the container started only then).
    gaps_unit = [(b.get("released") or b["unit_start"]) - a["healthy"] for a, b in zip(ms, ms[1:])]
    gaps_load = [b["loading_started"] - a["healthy"] for a, b in zip(ms, ms[1:])]
    detect = [m["unit_active"] - m["healthy"] for m in ms]
    container = [m["loading_started"] - m["unit_start"] for m in ms]
    ordered = all(b["loading_started"] > a["healthy"] for a, b in zip(ms, ms[1:]))
    return {
        "sum_delays_s": delays,
        "boot_s": boot,
        "ratio": boot / delays,
        "play_wall_s": run["play_end"] - run["play_start"],
        "gap_healthy_to_next_start_s": gaps_unit,
        "next_container_started_before_healthy_s": [a["healthy"] - b["container_started"] for a, b in zip(ms, ms[1:])
                                                    if "container_started" in b],
        "gap_healthy_to_next_loading_s": gaps_load,
        "healthy_to_unit_active_s": detect,
        "unit_start_to_loading_s": container,
        "ordered": ordered,
        "loadavg_after": run.get("loadavg_after", []),
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--command", required=True)
    p.add_argument("--json", required=True)
    p.add_argument("--floor", default="{}", help="JSON of floor.py")
    a = p.parse_args()
    runs = [json.loads(line) for line in sys.stdin if line.strip()]
    figs = [figures(r) for r in runs]
    floor = json.loads(a.floor)
    with open(a.json, "w") as f:
        json.dump({"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": platform.node(),
                   "command": a.command, "runs": runs, "figures": figs,
                   "container_start_floor": floor}, f, indent=1)
    print("command: %s" % a.command)
    print("| run | boot (s) | sum of delays (s) | ratio | healthy -> next gate open (s) | "
          "healthy -> next model loading (s) | next container up before that (s) | first unit start -> loading (s) | "
          "ansible-playbook wall (s) | in order | load avg after |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for i, f in enumerate(figs, 1):
        print("| %d | %.2f | %.0f | %.3f | %s | %s | %s | %.3f | %.1f | %s | %s |" % (
            i, f["boot_s"], f["sum_delays_s"], f["ratio"],
            ", ".join("%.3f" % g for g in f["gap_healthy_to_next_start_s"]),
            ", ".join("%.3f" % g for g in f["gap_healthy_to_next_loading_s"]),
            ", ".join("%.2f" % g for g in f["next_container_started_before_healthy_s"]),
            f["unit_start_to_loading_s"][0],
            f["play_wall_s"], "yes" if f["ordered"] else "NO", " ".join("%.1f" % x for x in f["loadavg_after"])))
    ratios = [f["ratio"] for f in figs]
    gaps = [g for f in figs for g in f["gap_healthy_to_next_start_s"]]
    loads = [g for f in figs for g in f["gap_healthy_to_next_loading_s"]]
    print()
    print("ratio median %.3f, worst %.3f; healthy -> next gate open median %.3f s, worst %.3f s; "
          "healthy -> next model loading median %.3f s, worst %.3f s" % (
              statistics.median(ratios), max(ratios), statistics.median(gaps), max(gaps),
              statistics.median(loads), max(loads)))
    if floor:
        print("container runtime alone (docker start -> stand-in loading, 5 tries): median %.3f s, %s" % (
            floor["median_s"], ", ".join("%.3f" % x for x in floor["docker_start_to_loading_s"])))


if __name__ == "__main__":
    main()
