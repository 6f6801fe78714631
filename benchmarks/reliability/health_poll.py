#!/usr/bin/env python3
"""Runs INSIDE the lab host (piped to `docker exec -i multillm-lab python3 - ...`): polls each
URL every --interval s for --duration s and prints a line (epoch time, url, result) whenever a
URL's result changes. Loopback only; stops by itself.
"""
import sys
import time
import urllib.request

interval, duration, urls = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
last = {}
end = time.time() + duration
while time.time() < end:
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                res = str(r.status)
        except Exception as exc:  # noqa: BLE001 - any failure is a state to report
            res = getattr(exc, "code", None) and str(exc.code) or type(exc).__name__
        if last.get(url) != res:
            print("%.3f %s %s" % (time.time(), url, res), flush=True)
            last[url] = res
    time.sleep(interval)
