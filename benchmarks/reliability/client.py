#!/usr/bin/env python3
"""Bounded request client for the reliability tests (stdlib only, loopback only).

Sends chat completions through the gateway and writes one JSON line per request
(`t` = epoch seconds at send, `dt` = seconds, `status`, `error`, `conn_reused`), then a summary
line (`"summary": true`). Each of --connections threads keeps one persistent HTTP/1.1 connection
and sends its next request --interval seconds after the previous answer (0: closed loop). It stops
after --duration seconds or --requests requests in all, whichever comes first.

No retry of any kind: a request whose connection breaks, times out, or that answers anything but
200 with a JSON body is a failed request. A reused keep-alive connection that closes or resets with no
answer is labelled `stale`: either an idle connection the server closed as the request went out
(HTTP clients resend those) or a request in flight on a server process that died (not safe to resend).

    python3 client.py --url http://127.0.0.1:4001/v1/chat/completions --key sk-... \
        --model qwen2.5-14b-instruct --interval 0.1 --duration 60 > trickle.jsonl
"""
import argparse
import http.client
import json
import sys
import threading
import time
from urllib.parse import urlsplit


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default="http://127.0.0.1:4001/v1/chat/completions")
    p.add_argument("--key", default="")
    p.add_argument("--model", required=True)
    p.add_argument("--connections", type=int, default=1)
    p.add_argument("--interval", type=float, default=0.1, help="seconds between a connection's requests")
    p.add_argument("--duration", type=float, required=True, help="stop after this many seconds (bound)")
    p.add_argument("--requests", type=int, default=None, help="stop after this many requests in all")
    p.add_argument("--timeout", type=float, default=30.0, help="per-request socket timeout")
    a = p.parse_args()
    u = urlsplit(a.url)
    if u.hostname not in ("127.0.0.1", "localhost", "::1"):
        p.error("loopback only")
    body = json.dumps({"model": a.model, "max_tokens": 8,
                       "messages": [{"role": "user", "content": "ping"}]}).encode()
    headers = {"Content-Type": "application/json"}
    if a.key:
        headers["Authorization"] = "Bearer " + a.key
    lock = threading.Lock()
    state = {"started": 0}
    stop_at = time.time() + a.duration
    out = sys.stdout

    def worker(n):
        conn, answered = None, 0
        while time.time() < stop_at:
            with lock:
                if a.requests is not None and state["started"] >= a.requests:
                    return
                state["started"] += 1
            if conn is None:
                conn, answered = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=a.timeout), 0
            reused = answered > 0
            t0 = time.time()
            rec = {"t": round(t0, 4), "conn": n, "conn_reused": reused, "model": a.model}
            try:
                conn.request("POST", u.path, body=body, headers=headers)
                r = conn.getresponse()
                data = r.read()
                rec["status"] = r.status
                answered += 1
                if r.status != 200:
                    rec["error"] = "HTTP %d %s" % (r.status, data[:160].decode("utf-8", "replace"))
                elif not data.lstrip().startswith(b"{"):
                    rec["error"] = "not JSON"
                if r.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                rec["status"] = None
                rec["error"] = "%s: %s" % (type(exc).__name__, exc)
                if reused and isinstance(exc, (http.client.RemoteDisconnected, ConnectionResetError,
                                               BrokenPipeError)):
                    rec["stale"] = True
                conn.close()
                conn = None
            rec["dt"] = round(time.time() - t0, 4)
            with lock:
                out.write(json.dumps(rec) + "\n")
                out.flush()
            if a.interval:
                time.sleep(a.interval)
        if conn is not None:
            conn.close()

    t_start = time.time()
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(a.connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(a.duration + a.timeout + 5)
    out.write(json.dumps({"summary": True, "started": state["started"], "seconds": round(time.time() - t_start, 2)}) + "\n")


if __name__ == "__main__":
    main()
