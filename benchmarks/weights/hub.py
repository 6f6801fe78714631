#!/usr/bin/env python3
# Copyright: llmops.multillm contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""A stand-in for the Hugging Face hub on loopback: serves folders as model repositories,
answering what huggingface_hub 2.x's snapshot_download asks (read in the vLLM image's copy,
huggingface_hub/_snapshot_download.py, hf_api.py, file_download.py):

  GET  /api/models/<repo>[/revision/<rev>]         -> {"id", "sha", "siblings"} (model_info, repo_info)
  GET  /api/models/<repo>/tree/<rev>[/<folder>]    -> [{"type": "file", "path", "size", "oid"}] (the
                                                      files under the folder, at any depth)
  HEAD /<repo>/resolve/<rev>/<path>                -> X-Repo-Commit, ETag, Content-Length
  GET  /<repo>/resolve/<rev>/<path>                -> the bytes; Range: bytes=N- or N-M -> 206
                                                      (a resume; huggingface_hub's safetensors
                                                      header read, which vLLM asks for)
  a file missing from a known repository           -> 404 X-Error-Code: EntryNotFound (an optional
                                                      file: transformers and vLLM go on without it)

No Link header (one page of tree), no X-Xet-Hash (plain HTTP download), no redirect. Every
GET of a file is paced to --rate bytes/s per connection (what one download stream gets) and,
with --link-rate, all of them together to that many bytes/s (a host link shared by every
stream); --pad-mib adds a file of that many MiB of zeros to every repository.
Each request is logged as a JSON line to --log (the test reads the Range requests from it).
"""
import argparse
import hashlib
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"
CHUNK = 64 * 1024


class Repo(object):
    def __init__(self, name, folder, pad_bytes):
        self.name, self.files = name, {}
        for d, _, fs in os.walk(folder):
            for f in sorted(fs):
                full = os.path.join(d, f)
                self.files[os.path.relpath(full, folder)] = ("file", full, os.path.getsize(full))
        if pad_bytes:
            self.files["padding.bin"] = ("zeros", None, pad_bytes)
        self.etags = dict((p, hashlib.sha256(("%s/%s/%d" % (name, p, v[2])).encode()).hexdigest())
                          for p, v in self.files.items())

    def read(self, path, start, end):
        kind, full, size = self.files[path]
        pos = start
        with (open(full, "rb") if kind == "file" else open(os.devnull, "rb")) as f:
            if kind == "file":
                f.seek(start)
            while pos < end:
                n = min(CHUNK, end - pos)
                yield f.read(n) if kind == "file" else b"\0" * n
                pos += n


class Link(object):
    """A link all streams share: each chunk takes its turn at `rate` bytes/s (0: unlimited)."""

    def __init__(self, rate):
        self.rate, self.free_at, self.lock = float(rate or 0), 0.0, threading.Lock()

    def take(self, n):
        if not self.rate:
            return
        with self.lock:
            start = max(time.time(), self.free_at)
            self.free_at = start + n / self.rate
            done = self.free_at
        wait = done - time.time()
        if wait > 0:
            time.sleep(wait)


def make_handler(repos, rate, log, link_rate=0):
    lock = threading.Lock()
    link = Link(link_rate)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _log(self, **kw):
            if log:
                with lock, open(log, "a") as f:
                    f.write(json.dumps(dict(kw, method=self.command, path=self.path, t=time.time())) + "\n")

        def _json(self, obj):
            body = json.dumps(obj).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(body)

        def _missing(self, code="RepoNotFound"):
            self.send_response(404)
            self.send_header("X-Error-Code", code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _route(self):
            path = self.path.split("?", 1)[0]
            self._log(range=self.headers.get("Range"))
            for name, repo in repos.items():
                api = "/api/models/%s/" % name
                if path.startswith(api + "revision/") or path == api[:-1]:
                    return self._json({"id": name, "sha": COMMIT,
                                       "siblings": [{"rfilename": p} for p in repo.files]})
                if path.startswith(api + "tree/"):
                    folder = "/".join(path[len(api + "tree/"):].split("/")[1:]).strip("/")
                    return self._json([{"type": "file", "path": p, "size": v[2], "oid": repo.etags[p][:40]}
                                       for p, v in sorted(repo.files.items())
                                       if not folder or p.startswith(folder + "/")])
                res = "/%s/resolve/" % name
                if path.startswith(res):
                    file_path = path[len(res):].split("/", 1)[1] if "/" in path[len(res):] else ""
                    if file_path in repo.files:
                        return self._file(repo, file_path)
                    return self._missing("EntryNotFound")
            return self._missing()

        def _file(self, repo, path):
            size = repo.files[path][2]
            start, end = 0, size  # end: exclusive
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes=") and rng[6:].split("-")[0].isdigit():
                first, last = rng[6:].split(",")[0].split("-", 1)
                start = min(int(first), size)
                if last.strip().isdigit():
                    end = max(start, min(int(last) + 1, size))
            partial = (start, end) != (0, size)
            self.send_response(206 if partial else 200)
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", '"%s"' % repo.etags[path])
            self.send_header("Content-Length", str(end - start))
            if partial:
                self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end - 1, size))
            self.end_headers()
            if self.command == "HEAD":
                return
            began, sent = time.time(), 0
            try:
                for chunk in repo.read(path, start, end):
                    link.take(len(chunk))
                    self.wfile.write(chunk)
                    sent += len(chunk)
                    if rate:
                        ahead = sent / float(rate) - (time.time() - began)
                        if ahead > 0:
                            time.sleep(ahead)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client went away (a fetch stopped half-way)

        def do_GET(self):
            self._route()

        def do_HEAD(self):
            self._route()

    return Handler


def serve(repos, port, rate=0, log=None, host="127.0.0.1", link_rate=0):
    """Start the hub in a thread; returns the server (server.shutdown() stops it). rate: bytes/s
    per connection; link_rate: bytes/s of all connections together (0: unpaced)."""
    server = ThreadingHTTPServer((host, port), make_handler(repos, rate, log, link_rate))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", action="append", required=True, help="ORG/NAME=FOLDER")
    ap.add_argument("--port", type=int, default=18500)
    ap.add_argument("--rate", type=float, default=0, help="bytes/s per connection (0: unpaced)")
    ap.add_argument("--link-rate", type=float, default=0, help="bytes/s of all connections together (0: unpaced)")
    ap.add_argument("--pad-mib", type=int, default=0)
    ap.add_argument("--log")
    a = ap.parse_args(argv)
    repos = {}
    for r in a.repo:
        name, folder = r.split("=", 1)
        repos[name] = Repo(name, folder, a.pad_mib * 1024 * 1024)
    server = serve(repos, a.port, a.rate, a.log, link_rate=a.link_rate)
    sys.stdout.write("hub on 127.0.0.1:%d: %s\n" % (a.port, ", ".join(sorted(repos))))
    sys.stdout.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    main()
