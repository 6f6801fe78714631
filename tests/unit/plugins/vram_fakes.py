"""Fakes at the edges of vram_check: the state of the fake libnvidia-ml.so.1, a Docker API stand-in.

The format is described at the top of tests/fakes/nvml/fake_nvml.c.
"""

import json
import pathlib
import socketserver
import threading
from http.server import BaseHTTPRequestHandler

MIB = 1024 ** 2
GIB = 1024 ** 3
# PIDs above the kernel's largest pid_max (2**22): never a real process on the test machine,
# so /proc/<pid> lookups find nothing unless a test builds its own /proc tree.
FAKE_PID = 4194304 + 100


class Gpu:
    """One fake GPU: memory samples (used, reserved in MiB) and compute processes (pid, MiB)."""

    def __init__(self, name="NVIDIA H100 80GB HBM3", total_mib=81559, samples=((0, 0),), procs=(),
                 uuid=None):
        self.name = name
        self.total_mib = total_mib
        self.samples = list(samples)
        self.procs = list(procs)
        self.uuid = uuid


def write_state(path, gpus=(), init=0, driver="580.159.04", cycle=False, fail=None):
    """Write the fake's state file; MiB figures may be floats (bytes are what the fake reports)."""
    lines = ["init %d" % init, "driver %s" % driver, "cycle %d" % int(cycle)]
    for index, gpu in enumerate(gpus):
        uuid = gpu.uuid or "GPU-00000000-0000-0000-0000-%012d" % index
        lines.append("device %d %s %s" % (int(gpu.total_mib * MIB), uuid, gpu.name))
    for index, gpu in enumerate(gpus):
        for used, reserved in gpu.samples:
            lines.append("mem %d %d %d" % (index, int(used * MIB), int(reserved * MIB)))
        for pid, used in gpu.procs:
            used_bytes = 0xFFFFFFFFFFFFFFFF if used is None else int(used * MIB)
            lines.append("proc %d %d %d" % (index, pid, used_bytes))
    for function, rc in (fail or {}).items():
        lines.append("fail %s %d" % (function, rc))
    pathlib.Path(path).write_text("\n".join(lines) + "\n")
    return path


class FakeDockerApi:
    """A Docker Engine API stand-in on a Unix socket: GET /containers/<id>/json."""

    def __init__(self, path, containers, status=None):
        api = self
        self.requests = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                api.requests.append(self.path)
                cid = self.path.split("/")[2] if self.path.startswith("/containers/") else None
                if status:
                    self.send_response(status)
                    body = b'{"message": "boom"}'
                elif cid in containers:
                    self.send_response(200)
                    body = json.dumps({"Id": cid, "Name": "/" + containers[cid]}).encode()
                else:
                    self.send_response(404)
                    body = b'{"message": "No such container"}'
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

            def address_string(self):
                return "unix"

        self.server = socketserver.ThreadingUnixStreamServer(path, Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
