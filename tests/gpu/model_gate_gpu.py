#!/usr/bin/env python3
"""model_stack's gate and VRAM settle wait on a real GPU, without Docker or systemd.

What a model unit does on a GPU host, step by step, with the role's own pieces:
- the container's entrypoint (the gate, taken verbatim from plugins/module_utils/_model_spec.py)
  runs a stand-in "model server" that only starts once the gate opens: torch allocates
  --gib GiB in --steps steps, --step-s apart (vLLM loading weights and KV), then serves
  /health 200;
- roles/model_stack/files/multillm-model-wait `health --settle` (the unit's ExecStartPost)
  runs under the unit's capability bounding set (CAP_FOWNER only, no new privileges, via
  setpriv), opens the gate, waits for /health, waits for nvidia-smi's used memory to settle,
  and writes the ready file.

Checks: the gated process holds no GPU memory; the gate opens only when the helper says so;
the settle wait ends after the growth ends, on a figure that includes the whole allocation;
nvidia-smi works under the capability bounding set. Needs torch.
Usage: python3 tests/gpu/model_gate_gpu.py [--gib 4] [--steps 4] [--step-s 0.75] [--out DIR]
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "collections"))

from ansible_collections.llmops.multillm.plugins.module_utils import _model_spec  # noqa: E402

HELPER = os.path.join(ROOT, "roles", "model_stack", "files", "multillm-model-wait")
SERVER = r"""
import http.server, sys, time, torch
gib, steps, step_s, port = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
print("server: loading_started t=%.6f" % time.time(), flush=True)
held = []
for _ in range(steps):
    held.append(torch.empty(int(gib * 2**30 / steps), dtype=torch.uint8, device="cuda"))
    torch.cuda.synchronize()
    time.sleep(step_s)
print("server: loaded t=%.6f" % time.time(), flush=True)

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers()
    def log_message(self, *a):
        pass

http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""


def used_mib():
    out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, check=True).stdout
    return float(out.split()[0])


def gate_entrypoint(mount):
    """The model spec's gate entrypoint (what every model container runs), reading `mount`."""
    argv = list(_model_spec.GATE_ENTRYPOINT)
    assert _model_spec.GATE_MOUNT in argv[-1], argv
    return argv[:-1] + [argv[-1].replace(_model_spec.GATE_MOUNT, mount)]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--gib", type=float, default=4.0)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--step-s", type=float, default=0.75)
    p.add_argument("--out")
    a = p.parse_args()
    checks, report = [], {}

    def check(name, ok, detail):
        checks.append({"check": name, "ok": bool(ok), "detail": detail})
        print("%s %s: %s" % ("PASS" if ok else "FAIL", name, detail), flush=True)

    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                         capture_output=True, text=True, check=True).stdout.strip()
    report["gpu"] = gpu
    print("GPU:", gpu, flush=True)
    gate = tempfile.mkdtemp(prefix="multillm-gate-")
    port = free_port()
    before = used_mib()
    server_argv = [sys.executable, "-c", SERVER, str(a.gib), str(a.steps), str(a.step_s), str(port)]
    server = subprocess.Popen(gate_entrypoint(gate) + server_argv,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(3.0)
    gated = used_mib()
    check("the gated server holds no GPU memory", server.poll() is None and abs(gated - before) < 1,
          "used %.0f MiB before, %.0f MiB after 3 s at the gate; process running: %s" % (
              before, gated, server.poll() is None))

    setpriv = shutil.which("setpriv")
    cmd = [sys.executable, HELPER, "health", "--name", "gpu-gate", "--url", "http://127.0.0.1:%d/health" % port,
           "--timeout", "120", "--interval", "0.05", "--release", os.path.join(gate, "release"),
           "--ready", os.path.join(gate, "ready"), "--settle", "--settle-interval", "0.5",
           "--settle-samples", "3", "--settle-delta-mib", "64", "--settle-timeout", "60"]
    if setpriv:
        # CapabilityBoundingSet=CAP_FOWNER and NoNewPrivileges=yes of the unit.
        cmd = [setpriv, "--bounding-set", "-all,+fowner", "--inh-caps", "-all", "--no-new-privs"] + cmd
    start = time.time()
    helper = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300)
    took = time.time() - start
    print(helper.stdout + helper.stderr, flush=True)
    report["helper_cmd"] = cmd[:8]
    report["helper_output"] = helper.stdout.splitlines()
    settled = [ln for ln in helper.stdout.splitlines() if "vram_settled" in ln]
    check("the helper opened the gate, saw /health 200, settled and wrote ready under the bounding set",
          helper.returncode == 0 and settled and os.path.exists(os.path.join(gate, "ready")),
          "rc %s in %.1f s, setpriv %s" % (helper.returncode, took, "used" if setpriv else "MISSING"))
    after = used_mib()
    server.terminate()
    out, _ = server.communicate(timeout=30)
    print(out, flush=True)
    stamps = dict(ln.split(": ", 1)[1].split(" t=") for ln in out.splitlines() if ln.startswith("server: "))
    loading, loaded = float(stamps["loading_started"]), float(stamps["loaded"])
    release_t = os.stat(os.path.join(gate, "release")).st_mtime
    ready_t = os.stat(os.path.join(gate, "ready")).st_mtime
    check("the server started only after the gate opened", loading >= release_t,
          "release %.3f, loading_started %.3f (%+.3f s)" % (release_t, loading, loading - release_t))
    check("ready came after the growth ended", ready_t >= loaded,
          "loaded %.3f, ready %.3f (%+.2f s)" % (loaded, ready_t, ready_t - loaded))
    settled_mib = float(settled[0].split("used_mib=")[1].split()[0]) if settled else 0.0
    check("the settled figure includes the whole allocation", settled_mib - before >= a.gib * 1024,
          "settled at %.0f MiB, %.0f MiB above the start (allocation %.0f MiB + CUDA context); "
          "after the run %.0f MiB" % (settled_mib, settled_mib - before, a.gib * 1024, after))
    report.update({"before_mib": before, "gated_mib": gated, "settled_mib": settled_mib, "release": release_t,
                   "loading_started": loading, "loaded": loaded, "ready": ready_t, "checks": checks})
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "model_gate_gpu.json"), "w") as f:
            json.dump(report, f, indent=1)
    failed = [c for c in checks if not c["ok"]]
    print("%d of %d checks passed" % (len(checks) - len(failed), len(checks)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
