#!/usr/bin/env python3
"""Runs inside the test host after a boot: reads the unit timestamps from systemd and the
stand-ins' own event lines from their containers, prints one JSON object."""

import argparse
import json
import os
import re
import subprocess
import time

EVENT_RE = re.compile(r"event=(\w+) t=([0-9.]+)")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--play-start", type=float, required=True)
    p.add_argument("--play-end", type=float, required=True)
    p.add_argument("--models", nargs="+", required=True, help="name:delay in boot order")
    a = p.parse_args()
    # systemd's monotonic timestamps, turned into wall-clock time on this (shared) kernel.
    offset = time.time() - time.clock_gettime(time.CLOCK_MONOTONIC)
    models = []
    for spec in a.models:
        name, delay = spec.split(":")
        unit = "multillm-model-%s.service" % name
        props = dict(line.split("=", 1) for line in subprocess.run(
            ["systemctl", "show", unit, "-p", "InactiveExitTimestampMonotonic", "-p", "ActiveEnterTimestampMonotonic"],
            capture_output=True, text=True, check=True).stdout.splitlines())
        logs = subprocess.run(["docker", "logs", "multillm-model-" + name], capture_output=True, text=True,
                              check=True)
        events = [(m.group(1), float(m.group(2))) for m in EVENT_RE.finditer(logs.stdout + logs.stderr)]
        started = [t for e, t in events if e == "loading_started" and t >= a.play_start]
        healthy = [t for e, t in events if e == "healthy" and t >= a.play_start]
        # The gate (model_stack's prestart): when the unit opened this model's gate, and when
        # Docker started its container (before the gate opened). Absent on the older chain.
        try:
            released = os.stat("/run/multillm-gate/%s/release" % name).st_mtime
        except OSError:
            released = None
        state = json.loads(subprocess.run(["docker", "inspect", "-f", "{{json .State}}", "multillm-model-" + name],
                                          capture_output=True, text=True, check=True).stdout)
        container_started = float(subprocess.run(["date", "-d", state["StartedAt"], "+%s.%N"],
                                                 capture_output=True, text=True, check=True).stdout)
        models.append({
            "released": released,
            "container_started": container_started,
            "name": name,
            "delay_s": float(delay),
            "unit_start": int(props["InactiveExitTimestampMonotonic"]) / 1e6 + offset,
            "unit_active": int(props["ActiveEnterTimestampMonotonic"]) / 1e6 + offset,
            "loading_started": started[-1],
            "healthy": healthy[-1],
        })
    with open("/proc/loadavg") as f:
        load = [float(x) for x in f.read().split()[:3]]
    print(json.dumps({"play_start": a.play_start, "play_end": a.play_end, "loadavg_after": load, "models": models}))


if __name__ == "__main__":
    main()
