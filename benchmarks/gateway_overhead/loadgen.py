#!/usr/bin/env python3
"""Closed-loop HTTP load generator for the gateway-overhead benchmark (stdlib only).

Sends the same chat-completion request, over persistent HTTP/1.1 connections, to one
OpenAI-compatible endpoint and reports latency percentiles and throughput as JSON.

    python3 loadgen.py --url http://127.0.0.1:4001/v1/chat/completions --model NAME \
        [--key sk-...] --connections 1 --requests 2000 [--warmup 200]
    python3 loadgen.py ... --connections 16 --duration 20

Each connection sends its next request only after the previous answer is read in full
(closed loop), so `--connections` is the number of requests in flight. A request that does
not answer 200 with a JSON body, or whose connection breaks, counts as failed; the generator
reconnects and goes on, so failures are counted, never hidden. With --retry-stale, a request
whose *reused* keep-alive connection breaks before any byte of the answer is sent once more
on a new connection and counted apart (stale_retries), as ordinary HTTP clients do. Written with asyncio streams
and a hand-rolled HTTP/1.1 client so that the client costs as little CPU as possible on the
same small machine as the server.
"""

import argparse
import asyncio
import json
import sys
import time
from urllib.parse import urlsplit


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, int(round(q / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


class StaleConnection(ConnectionError):
    """A reused keep-alive connection broke before any byte of the answer arrived."""


class Conn:
    def __init__(self, host, port, request):
        self.host, self.port, self.request = host, port, request
        self.reader = self.writer = None
        self.answered = 0  # answers read on the current connection

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None
        self.answered = 0

    async def one(self):
        """One request/response; returns the status code. Raises on a broken connection."""
        if self.writer is None:
            await self.open()
        reused = self.answered > 0
        try:
            self.writer.write(self.request)
            await self.writer.drain()
            status_line = await self.reader.readline()
        except (OSError, ConnectionError) as exc:
            if reused:
                raise StaleConnection(str(exc)) from exc
            raise
        if not status_line:
            if reused:
                raise StaleConnection("reused connection closed before the status line")
            raise ConnectionError("connection closed before the status line")
        status = int(status_line.split(b" ", 2)[1])
        length, chunked, close = None, False, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            value = value.strip()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and value.lower() == b"close":
                close = True
        if chunked:
            body = b""
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readline()
                    break
                body += await self.reader.readexactly(size + 2)
        elif length is not None:
            body = await self.reader.readexactly(length)
        else:
            body = await self.reader.read()
            close = True
        self.answered += 1
        if close:
            self.close()
        if status == 200 and not body.lstrip().startswith(b"{"):
            raise ValueError("answer is not a JSON object")
        return status


async def worker(conn, stop_at, limit, latencies, stats, retry_stale=False):
    while True:
        if stop_at is not None and time.perf_counter() >= stop_at:
            return
        if limit is not None:
            if stats["started"] >= limit:
                return
            stats["started"] += 1
        t0 = time.perf_counter()
        try:
            try:
                status = await conn.one()
            except StaleConnection:
                # The server closed an idle keep-alive connection (a recycled worker) just as
                # this request went out: nothing of it was answered, so send it again on a new
                # connection, as HTTP clients do (RFC 9112 section 9.3.1; the OpenAI SDKs retry).
                conn.close()
                if not retry_stale:
                    raise
                stats["stale_retries"] += 1
                status = await conn.one()
        except (OSError, ConnectionError, ValueError, asyncio.IncompleteReadError, IndexError) as exc:
            conn.close()
            stats["failed"] += 1
            stats["errors"][type(exc).__name__] = stats["errors"].get(type(exc).__name__, 0) + 1
            continue
        dt = time.perf_counter() - t0
        if status == 200:
            latencies.append(dt)
        else:
            stats["failed"] += 1
            stats["errors"]["HTTP %d" % status] = stats["errors"].get("HTTP %d" % status, 0) + 1


async def run(args):
    u = urlsplit(args.url)
    body = json.dumps({
        "model": args.model,
        "messages": [{"role": "user", "content": "Say hello in five words."}],
        "max_tokens": 16,
    }).encode()
    headers = [
        "POST %s HTTP/1.1" % (u.path or "/"),
        "Host: %s" % u.netloc,
        "Content-Type: application/json",
        "Content-Length: %d" % len(body),
        "Connection: keep-alive",
    ]
    if args.key:
        headers.append("Authorization: Bearer %s" % args.key)
    request = ("\r\n".join(headers) + "\r\n\r\n").encode() + body
    conns = [Conn(u.hostname, u.port or 80, request) for _ in range(args.connections)]

    if args.warmup:
        warm = {"started": 0, "failed": 0, "errors": {}, "stale_retries": 0}
        await asyncio.gather(*(worker(c, None, args.warmup, [], warm) for c in conns))

    latencies, stats = [], {"started": 0, "failed": 0, "errors": {}, "stale_retries": 0}
    stop_at = time.perf_counter() + args.duration if args.duration else None
    t0 = time.perf_counter()
    await asyncio.gather(*(worker(c, stop_at, args.requests, latencies, stats, args.retry_stale) for c in conns))
    elapsed = time.perf_counter() - t0
    for c in conns:
        c.close()
    latencies.sort()

    def ms(v):
        return None if v is None else round(v * 1000, 2)

    return {
        "url": args.url,
        "connections": args.connections,
        "ok": len(latencies),
        "failed": stats["failed"],
        "errors": stats["errors"],
        "stale_retries": stats["stale_retries"],
        "seconds": round(elapsed, 3),
        "rps": round(len(latencies) / elapsed, 1) if elapsed > 0 else None,
        "p50_ms": ms(percentile(latencies, 50)),
        "p90_ms": ms(percentile(latencies, 90)),
        "p99_ms": ms(percentile(latencies, 99)),
        "max_ms": ms(latencies[-1] if latencies else None),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="full URL of the chat-completions endpoint")
    p.add_argument("--model", required=True, help="model name to put in the request")
    p.add_argument("--key", default="", help="bearer key (the gateway's master key)")
    p.add_argument("--connections", type=int, default=1, help="persistent connections, one request in flight each")
    p.add_argument("--requests", type=int, default=None, help="stop after this many requests")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--retry-stale", action="store_true",
                   help="resend once, on a new connection, a request whose reused keep-alive connection broke "
                        "before any answer (counted as stale_retries, not as failed)")
    p.add_argument("--warmup", type=int, default=100, help="requests sent and not measured first")
    args = p.parse_args()
    if args.requests is None and args.duration is None:
        p.error("give --requests or --duration")
    result = asyncio.run(run(args))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
