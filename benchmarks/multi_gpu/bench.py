#!/usr/bin/env python3
"""Time to serve 4 models on 2 GPUs: per-GPU boot chains against one strict chain, in one run.

Issue 17, item 7. Four fault-injector models (images/fault-injector/fault_injector.py, /health 503 for its load
delay, then 200), two per GPU. Both boots use the collection's own pieces on this CPU machine:

  * the units' gate commands come from plugins/module_utils/_model_spec.model_specs (the spec
    builder the role renders units from), placement by plugins/module_utils/_placement;
  * each "unit" runs them as systemd would: ExecStartPre `multillm-model-wait after`, then the
    container's gated entrypoint (GATE_ENTRYPOINT: waits for its release file, then executes the
    server), then ExecStartPost `multillm-model-wait health` (previous models ready, release,
    /health 200, VRAM settled on the model's GPUs, ready file);
  * every unit starts at once, as systemd starts them at boot; the gates order them.

`per-gpu`: the models name their GPUs (a0, a1 on GPU 0; b0, b1 on GPU 1): two chains.
`sequence`: the same models without `gpus`: one strict chain, as a single-GPU host boots.
GPUs are simulated: a stand-in `nvidia-smi` (steady memory, so each settle takes
--settle-samples x --settle-interval) and a stand-in `systemctl` (every unit activating) lead
PATH. The figure is the time from the units' start to the last model ready, per round, and the
ratio sequence / per-gpu in each round (rounds alternate the two).

Usage: benchmarks/multi_gpu/bench.py [--rounds 3] [--delays 3,2,2,3]
Writes benchmarks/results/multi_gpu-<UTC time>.json (git-ignored) and prints a Markdown table.
"""

import argparse
import copy
import datetime
import json
import os
import pathlib
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.llmops.multillm.plugins.module_utils import _model_spec as ms  # noqa: E402
from ansible_collections.llmops.multillm.plugins.module_utils import _placement as pl  # noqa: E402

HELPER = ROOT / "roles" / "model_stack" / "files" / "multillm-model-wait"
INJECTOR = ROOT / "images" / "fault-injector" / "fault_injector.py"
RESULTS = ROOT / "benchmarks" / "results"
NAMES_GPUS = (("a0", 0), ("b0", 1), ("a1", 0), ("b1", 1))

FAKE_SYSTEMCTL = """#!/bin/sh
# stand-in: every unit is starting; no job list
case "$1" in show) printf 'ActiveState=activating\\nSubState=start-post\\n';; esac
exit 0
"""
FAKE_NVIDIA_SMI = """#!/bin/sh
# stand-in: two GPUs with steady memory
case "$*" in
  *index,uuid,memory.used*) printf '0, GPU-00000000-0000-0000-0000-000000000000, 1000\\n1, GPU-00000000-0000-0000-0000-000000000001, 2000\\n';;
  *) printf '1000\\n2000\\n';;
esac
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def models(delays, placed):
    out = []
    for (name, gpu), delay in zip(NAMES_GPUS, delays):
        m = {"name": name, "model": "injector/" + name, "port": free_port(), "gpu_memory_utilization": 0.4,
             "health_timeout_s": 120, "_delay": delay}
        if placed:
            m["gpus"] = [gpu]
        out.append(m)
    return out


def rewrite(tokens, gate_root):
    return [t.replace("/run/" + ms.GATE_ROOT, str(gate_root)) for t in tokens]


class Unit(threading.Thread):
    """One model unit: ExecStartPre (after), ExecStart (gated entrypoint + server), ExecStartPost (health)."""

    def __init__(self, spec, delay, gate_root, t0, logs):
        super().__init__(daemon=True)
        self.spec, self.delay, self.gate_root, self.t0, self.logs = spec, delay, gate_root, t0, logs
        self.times, self.rc, self.server = {}, None, None

    def run_step(self, lines):
        # the helper through this interpreter: the checkout's copy is not executable (the role installs it 0755)
        cmd = [sys.executable] + rewrite([tok for line in lines for tok in line], self.gate_root)
        with open(self.logs / ("%s.log" % self.spec["name"]), "a") as log:
            return subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False).returncode

    def run(self):
        gate_dir = pathlib.Path(rewrite([self.spec["gate_dir"]], self.gate_root)[0])
        gate_dir.mkdir(parents=True)  # RuntimeDirectory=
        if self.spec["gate"]["after"] and self.run_step(self.spec["gate"]["after"]) != 0:
            self.rc = "after failed"
            return
        self.times["container_started"] = time.time() - self.t0
        script = ms.GATE_SCRIPT.replace('"%s/release"' % ms.GATE_MOUNT, repr(str(gate_dir / "release")))
        entry = [sys.executable, "-I", "-S", "-c", script]
        server = [sys.executable, str(INJECTOR), "--host", "127.0.0.1", "--port", str(self.spec["port"]),
                  "--model", self.spec["name"], "--load-delay", str(self.delay)]
        with open(self.logs / ("%s.server.log" % self.spec["name"]), "w") as log:
            self.server = subprocess.Popen(entry + server, stdout=log, stderr=subprocess.STDOUT)
        self.rc = self.run_step(self.spec["gate"]["health"])
        # The gate's own files say when: `release` (the server may start), `ready` (healthy and
        # settled: the next model of its GPU may start). Times from the units' start (wall clock).
        for event, key in (("release", "released"), ("ready", "ready")):
            path = gate_dir / event
            if path.exists():
                self.times[key] = path.stat().st_mtime - self.t0

    def stop(self):
        if self.server and self.server.poll() is None:
            self.server.terminate()
            self.server.wait(timeout=10)


def boot(mode, delays, settings, work):
    placed = mode == "per-gpu"
    entries = models(delays, placed)
    specs = ms.model_specs([dict((k, v) for k, v in m.items() if k != "_delay") for m in entries],
                           copy.deepcopy(settings))
    gate_root = work / mode / "gate"
    logs = work / mode / "logs"
    for d in (gate_root, logs):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    t0 = time.time()
    units = [Unit(spec, m["_delay"], gate_root, t0, logs) for spec, m in zip(specs, entries)]
    for u in units:
        u.start()
    for u in units:
        u.join(timeout=300)
    for u in units:
        u.stop()
    failed = [(u.spec["name"], u.rc) for u in units if u.rc != 0]
    if failed:
        raise SystemExit("%s boot failed: %s; logs in %s" % (mode, failed, logs))
    per_model = dict((u.spec["name"], dict(u.times, gpus=u.spec["gpus"] or ["all"],
                                           after=u.spec["previous_units"])) for u in units)
    return {"mode": mode, "serve_s": max(u.times["ready"] for u in units), "models": per_model,
            "chains": pl.chains(entries) if placed else {"one chain": [m["name"] for m in entries]}}


def order_checks(result):
    """Within a GPU each model is released only after the one before it is ready; across GPUs
    the second chain's first model is released before the first chain's first is ready."""
    m = result["models"]
    within = all(m[b]["released"] >= m[a]["ready"] for a, b in (("a0", "a1"), ("b0", "b1")))
    overlap = m["b0"]["released"] < m["a0"]["ready"]
    return within, overlap


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--delays", default="3,2,2,3", help="load delays of a0,b0,a1,b1 in seconds")
    p.add_argument("--settle-interval", type=float, default=0.2)
    p.add_argument("--settle-samples", type=int, default=3)
    p.add_argument("--helper", default=str(HELPER), help="the gate helper to run (default: the role's)")
    args = p.parse_args()
    delays = [float(x) for x in args.delays.split(",")]
    settings = {
        "multillm_gpu_required": True, "multillm_vram_strategy": "static", "model_stack_server": "fault_injector",
        "model_stack_helper_path": args.helper, "model_stack_health_poll_interval_s": 0.05,
        "model_stack_vram_settle_interval_s": args.settle_interval,
        "model_stack_vram_settle_samples": args.settle_samples, "model_stack_vram_settle_timeout_s": 30,
    }
    work = pathlib.Path(tempfile.mkdtemp(prefix="multillm-multi-gpu."))
    fake_bin = work / "bin"
    fake_bin.mkdir()
    for name, text in (("systemctl", FAKE_SYSTEMCTL), ("nvidia-smi", FAKE_NVIDIA_SMI)):
        (fake_bin / name).write_text(text)
        (fake_bin / name).chmod(0o755)
    os.environ["PATH"] = "%s:%s" % (fake_bin, os.environ["PATH"])

    rounds = []
    for i in range(args.rounds):
        order = ("per-gpu", "sequence") if i % 2 == 0 else ("sequence", "per-gpu")
        got = dict((mode, boot(mode, delays, settings, work)) for mode in order)
        within, overlap = order_checks(got["per-gpu"])
        seq_within = all(got["sequence"]["models"][b]["released"] >= got["sequence"]["models"][a]["ready"]
                         for a, b in (("a0", "b0"), ("b0", "a1"), ("a1", "b1")))
        rounds.append({"round": i + 1, "per_gpu_s": round(got["per-gpu"]["serve_s"], 3),
                       "sequence_s": round(got["sequence"]["serve_s"], 3),
                       "ratio": round(got["sequence"]["serve_s"] / got["per-gpu"]["serve_s"], 3),
                       "order_within_gpu": within, "overlap_across_gpus": overlap,
                       "sequence_strict": seq_within, "detail": got})
    shutil.rmtree(work, ignore_errors=True)

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%MZ")
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()
    out = {"benchmark": "multi_gpu", "utc": stamp, "commit": commit, "machine": platform.node(),
           "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "delays_s": delays,
           "settle": {"interval_s": args.settle_interval, "samples": args.settle_samples},
           "command": " ".join(["benchmarks/multi_gpu/bench.py"] + sys.argv[1:]), "rounds": rounds,
           "median": {k: statistics.median(r[k] for r in rounds) for k in ("per_gpu_s", "sequence_s", "ratio")}}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / ("multi_gpu-%s.json" % stamp)
    path.write_text(json.dumps(out, indent=1))
    print("| round | per-GPU chains (s) | one strict chain (s) | ratio | order within a GPU | overlap across GPUs |")
    print("| --- | ---: | ---: | ---: | --- | --- |")
    for r in rounds:
        within = "kept" if r["order_within_gpu"] else "BROKEN"
        overlap = "yes" if r["overlap_across_gpus"] else "NO"
        print("| %d | %.2f | %.2f | %.2f | %s | %s |" % (
            r["round"], r["per_gpu_s"], r["sequence_s"], r["ratio"], within, overlap))
    med = out["median"]
    print("| median | %.2f | %.2f | %.2f | | |" % (med["per_gpu_s"], med["sequence_s"], med["ratio"]))
    print("raw: %s" % path.relative_to(ROOT), file=sys.stderr)
    ok = all(r["order_within_gpu"] and r["overlap_across_gpus"] and r["sequence_strict"] for r in rounds)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
