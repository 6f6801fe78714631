#!/usr/bin/env python3
"""vram_check on a real GPU: known allocations in, the module's figures checked against them.

What it does, on one GPU (--device, default 0):

1. Starts one worker process per --sizes entry (default 4, 6, 10 GiB), one after the other. Each
   creates its CUDA context with torch, allocates exactly that many GiB with torch.empty (the
   caching allocator hands out the size rounded to 2 MiB, i.e. exactly), and holds it.
   Around each start the device-level NVML v2 "used" is read by this process (which holds no CUDA
   context of its own): that delta is what the worker holds on the GPU, allocation plus context.
2. Runs the module through its Python entry (ANSIBLE_MODULE_ARGS JSON), without settling, five
   times for timing, and checks:
   - each worker's per-process figure within 1% of what it holds (the delta of step 1), and also
     reports it against nvidia-smi --query-compute-apps and against the bare torch allocation;
   - the GPU's used figure within 1% of nvidia-smi --query-gpu=memory.used, read right after;
   - expected_gib = the sum held passes with tolerance 0.5 GiB, and a wrong expectation fails
     with the breakdown.
3. Runs the module the way Ansible does (ansible localhost -c local -m llmops.multillm.vram_check)
   when ansible is importable.
4. Starts a worker that grows by 512 MiB every 0.25 s up to 4 GiB, then checks that the module
   reports "did not settle" with a short timeout while it grows, and settles on the final figure
   with a longer one.

Writes a JSON report (--out) and prints a summary; exits 1 when a check fails.
Run from the repository root, e.g.:
    PYTHONPATH=/tmp/site python3 tests/gpu/vram_check_gpu.py --out /tmp/vram
"""

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import pynvml

ROOT = pathlib.Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / "collections"
MODULE = "ansible_collections.llmops.multillm.plugins.modules.vram_check"
MIB = 1024 ** 2
GIB = 1024 ** 3

WORKER = r"""
import json, sys, time
import torch
gib, dev, step_mib, period = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
torch.cuda.set_device(dev)
free_ctx, _ = torch.cuda.mem_get_info(dev)          # the CUDA context exists from here on
held = []
if step_mib:                                        # grow in steps (settle test)
    print(json.dumps({"ready": True}), flush=True)
    for _ in range(int(gib * 1024 // step_mib)):
        held.append(torch.empty(step_mib * 2**20, dtype=torch.uint8, device="cuda"))
        time.sleep(period)
else:
    held.append(torch.empty(int(gib * 2**30), dtype=torch.uint8, device="cuda"))
torch.cuda.synchronize()
free_after, _ = torch.cuda.mem_get_info(dev)
if not step_mib:
    print(json.dumps({"allocated": torch.cuda.memory_allocated(dev), "reserved": torch.cuda.memory_reserved(dev),
                      "mem_get_info_delta": free_ctx - free_after}), flush=True)
sys.stdin.read()                                    # hold until the parent closes stdin
"""


def v2_used(handle):
    return pynvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2).used


def smi(query, kind="gpu"):
    """nvidia-smi CSV rows (no header, no units) as lists of strings, or None when it fails."""
    flag = "--query-gpu" if kind == "gpu" else "--query-compute-apps"
    proc = subprocess.run(["nvidia-smi", "%s=%s" % (flag, query), "--format=csv,noheader,nounits"],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return None
    return [[c.strip() for c in line.split(",")] for line in proc.stdout.strip().splitlines() if line.strip()]


def worker_env():
    # workers use the machine's own torch; the carried wheels (PYTHONPATH) are for the module only
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


def module_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(COLLECTIONS), env.get("PYTHONPATH")) if p)
    return env


def run_module(args):
    payload = json.dumps({"ANSIBLE_MODULE_ARGS": args})
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", MODULE, payload], capture_output=True, text=True,
                          env=module_env(), check=False)
    wall = time.perf_counter() - start
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        result = {"failed": True, "msg": "no JSON: %s %s" % (proc.stdout[-2000:], proc.stderr[-2000:])}
    result.pop("invocation", None)
    return proc.returncode, result, wall


def start_worker(gib, device, step_mib=0, period=0.0):
    return subprocess.Popen([sys.executable, "-c", WORKER, str(gib), str(device), str(step_mib), str(period)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=worker_env())


class Checks:
    def __init__(self):
        self.items = []

    def add(self, name, passed, detail):
        self.items.append({"check": name, "passed": bool(passed), "detail": detail})
        print("%s  %s: %s" % ("PASS" if passed else "FAIL", name, detail), flush=True)

    @property
    def failed(self):
        return [c for c in self.items if not c["passed"]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--device", type=int, default=0)
    parser.add_argument("--sizes", default="4,6,10", help="GiB each worker holds, comma-separated")
    parser.add_argument("--out", default=None, help="folder for the JSON report")
    opts = parser.parse_args()
    sizes = [float(s) for s in opts.sizes.split(",")]
    checks = Checks()
    report = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": " ".join(sys.argv),
              "pynvml": getattr(pynvml, "__file__", None)}

    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(opts.device)
    report.update(card=pynvml.nvmlDeviceGetName(handle), driver=pynvml.nvmlSystemGetDriverVersion(),
                  total_mib=pynvml.nvmlDeviceGetMemoryInfo(handle).total // MIB)
    try:
        import importlib.metadata as md
        report["nvidia_ml_py"] = md.version("nvidia-ml-py")
    except Exception:  # noqa: BLE001 - informative only
        pass
    print("card %(card)s, driver %(driver)s, %(total_mib)d MiB" % report, flush=True)
    report["baseline_used_mib"] = v2_used(handle) / MIB

    workers = []
    try:
        # 1. workers holding known amounts, started one at a time
        for gib in sizes:
            before = v2_used(handle)
            proc = start_worker(gib, opts.device)
            line = proc.stdout.readline()
            if not line:
                raise SystemExit("worker for %.0f GiB exited (rc %s) before reporting; its stderr is above"
                                 % (gib, proc.wait()))
            info = json.loads(line)
            time.sleep(0.3)
            after = v2_used(handle)
            workers.append(dict(proc=proc, pid=proc.pid, gib=gib, torch=info, held=after - before))
            print("worker pid %d: %.0f GiB allocated, device used +%.1f MiB" % (
                proc.pid, gib, (after - before) / MIB), flush=True)

        # 2. the module's Python entry, no settling: timing and figures
        walls = []
        for _run in range(5):
            rc, result, wall = run_module({"devices": [opts.device], "settle_samples": 1})
            walls.append(wall)
        smi_used = smi("memory.used")
        smi_reserved = smi("memory.reserved")
        smi_apps = smi("pid,used_memory", kind="apps") or []
        v1 = pynvml.nvmlDeviceGetMemoryInfo(handle)
        v2 = pynvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2)
        report["nvml_now"] = {"v1_used_mib": v1.used / MIB, "v2_used_mib": v2.used / MIB,
                              "v2_reserved_mib": v2.reserved / MIB}
        report["timing_s"] = {"runs": [round(w, 3) for w in walls], "min": round(min(walls), 3),
                              "median": round(sorted(walls)[len(walls) // 2], 3)}
        report["module_result"] = result
        checks.add("module answers without settling", rc == 0 and result.get("settled") is True,
                   "rc %d, %s" % (rc, result.get("msg")))
        checks.add("answer under 1 s without settling", sorted(walls)[len(walls) // 2] < 1.0,
                   "wall per run (interpreter start, imports, NVML init, one sample): %s s" % report["timing_s"]["runs"])

        gpu = (result.get("gpus") or [{}])[0]
        by_pid = {p["pid"]: p for p in gpu.get("processes", [])}
        smi_by_pid = {int(r[0]): float(r[1]) for r in smi_apps if len(r) == 2 and r[0].isdigit()}
        rows = []
        for w in workers:
            mod = by_pid.get(w["pid"], {}).get("used_mib")
            held = w["held"] / MIB
            row = {"pid": w["pid"], "allocated_gib": w["gib"], "torch_reserved_mib": w["torch"]["reserved"] / MIB,
                   "torch_mem_get_info_delta_mib": w["torch"]["mem_get_info_delta"] / MIB,
                   "device_used_delta_mib": held, "module_used_mib": mod,
                   "nvidia_smi_used_mib": smi_by_pid.get(w["pid"]),
                   "context_and_overhead_mib": held - w["gib"] * 1024}
            rows.append(row)
            ok = mod is not None and abs(mod - held) <= 0.01 * held
            checks.add("pid %d within 1%% of what it holds" % w["pid"], ok,
                       "module %s MiB vs device delta %.1f MiB at its start (%.0f GiB allocation + %.1f MiB context);"
                       " nvidia-smi %s MiB" % (mod, held, w["gib"], held - w["gib"] * 1024, smi_by_pid.get(w["pid"])))
        report["processes"] = rows

        if smi_used:
            smi_mib = float(smi_used[opts.device][0])
            mod_used = gpu.get("used_mib")
            checks.add("GPU used within 1% of nvidia-smi memory.used", mod_used is not None and
                       abs(mod_used - smi_mib) <= 0.01 * smi_mib,
                       "module %s MiB vs nvidia-smi %.0f MiB (reserved: module %s, nvidia-smi %s)" % (
                           mod_used, smi_mib, gpu.get("reserved_mib"),
                           smi_reserved[opts.device][0] if smi_reserved else "n/a"))
            report["nvidia_smi"] = {"memory_used_mib": smi_mib,
                                    "memory_reserved_mib": smi_reserved[opts.device][0] if smi_reserved else None}
        else:
            checks.add("nvidia-smi answers", False, "nvidia-smi --query-gpu=memory.used failed")

        expected = v2_used(handle) / GIB
        rc, good, _wall = run_module({"devices": [opts.device], "settle_samples": 3, "settle_interval": 0.2,
                                      "expected_gib": round(expected, 3), "tolerance_gib": 0.5})
        checks.add("expected_gib = what is held passes (settling 3 samples)", rc == 0, good.get("msg"))
        rc, bad, _wall = run_module({"devices": [opts.device], "settle_samples": 1, "expected_gib": 1, "tolerance_gib": 0.5})
        checks.add("a wrong expectation fails with the breakdown", rc == 1 and "Breakdown" in bad.get("msg", "")
                   and all(str(w["pid"]) in bad["msg"] for w in workers), bad.get("msg"))
        report["failure_message"] = bad.get("msg")

        # 3. the way Ansible runs it
        ansible = shutil.which("ansible") or (os.path.join(os.path.dirname(pynvml.__file__), "bin", "ansible"))
        if os.path.exists(ansible):
            env = module_env()
            env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
                       ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
                       LC_ALL="C.UTF-8", ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP="/tmp/ansible-local")
            args = json.dumps({"devices": [opts.device], "settle_samples": 1,
                               "expected_gib": round(expected, 3), "tolerance_gib": 0.5})
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, ansible, "localhost", "-c", "local", "-i", "localhost,",
                                   "-e", "ansible_python_interpreter=%s" % sys.executable,
                                   "-m", "llmops.multillm.vram_check", "-a", args],
                                  capture_output=True, text=True, env=env, cwd=str(ROOT), check=False)
            wall = time.perf_counter() - start
            report["ansible_adhoc"] = {"rc": proc.returncode, "wall_s": round(wall, 2),
                                       "stdout_tail": proc.stdout[-1500:], "stderr_tail": proc.stderr[-1500:]}
            tail = (proc.stdout or proc.stderr)[-300:]
            checks.add("ansible localhost -m llmops.multillm.vram_check passes",
                       proc.returncode == 0 and "SUCCESS" in proc.stdout,
                       "rc %d in %.2f s: %s" % (proc.returncode, wall, tail))
        else:
            report["ansible_adhoc"] = "ansible not importable here; skipped"
            print("ansible not found: the ad-hoc run was not made", flush=True)

        # 4. settling on a real GPU: a worker that keeps growing
        grower = start_worker(4, opts.device, step_mib=512, period=0.25)
        workers.append(dict(proc=grower, pid=grower.pid, gib=4))
        grower.stdout.readline()
        rc, unsettled, _wall = run_module({"devices": [opts.device], "settle_samples": 3, "settle_interval": 0.25,
                                           "settle_delta_mib": 64, "timeout": 1.0})
        checks.add("a growing process: did not settle within 1 s", rc == 1 and "did not settle" in unsettled.get("msg", ""),
                   unsettled.get("msg", "")[:400])
        rc, settled, wall = run_module({"devices": [opts.device], "settle_samples": 3, "settle_interval": 0.5,
                                        "settle_delta_mib": 64, "timeout": 30})
        grown = {p["pid"]: p["used_mib"] for p in settled.get("gpus", [{}])[0].get("processes", [])}.get(grower.pid)
        checks.add("a growing process: settles once it stops, on the final figure",
                   rc == 0 and settled.get("settled") is True and grown is not None and grown >= 4096,
                   "rc %d after %.1f s, grower %s MiB, samples %s" % (
                       rc, wall, grown, [s["used_mib"] for s in settled.get("samples", [])]))
        report["settle"] = {"unsettled_msg": unsettled.get("msg"), "settled_samples": settled.get("samples"),
                            "settled_wall_s": round(wall, 2)}
    finally:
        for w in workers:
            try:
                w["proc"].stdin.close()
                w["proc"].wait(timeout=30)
            except Exception:  # noqa: BLE001 - best effort cleanup
                w["proc"].kill()
        pynvml.nvmlShutdown()

    report["checks"] = checks.items
    if opts.out:
        os.makedirs(opts.out, exist_ok=True)
        with open(os.path.join(opts.out, "vram_check_gpu.json"), "w") as handle_out:
            json.dump(report, handle_out, indent=2, default=str)
    print("%d checks, %d failed" % (len(checks.items), len(checks.failed)), flush=True)
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
