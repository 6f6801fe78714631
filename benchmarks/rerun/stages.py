#!/usr/bin/env python3
"""Time per play (stage) of an ansible-playbook log written with the profile_tasks callback.

profile_tasks prints, under every task banner, a line ending in the cumulative run time
(`... (0:00:00.123)       0:00:05.432 ****`). A play's time is the cumulative time at the first
task of the next play minus the one at its own first task (the last play ends at the final
cumulative time in the summary).
    python3 stages.py run1.log
"""
import re
import sys

STAMP = re.compile(r"\(\d+:\d\d:\d\d\.\d+\)\s+(\d+):(\d\d):(\d\d\.\d+)")


def secs(m):
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))


def main(path):
    plays, current, last = [], None, 0.0
    for line in open(path, encoding="utf-8", errors="replace"):
        if line.startswith("PLAY [") and not line.startswith("PLAY RECAP"):
            current = {"name": line[6:].split("]")[0], "start": None}
            plays.append(current)
            continue
        m = STAMP.search(line)
        if m:
            last = secs(m)
            if current is not None and current["start"] is None:
                current["start"] = last
    starts = [p["start"] for p in plays] + [last]
    for i, p in enumerate(plays):
        if p["start"] is None:
            continue
        end = next((s for s in starts[i + 1:] if s is not None), last)
        print("  %-62s %7.1f s" % (p["name"], end - p["start"]))
    print("  %-62s %7.1f s" % ("total (profile_tasks)", last))


if __name__ == "__main__":
    main(sys.argv[1])
