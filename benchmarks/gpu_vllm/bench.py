#!/usr/bin/env python3
"""Boot the reference models with real vLLM on the GPU machine through the collection's own pieces.

No Docker and no systemd there, so this does what a model unit does, with the same parts:
- the spec: plugins/module_utils/_model_spec.py model_specs() over the model list of
  inventories/h100 (the reference deployment) gives each model's argv (`vllm serve ...`), env
  (kvcached variables, VLLM_USE_V2_MODEL_RUNNER...) and gate. Changed for the run, and only
  this: `model` is the local config directory (make_models.py) with `--load-format dummy`
  (no weights), and gpu_memory_utilization is scaled so that each model gets the same GiB
  as the inventory's fraction of an H100 80GB (81,559 MiB);
- the gate: every model's process is the spec's entrypoint (the gate script, waiting for
  `release` in the model's gate directory) followed by the spec's command, started at once as
  systemd starts the containers; then each model's health gate, the spec's own
  `multillm-model-wait health ... --settle` line (roles/model_stack/files), runs in boot order:
  it releases the model, waits for /health 200 and for the GPU memory to settle, writes ready;
- the measurement: the vram_check module itself (plugins/modules/vram_check.py, run as a
  module with its arguments in a file) at rest, and _nvml.Nvml (its NVML layer) sampled every
  0.2 s through a burst for the peak. Processes are mapped to models by process tree.
KV capacity comes from vLLM's own log line ("GPU KV cache size: N tokens") and the
num_gpu_blocks of its cache_config_info metric.

What a container gets from the spec, a bare process gets here (bare_env): the spec's device
request as NVIDIA_VISIBLE_DEVICES and CUDA_VISIBLE_DEVICES (with CUDA_DEVICE_ORDER=PCI_BUS_ID, the
order of NVML and Docker's device ids), the per-model cache volume's host folder for the spec's
VLLM_CACHE_ROOT, a HOME and TMPDIR emptied before each run at the same paths (a recreated
container's writable layer; vLLM's compile-cache key hashes paths derived from HOME), and a cgroup
named as Docker's cgroupfs driver names a container's (/docker/<64-hex id>), so that vram_check
attributes the processes to a "container" and checks containers[].gpus and per-GPU expectations.

Phases (one JSON report each in --out):
  seq         --strategy static|kvcached: gated sequential boot, rest, burst, rest again
  concurrent  --strategy static: both models released at the same moment (no gate)
  single      the first model alone (cold/warm start with its vLLM cache folder kept)
  chains      issue 18: every model once per GPU of --gpus (give 0,1), all units started at once,
              each GPU's chain ordered by the spec's gate lines, the chains side by side
  (--only NAME picks models for seq/single; --triton-in-cache puts TRITON_CACHE_DIR in each cache
  volume; --at-rest CMD runs a command while the models rest, e.g. nvml_venv.sh's Ansible checks)
  placement   no model: the device selection of a model's gpus as CUDA sees it (this GPU by
              index and UUID, an absent index and UUID), vram_check naming an absent GPU
  specs       no GPU: what a run would start (argv, env, the bare process's env, cache folder)

Runs on the GPU machine after device.sh install; see README.md.
"""

import argparse
import concurrent.futures
import glob
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "collections"))

from ansible_collections.llmops.multillm.plugins.module_utils import _model_spec  # noqa: E402
from ansible_collections.llmops.multillm.plugins.module_utils import _nvml  # noqa: E402
from ansible_collections.llmops.multillm.plugins.module_utils import _placement  # noqa: E402

HELPER = os.path.join(ROOT, "roles", "model_stack", "files", "multillm-model-wait")
VRAM_CHECK = os.path.join(ROOT, "plugins", "modules", "vram_check.py")
INVENTORY = os.path.join(ROOT, "inventories", "h100", "group_vars", "all", "main.yml")
H100_80GB_MIB = 81559
TRITON_SUBDIR = "triton"  # --triton-in-cache: TRITON_CACHE_DIR=<vLLM cache mount>/triton
MIB = 2 ** 20


def now():
    return time.time()


def log(msg):
    print("%s bench %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def inventory_models():
    import yaml
    with open(INVENTORY, encoding="utf-8") as f:
        return yaml.safe_load(f)["multillm_models"]


def gpu_total_mib():
    with _nvml.Nvml() as n:
        return n.memory(n.handle(0)).total / MIB


def models_for_run(a, total_mib):
    """The inventory's models, pointed at the local configs, same GiB as on an H100 80GB."""
    out = []
    for m in inventory_models():
        m = dict(m)
        base = m["model"].rstrip("/").rsplit("/", 1)[-1]
        m["model"] = os.path.join(a.models, base)
        m["gpu_memory_utilization"] = round(float(m["gpu_memory_utilization"]) * H100_80GB_MIB / total_mib, 4)
        m["extra_args"] = list(m.get("extra_args") or []) + ["--load-format", "dummy"]
        m["port"] = int(m["port"]) + a.port_offset
        if a.triton_in_cache:
            # What a model entry's env would set (the spec's env): Triton's JIT cache inside the
            # mounted vLLM cache volume, so that it outlives a recreated container (issue 20).
            m["env"] = dict(m.get("env") or {}, TRITON_CACHE_DIR=_model_spec.VLLM_CACHE_MOUNT + "/" + TRITON_SUBDIR)
        if a.gpus and a.phase != "chains":
            # Placed on chosen GPUs (issue 17): the spec then gives exactly those devices.
            m["gpus"] = [int(g) if g.isdigit() else g for g in a.gpus.split(",")]
        out.append(m)
    if a.only:
        out = [m for m in out if m["name"] in a.only.split(",")]
        if not out:
            raise SystemExit("--only %s names no model of %s" % (a.only, INVENTORY))
    return out


# -- the container's view for a bare process ------------------------------------------------------
# No Docker there: what the container gets from the spec is given to the process instead.
def device_env(requests):
    """The spec's Docker device requests as a bare process's environment: the devices the nvidia
    runtime would expose (NVIDIA_VISIBLE_DEVICES, as the NVIDIA container toolkit sets it) and the
    same selection for CUDA (CUDA_VISIBLE_DEVICES, in NVML's PCI order like Docker's device ids).
    None for a variable means: remove it from the inherited environment."""
    ids, every = [], False
    for r in requests or []:
        if r.get("driver") not in (None, "nvidia"):
            continue
        if r.get("device_ids"):
            ids.extend(str(x) for x in r["device_ids"])
        elif r.get("count") == -1:
            every = True
    if every:
        return {"NVIDIA_VISIBLE_DEVICES": "all", "CUDA_VISIBLE_DEVICES": None, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    if ids:
        return {"NVIDIA_VISIBLE_DEVICES": ",".join(ids), "CUDA_VISIBLE_DEVICES": ",".join(ids),
                "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    return {"NVIDIA_VISIBLE_DEVICES": "void", "CUDA_VISIBLE_DEVICES": "", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


def volume_env(spec, cache_root):
    """Env values naming a volume's container path, pointed at the host folder behind it (the
    per-model vLLM cache: /var/lib/multillm/vllm-cache/<name> here under --cache-root)."""
    out = {}
    for vol in spec.get("volumes") or []:
        src, dst = vol.split(":")[:2]
        if not src.startswith(_model_spec.VLLM_CACHE_DIR + "/"):
            continue
        host = os.path.join(cache_root, src[len(_model_spec.VLLM_CACHE_DIR) + 1:])
        for k, v in spec["env"].items():
            if v == dst:
                out[k] = host
            elif isinstance(v, str) and v.startswith(dst + "/"):
                out[k] = host + v[len(dst):]  # a folder inside the volume (TRITON_CACHE_DIR)
    return out


def bare_env(spec, a, run_index=0):
    """What the harness sets beyond the spec's env: the device selection, the cache volume's host
    folder and, with --scratch, a fresh HOME/XDG_CACHE_HOME/TMPDIR per model and run (a recreated
    container's empty writable layer: only the cache volume outlives a run)."""
    env = device_env(spec["device_requests"])
    env.update(volume_env(spec, a.cache_root))
    if a.scratch:
        base = os.path.join(a.scratch, "m%d" % run_index)
        env.update({"HOME": os.path.join(base, "home"), "XDG_CACHE_HOME": os.path.join(base, "home", ".cache"),
                    "TMPDIR": os.path.join(base, "tmp")})
    return env


def cache_dir(spec, a):
    return volume_env(spec, a.cache_root).get("VLLM_CACHE_ROOT", spec["env"].get("VLLM_CACHE_ROOT", ""))


# -- a Docker-like cgroup, so that vram_check names the process's "container" --------------------
def container_id(spec, a):
    """A 64-hex id per model and run, as Docker gives a container."""
    import hashlib
    return hashlib.sha256(("multillm-model-%s %s" % (spec["name"], a.tag)).encode()).hexdigest()


def cgroup_dir(cid):
    """Where a process goes so that /proc/<pid>/cgroup reads like a container's (cgroupfs
    driver: /docker/<id>); None when no writable cgroup hierarchy is there."""
    root = os.environ.get("GV_CGROUP_ROOT", "/sys/fs/cgroup")  # another root only for a dry run
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        bases = [root]  # cgroup v2
    else:
        bases = sorted(d for d in glob.glob(os.path.join(root, "*")) if os.path.exists(os.path.join(d, "cgroup.procs")))
    for base in bases[:1]:
        path = os.path.join(base, "docker", cid)
        try:
            os.makedirs(path, exist_ok=True)
        except OSError:
            return None
        return path
    return None


def specs_for(a, models):
    settings = {
        "multillm_vram_strategy": a.strategy,
        "multillm_gpu_required": True,
        "model_stack_vllm_version": "0.26.0",
        "model_stack_kvcached_version": "0.1.6",
        # flashinfer is not carried to the GPU machine (benchmarks/gpu_vllm/gather.py).
        "model_stack_env": {"VLLM_USE_FLASHINFER_SAMPLER": "0"},
    }
    return _model_spec.model_specs(models, settings)


def flat(lines):
    return [tok for line in lines for tok in line]


def local_gate(spec, gate_root):
    """The spec's gate dir on this machine (no container: the gate dir is used in place)."""
    return os.path.join(gate_root, spec["name"])


def server_argv(spec, gate_dir):
    """The spec's entrypoint (the gate) and command, the gate reading this model's own directory."""
    ep = list(spec["entrypoint"])
    ep[-1] = ep[-1].replace(_model_spec.GATE_MOUNT, gate_dir)
    return ep + list(spec["command"])


def server_env(spec, a, run_index=0):
    env = dict(os.environ)
    env.update(spec["env"])
    for k, v in bare_env(spec, a, run_index).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    for k in ("HOME", "TMPDIR"):
        if a.scratch:
            os.makedirs(env[k], exist_ok=True)
    env["PATH"] = a.bin + ":" + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    if spec["kvcached"] and a.preload:
        env["LD_PRELOAD"] = a.preload  # kvcached 0.1.6 built from its sdist (see README.md)
    return env


def helper_argv(spec, gate_dir, specs):
    """The spec's own health-gate line, its paths pointed at this machine's gate dirs."""
    argv = flat(spec["gate"]["health"])
    argv[0] = HELPER
    out = []
    for tok in argv:
        for s in specs:
            tok = tok.replace(s["gate_dir"], os.path.join(os.path.dirname(gate_dir), s["name"]))
        out.append(tok)
    return [sys.executable] + out


class Server(object):
    def __init__(self, spec, a, gate_dir, log_dir, gated=True):
        self.spec, self.gate_dir = spec, gate_dir
        self.cid = container_id(spec, a)
        self.cgroup = cgroup_dir(self.cid) if a.cgroup else None
        os.makedirs(gate_dir, exist_ok=True)
        for f in ("release", "ready"):
            if os.path.exists(os.path.join(gate_dir, f)):
                os.unlink(os.path.join(gate_dir, f))
        argv = server_argv(spec, gate_dir) if gated else list(spec["command"])
        os.makedirs(log_dir, exist_ok=True)
        self.log_path = os.path.join(log_dir, "%s-%s.log" % (a.tag, spec["name"]))
        self.logf = open(self.log_path, "w", encoding="utf-8")
        self.argv = argv
        env = server_env(spec, a, spec["index"])
        self.env_shown = dict(spec["env"], **{k: env.get(k) for k in bare_env(spec, a, spec["index"])})
        procs = os.path.join(self.cgroup, "cgroup.procs") if self.cgroup else None

        def join_cgroup():
            if procs:
                try:
                    with open(procs, "w", encoding="utf-8") as f:
                        f.write(str(os.getpid()))
                except OSError:
                    pass  # not in the cgroup: vram_check's container checks then say so

        self.cgroup_line = None
        self.started = now()
        self.proc = subprocess.Popen(argv, env=env, stdout=self.logf, stderr=subprocess.STDOUT,
                                     start_new_session=True, cwd="/tmp", preexec_fn=join_cgroup)
        if self.cgroup:
            try:
                with open("/proc/%d/cgroup" % self.proc.pid, encoding="utf-8") as f:
                    self.cgroup_line = f.read().strip()
            except OSError as exc:
                self.cgroup_line = "unreadable: %s" % exc
        self.healthy_at = None

    def pids(self):
        """This model's process and its descendants (vLLM's API server, engine core, workers)."""
        children = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open("/proc/%s/stat" % d, encoding="utf-8") as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
                children.setdefault(ppid, []).append(int(d))
        out, todo = set(), [self.proc.pid]
        while todo:
            pid = todo.pop()
            out.add(pid)
            todo.extend(children.get(pid, []))
        return out

    def log_text(self):
        self.logf.flush()
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.logf.close()


def healthy(url):
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status == 200
    except Exception:  # pylint: disable=broad-except
        return False


def kv_capacity(server):
    """vLLM's own figures: the log's KV lines and cache_config_info's num_gpu_blocks."""
    text = server.log_text()
    out = {}
    m = re.findall(r"GPU KV cache size: ([\d,]+) tokens", text)
    if m:
        out["kv_tokens"] = int(m[-1].replace(",", ""))
    m = re.findall(r"Available KV cache memory: ([\d.]+) GiB", text)
    if m:
        out["kv_gib"] = float(m[-1])
    m = re.findall(r"Maximum concurrency for ([\d,]+) tokens per request: ([\d.]+)x", text)
    if m:
        out["max_concurrency"] = float(m[-1][1])
    for pat, key in ((r"Loading weights took ([\d.]+) GiB", "weights_gib"),
                     (r"Model loading took ([\d.]+) GiB", "model_loading_gib"),
                     (r"init engine \(profile, create kv cache, warmup model\) took ([\d.]+) s", "engine_init_s"),
                     (r"torch.compile takes ([\d.]+) s in total", "compile_s"),
                     (r"[Cc]ompil\w+ .*took ([\d.]+) s", "compile_any_s"),
                     (r"Graph capturing finished in ([\d.]+) secs?", "graph_capture_s"),
                     (r"Directly load the compiled graph\(s\) .* took ([\d.]+) s", "graph_loaded_from_cache_s")):
        m = re.findall(pat, text)
        if m:
            out[key] = float(m[-1])
    try:
        with urllib.request.urlopen("http://127.0.0.1:%s/metrics" % server.spec["port"], timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("vllm:cache_config_info"):
                    b = re.search(r'num_gpu_blocks="(\d+)"', line)
                    s = re.search(r'block_size="(\d+)"', line)
                    if b:
                        out["metric_num_gpu_blocks"] = int(b.group(1))
                    if s:
                        out["metric_block_size"] = int(s.group(1))
    except Exception as exc:  # pylint: disable=broad-except
        out["metrics_error"] = str(exc)
    return out


KEY = re.compile(r"GPU KV cache size|Available KV cache memory|Maximum concurrency|Loading weights took|"
                 r"Model loading took|torch.compile|compil|Graph capturing|init engine|kvcached|KVCACHED|"
                 r"Error|error|Traceback|WARNING|memory profiling|CUDA graph|cudagraph|Using .* backend|"
                 r"FLASH_ATTN|Starting vLLM|V2 [Mm]odel [Rr]unner|Application startup complete")


def key_lines(server, limit=80):
    """The lines of a server's log that the figures rest on (the full log stays on the machine)."""
    lines = [x[-400:] for x in server.log_text().splitlines() if KEY.search(x)]
    return lines[:limit // 2] + lines[-(limit // 2):] if len(lines) > limit else lines


def vram_expectations(a, servers):
    """vram_check's per-GPU and per-container options (issue 17 item 4): each model's "container"
    (its cgroup's id, the name vram_check shows without a Docker daemon) must run on exactly the
    spec's GPUs, with --expect-model GiB where given; each GPU of the specs against --expect-gpu."""
    containers, gpus = {}, {}
    models = dict(x.split("=", 1) for x in a.expect_model)
    for s in servers:
        if not s.cgroup:
            continue
        entry = {"gpus": list(s.spec["gpus"] or ["0"])}
        if s.spec["name"] in models:
            entry.update(expected_gib=float(models[s.spec["name"]]), tolerance_gib=a.expect_model_tolerance)
        containers[s.cid[:12]] = entry
        for g in entry["gpus"]:
            gpus[str(g)] = None
    if a.expect_gpu is not None:
        for g in gpus or {"0": None}:
            gpus[g] = {"expected_gib": a.expect_gpu, "tolerance_gib": a.expect_gpu_tolerance}
    out = {}
    if containers:
        out["containers"] = containers
    if gpus:
        out["gpus"] = gpus
    return out


def run_vram_check(a, module_args):
    """The vram_check module run as Ansible runs it (its arguments in a file); its JSON answer."""
    args = {"ANSIBLE_MODULE_ARGS": module_args}
    path = os.path.join(a.logs, "vram_args.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(args, f)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.join(ROOT, "collections") + ":" + env.get("PYTHONPATH", "")
    res = subprocess.run([sys.executable, VRAM_CHECK, path], capture_output=True, text=True, env=env, check=False)
    try:
        return json.loads(res.stdout[res.stdout.index("{"):])
    except ValueError:
        return {"failed": True, "msg": "no JSON answer: %s %s" % (res.stdout[-2000:], res.stderr[-2000:])}


def vram_check(a, servers, label):
    """The collection's vram_check module at rest (its defaults: 5 samples 1 s apart within 256 MiB)."""
    args = {"ANSIBLE_MODULE_ARGS": dict({"settle_samples": 5, "settle_interval": 1.0, "settle_delta_mib": 256,
                                         "timeout": 120}, **vram_expectations(a, servers))}
    t0 = now()
    out = run_vram_check(a, args["ANSIBLE_MODULE_ARGS"])
    if not out.get("gpus"):
        log("vram_check said: %s" % out.get("msg"))
        return {"error": out.get("msg"), "options": args["ANSIBLE_MODULE_ARGS"]}
    per_model = {}
    owner = {}
    for s in servers:
        for pid in s.pids():
            owner[pid] = s.spec["name"]
    for gpu in out.get("gpus", []):
        for p in gpu.get("processes", []):
            name = owner.get(p["pid"], "other")
            per_model.setdefault(name, {"used_mib": 0, "processes": []})
            per_model[name]["used_mib"] += p.get("used_mib") or 0
            per_model[name]["processes"].append({"pid": p["pid"], "command": p.get("command"),
                                                 "used_mib": p.get("used_mib")})
    rep = {"label": label, "took_s": round(now() - t0, 2), "settled": out.get("settled"),
           "used_mib": out.get("used_mib"), "used_gib": out.get("used_gib"), "msg": out.get("msg"),
           "per_model": per_model,
           "gpus": [{k: g.get(k) for k in ("index", "name", "total_mib", "used_mib", "reserved_mib", "unattributed_mib")}
                    for g in out.get("gpus", [])],
           "driver_version": out.get("driver_version"), "memory_api": out.get("memory_api"),
           "process_api": out.get("process_api"),
           # The per-GPU and per-container verdicts (issue 17 items 4 and 6).
           "failed": bool(out.get("failed")), "options": args["ANSIBLE_MODULE_ARGS"],
           "gpu_summary": out.get("gpu_summary"), "gpu_report": out.get("gpu_report"),
           "containers": out.get("containers"), "notes": out.get("notes"),
           "cgroups": {s.spec["name"]: s.cgroup_line for s in servers}}
    shares = {k: v["used_mib"] for k, v in per_model.items()}
    log("vram_check %s: %s MiB (%s) per model %s" % (label, rep["used_mib"], rep["msg"], shares))
    log("vram_check %s per GPU (failed=%s): %s; containers %s" % (
        label, rep["failed"], rep["gpu_summary"],
        {k: (v.get("gpus"), v.get("ok")) for k, v in (rep["containers"] or {}).items()}))
    return rep


def at_rest(a, servers, rest):
    """--at-rest CMD: a shell command run while the models rest (before they stop), told each
    model's "container" (GV_CONTAINERS: name=short id@its GPUs, space-separated) and the harness's
    resting reading (GV_REST_USED_MIB, per GPU GV_REST_GPU_MIB: index=MiB). Its environment drops PYTHONPATH and LD_PRELOAD (the harness's
    own), so that what it starts sees a plain machine. Output goes to --logs/<tag>-at-rest.log."""
    env = dict(os.environ)
    for k in ("PYTHONPATH", "LD_PRELOAD"):
        env.pop(k, None)
    env["GV_CONTAINERS"] = " ".join("%s=%s@%s" % (s.spec["name"], s.cid[:12], ",".join(s.spec["gpus"] or ["0"]))
                                    for s in servers)
    env["GV_REST_USED_MIB"] = str(rest.get("used_mib") or "")
    env["GV_REST_GPU_MIB"] = " ".join("%s=%s" % (g.get("index"), g.get("used_mib")) for g in rest.get("gpus") or [])
    path = os.path.join(a.logs, "%s-at-rest.log" % a.tag)
    t0 = now()
    with open(path, "w", encoding="utf-8") as f:
        res = subprocess.run(a.at_rest, shell=True, env=env, stdout=f, stderr=subprocess.STDOUT, check=False)
    log("at rest: %r rc=%s in %.1f s, output %s" % (a.at_rest, res.returncode, now() - t0, path))
    return {"cmd": a.at_rest, "rc": res.returncode, "took_s": round(now() - t0, 1), "log": path,
            "containers": env["GV_CONTAINERS"]}


def burst(a, servers):
    """a.requests requests of a.prompt_tokens random token ids and a.max_tokens generated tokens
    to every model at once; NVML sampled every 0.2 s through it for the peak."""
    stop = threading.Event()
    peak = {"used_mib": 0}

    def sample():
        with _nvml.Nvml() as n:
            h = n.handle(0)
            while not stop.is_set():
                used = n.memory(h).used / MIB
                if used > peak["used_mib"]:
                    peak["used_mib"] = used
                    peak["at_s"] = round(now() - t0, 2)
                stop.wait(0.2)

    def one(spec, i):
        rnd = random.Random(i)
        body = {"model": spec["name"], "prompt": [rnd.randrange(1000, 90000) for _ in range(a.prompt_tokens)],
                "max_tokens": a.max_tokens, "ignore_eos": True, "temperature": 0}
        req = urllib.request.Request("http://127.0.0.1:%s/v1/completions" % spec["port"],
                                     data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        t = now()
        with urllib.request.urlopen(req, timeout=a.burst_timeout) as r:
            got = json.loads(r.read())
        return now() - t, got["usage"]["completion_tokens"]

    t0 = now()
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    results = {s.spec["name"]: [] for s in servers}
    errors = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=a.requests * len(servers)) as ex:
        futs = {ex.submit(one, s.spec, i): s.spec["name"] for s in servers for i in range(a.requests)}
        for f in concurrent.futures.as_completed(futs):
            try:
                results[futs[f]].append(f.result())
            except Exception as exc:  # pylint: disable=broad-except
                errors.append("%s: %s" % (futs[f], exc))
    took = now() - t0
    stop.set()
    th.join()
    rep = {"requests_per_model": a.requests, "prompt_tokens": a.prompt_tokens, "max_tokens": a.max_tokens,
           "took_s": round(took, 1), "peak_used_mib": round(peak["used_mib"]), "peak_at_s": peak.get("at_s"),
           "errors": errors[:5], "error_count": len(errors),
           "per_model": {k: {"done": len(v), "completion_tokens": sum(x[1] for x in v),
                             "max_latency_s": round(max([x[0] for x in v] or [0]), 1)} for k, v in results.items()}}
    log("burst: %s" % json.dumps(rep))
    return rep


def settled_free(a, limit_s=60):
    """Wait until NVML's used memory stays put (the harness's own check that the GPU is idle)."""
    with _nvml.Nvml() as n:
        h = n.handle(0)
        last, t = None, now()
        while now() - t < limit_s:
            used = n.memory(h).used / MIB
            if last is not None and abs(used - last) < 64:
                return used
            last = used
            time.sleep(1)
        return last


def gpu_facts():
    with _nvml.Nvml() as n:
        h = n.handle(0)
        return {"name": n.name(h), "driver": n.driver_version(), "total_mib": round(n.memory(h).total / MIB),
                "used_mib_before": round(n.memory(h).used / MIB)}


def versions():
    out = {}
    for mod in ("vllm", "torch", "transformers", "kvcached"):
        try:
            from importlib.metadata import version
            out[mod] = version(mod)
        except Exception:  # pylint: disable=broad-except
            out[mod] = None
    return out


def cache_listing(a, specs):
    """The compile cache keys each model's folder holds (VLLM_CACHE_ROOT/torch_compile_cache/<key>)."""
    out = {}
    for s in specs:
        root = cache_dir(s, a)
        keys = sorted(os.path.basename(p) for p in glob.glob(os.path.join(root, "torch_compile_cache", "*")))
        size = 0
        for d, _, fs in os.walk(root):
            size += sum(os.path.getsize(os.path.join(d, f)) for f in fs if os.path.isfile(os.path.join(d, f)))
        factors = {}
        for p in glob.glob(os.path.join(root, "torch_compile_cache", "*", "rank_0_0", "*", "cache_key_factors.json")):
            try:
                with open(p, encoding="utf-8") as f:
                    fj = json.load(f)
                factors[p.split("torch_compile_cache/")[1]] = {k: (v if not isinstance(v, (dict, list)) else
                                                                   "<%d entries>" % len(v)) for k, v in fj.items()}
            except (OSError, ValueError):
                pass
        tri = 0
        for d, _, fs in os.walk(os.path.join(root, TRITON_SUBDIR)):
            tri += sum(os.path.getsize(os.path.join(d, f)) for f in fs if os.path.isfile(os.path.join(d, f)))
        out[s["name"]] = {"folder": root, "keys": keys, "mib": round(size / MIB, 1), "factors": factors,
                          "triton_mib": round(tri / MIB, 1)}
    return out


def scratch_listing(a, specs):
    """What each model wrote outside its cache volume (HOME, TMPDIR of its run): MiB per folder two
    levels down. A recreated container loses all of it; a large entry is a cache the role misses."""
    out = {}
    if not a.scratch:
        return out
    for s in specs:
        base = os.path.join(a.scratch, "m%d" % s["index"])
        sizes = {}
        for d, _, fs in os.walk(base):
            rel = os.path.relpath(d, base).split(os.sep)
            key = "/".join(rel[:3])
            sizes[key] = sizes.get(key, 0) + sum(os.path.getsize(os.path.join(d, f)) for f in fs
                                                 if os.path.isfile(os.path.join(d, f)))
        out[s["name"]] = {k: round(v / MIB, 1) for k, v in sorted(sizes.items()) if v >= MIB / 10}
    return out


def stop_all(servers, specs):
    for s in servers:
        s.stop()
    for spec in specs:
        lines = spec.get("gate", {}).get("shm_clean") or []
        if lines:
            argv = flat(lines)
            argv[0] = HELPER
            subprocess.run([sys.executable] + argv, check=False, capture_output=True)
        elif spec["ipc_name"]:
            for p in glob.glob("/dev/shm/%s" % spec["ipc_name"]) + glob.glob("/dev/shm/%s_*" % spec["ipc_name"]):
                os.unlink(p)


CUDA_COUNT = """
import ctypes, os, sys
cuda = ctypes.CDLL("libcuda.so.1")
rc = cuda.cuInit(0)
n = ctypes.c_int(-1)
rc2 = cuda.cuDeviceGetCount(ctypes.byref(n)) if rc == 0 else None
print("cuInit=%s cuDeviceGetCount=%s devices=%s" % (rc, rc2, n.value if rc == 0 else 0))
"""


def phase_placement(a, specs, report):
    """Issue 17 item 6 without a model: the device selection a model entry's gpus give a bare
    process (device_env of the spec's device request), as CUDA sees it (the driver API's device
    count; 100 = CUDA_ERROR_NO_DEVICE), for this GPU by index and UUID, another index and an
    unknown UUID; and vram_check naming a GPU the host lacks."""
    with _nvml.Nvml() as n:
        uuid = n.uuid(n.handle(0)) if hasattr(n, "uuid") else None
    probes = {}
    for gpus in (["0"], [uuid] if uuid else None, ["1"], ["GPU-00000000-0000-0000-0000-000000000000"], None):
        model = {"name": "probe", "gpus": gpus} if gpus else {"name": "probe"}
        env = dict(os.environ)
        denv = device_env(_placement.device_requests(model))
        for k, v in denv.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        res = subprocess.run([sys.executable, "-c", CUDA_COUNT], capture_output=True, text=True, env=env, check=False)
        key = ",".join(gpus) if gpus else "no gpus (count -1)"
        probes[key] = {"device_requests": _placement.device_requests(model), "env": denv,
                       "cuda": (res.stdout + res.stderr).strip()[-300:]}
        log("placement %s: %s -> %s" % (key, denv, probes[key]["cuda"]))
    report["probes"] = probes
    checks = {}
    for label, opts in (("gpus 0 by index", {"gpus": {"0": None}}),
                        ("gpus by UUID", {"gpus": {uuid: None}} if uuid else None),
                        ("gpus 1 (absent)", {"gpus": {"1": None}}),
                        ("container on GPU 1 (absent)", {"containers": {"0123456789ab": {"gpus": [1]}}})):
        if opts is None:
            continue
        out = run_vram_check(a, dict({"settle_samples": 1}, **opts))
        checks[label] = {"options": opts, "failed": bool(out.get("failed")), "msg": out.get("msg"),
                         "gpu_summary": out.get("gpu_summary")}
        log("vram_check %s: failed=%s %s" % (label, checks[label]["failed"], out.get("msg")))
    report["vram_checks"] = checks
    report["rest"] = {"placement": True}


def phase_seq(a, specs, report):
    gate_root = a.gate_root
    servers = [Server(s, a, local_gate(s, gate_root), a.logs) for s in specs]
    report["argv"] = {s.spec["name"]: s.argv[5:] for s in servers}
    report["env"] = {s.spec["name"]: s.env_shown for s in servers}
    time.sleep(2)
    report["gated_used_mib"] = round(settled_free(a, 10))
    boots = {}
    try:
        for s in servers:
            cmd = helper_argv(s.spec, s.gate_dir, specs)
            log("gate %s: %s" % (s.spec["name"], " ".join(cmd[1:])))
            t0 = now()
            # systemd would fail the unit when its server exits; here the harness watches it.
            helper = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            while helper.poll() is None and s.proc.poll() is None:
                time.sleep(0.5)
            if helper.poll() is None:
                helper.kill()
            out, err = helper.communicate()
            res = subprocess.CompletedProcess(cmd, helper.returncode if s.proc.poll() is None else -1, out, err)
            lines = res.stdout.strip().splitlines()
            m = [re.search(r"healthy elapsed_s=([\d.]+)", x) for x in lines]
            m = [x for x in m if x]
            release = os.stat(os.path.join(s.gate_dir, "release")).st_mtime
            boots[s.spec["name"]] = {"helper_rc": res.returncode, "helper_s": round(now() - t0, 1),
                                     "start_to_healthy_s": float(m[0].group(1)) if m else None,
                                     "released_at": release, "helper_tail": lines[-3:] + res.stderr.splitlines()[-3:]}
            log("gate %s rc=%s %s" % (s.spec["name"], res.returncode, boots[s.spec["name"]]))
            if res.returncode != 0:
                report["boots"] = boots
                report["failed_log_tail"] = s.log_text()[-6000:]
                return
        report["boots"] = boots
        report["kv"] = {s.spec["name"]: kv_capacity(s) for s in servers}
        report["rest"] = vram_check(a, servers, "rest")
        if a.at_rest:
            report["at_rest"] = at_rest(a, servers, report["rest"])
        if a.requests:
            report["burst"] = burst(a, servers)
            report["rest_again"] = vram_check(a, servers, "rest again")
    finally:
        report["log_lines"] = {s.spec["name"]: key_lines(s) for s in servers}
        stop_all(servers, specs)


FAKE_SYSTEMCTL = """#!/bin/sh
# stand-in for the helpers (no systemd here): every unit is starting, no job list
case "$1" in show) printf 'ActiveState=activating\\nSubState=start-post\\n';; esac
exit 0
"""


def chain_models(models, gpus):
    """Issue 18: the inventory's models once per GPU, each copy placed on that GPU (gpus: [g]),
    copies after the first named <name>-g<g> on port + 100 * g. Listed GPU by GPU in the
    inventory's order, so placement gives one chain per GPU (_placement.predecessors)."""
    out = []
    for m in models:
        for g in gpus:
            c = dict(m, gpus=[g])
            if g != gpus[0]:
                c["name"] = "%s-g%s" % (m["name"], g)
                c["port"] = int(m["port"]) + 100 * int(g)
            out.append(c)
    return out


def phase_chains(a, specs, report):
    """Every model's unit started at once, as systemd starts them at boot: each server behind
    its gate, each model's health helper (the spec's line, its --previous-* pairs included)
    started at the same moment; the gates order each GPU's chain, the chains run side by side."""
    fake_bin = os.path.join(a.logs, "fake-systemctl")
    os.makedirs(fake_bin, exist_ok=True)
    with open(os.path.join(fake_bin, "systemctl"), "w", encoding="utf-8") as f:
        f.write(FAKE_SYSTEMCTL)
    os.chmod(os.path.join(fake_bin, "systemctl"), 0o755)
    henv = dict(os.environ, PATH=fake_bin + ":" + os.environ["PATH"])
    report["chains"] = _placement.chains([{"name": s["name"], "gpus": s["gpus"]} for s in specs])
    report["predecessors"] = {s["name"]: [specs[j]["name"] for j in b]
                              for s, b in zip(specs, _placement.predecessors(
                                  [{"name": s["name"], "gpus": s["gpus"]} for s in specs]))}
    log("chains %s; predecessors %s" % (report["chains"], report["predecessors"]))
    servers = [Server(s, a, local_gate(s, a.gate_root), a.logs) for s in specs]
    report["argv"] = {s.spec["name"]: s.argv[5:] for s in servers}
    report["env"] = {s.spec["name"]: s.env_shown for s in servers}
    t0 = now()
    helpers = {}
    for s in servers:
        cmd = helper_argv(s.spec, s.gate_dir, specs)
        helpers[s.spec["name"]] = (s, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                       text=True, env=henv))
    boots = {}
    try:
        pending = dict(helpers)
        while pending and now() - t0 < a.timeout:
            for name, (s, h) in list(pending.items()):
                if h.poll() is not None or s.proc.poll() is not None:
                    if h.poll() is None:
                        h.kill()
                    out = h.communicate()[0]
                    lines = out.strip().splitlines()
                    m = [re.search(r"healthy elapsed_s=([\d.]+)", x) for x in lines]
                    m = [x for x in m if x]

                    def mtime(f):
                        p = os.path.join(s.gate_dir, f)
                        return round(os.stat(p).st_mtime - t0, 2) if os.path.exists(p) else None
                    boots[name] = {"helper_rc": h.returncode if s.proc.poll() is None else -1,
                                   "gpus": s.spec["gpus"], "released_s": mtime("release"), "ready_s": mtime("ready"),
                                   "start_to_healthy_s": float(m[0].group(1)) if m else None,
                                   "helper_lines": [x[-220:] for x in lines]}
                    r, h_s, rd = boots[name]["released_s"], boots[name]["start_to_healthy_s"], boots[name]["ready_s"]
                    boots[name]["settle_s"] = round(rd - r - h_s, 2) if None not in (r, h_s, rd) else None
                    log("chain %s: %s" % (name, {k: v for k, v in boots[name].items() if k != "helper_lines"}))
                    del pending[name]
            time.sleep(0.5)
        report["boots"] = boots
        report["serve_s"] = max([b["ready_s"] or 0 for b in boots.values()] or [0])
        ok = len(boots) == len(servers) and all(b["helper_rc"] == 0 for b in boots.values())
        report["kv"] = {s.spec["name"]: kv_capacity(s) for s in servers}
        if not ok:
            report["failed_log_tail"] = {s.spec["name"]: s.log_text()[-4000:] for s in servers if s.proc.poll() is not None}
            return
        report["rest"] = vram_check(a, servers, "rest (chains)")
        if a.at_rest:
            report["at_rest"] = at_rest(a, servers, report["rest"])
    finally:
        for _, h in helpers.values():
            if h.poll() is None:
                h.kill()
        report["log_lines"] = {s.spec["name"]: key_lines(s, 40) for s in servers}
        stop_all(servers, specs)


def phase_concurrent(a, specs, report):
    servers = [Server(s, a, local_gate(s, a.gate_root), a.logs, gated=False) for s in specs]
    report["argv"] = {s.spec["name"]: s.argv for s in servers}
    t0 = now()
    try:
        pending = {s.spec["name"]: s for s in servers}
        while pending and now() - t0 < a.timeout:
            for name, s in list(pending.items()):
                if s.proc.poll() is not None:
                    report.setdefault("exited", {})[name] = s.proc.returncode
                    del pending[name]
                elif healthy(s.spec["health_url"]):
                    report.setdefault("start_to_healthy_s", {})[name] = round(now() - t0, 1)
                    del pending[name]
            time.sleep(0.2)
        report["kv"] = {s.spec["name"]: kv_capacity(s) for s in servers}
        if "exited" in report:
            report["failed_log_tail"] = {s.spec["name"]: s.log_text()[-4000:] for s in servers}
        if any(s.proc.poll() is None for s in servers):
            # What the models that came up hold (a survivor's KV may exceed its slice).
            report["rest"] = vram_check(a, servers, "rest (concurrent start)")
    finally:
        report["log_lines"] = {s.spec["name"]: key_lines(s) for s in servers}
        stop_all(servers, specs)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("phase", choices=("seq", "concurrent", "single", "specs", "placement", "chains"))
    p.add_argument("--strategy", choices=("static", "kvcached"), default="static")
    p.add_argument("--tag", required=True, help="names this run's files")
    p.add_argument("--out", required=True, help="the JSON report goes here")
    p.add_argument("--logs", default="/root/gv/logs", help="the servers' full logs go here")
    p.add_argument("--models", default="/root/gv/models")
    p.add_argument("--cache-root", default="/root/gv/vllm-cache")
    p.add_argument("--gate-root", default="/run/multillm-gate")
    p.add_argument("--bin", default="/root/gv/bin", help="holds the `vllm` command")
    p.add_argument("--preload", default="/lib/x86_64-linux-gnu/libstdc++.so.6")
    p.add_argument("--requests", type=int, default=128, help="per model; 0: no burst")
    p.add_argument("--prompt-tokens", type=int, default=512)
    p.add_argument("--max-tokens", type=int, default=512)
    p.add_argument("--burst-timeout", type=float, default=240)
    p.add_argument("--timeout", type=float, default=400, help="concurrent phase: seconds to healthy")
    p.add_argument("--total-mib", type=float, default=143771, help="specs phase: the card's memory")
    p.add_argument("--fresh-cache", action="store_true", help="empty the models' vLLM cache folders first")
    p.add_argument("--gpus", default="0", help="every model's gpus (indexes or UUIDs, comma-separated); "
                   "'' leaves them out (the spec's request for every GPU, count -1)")
    p.add_argument("--scratch", default="/tmp/gvs", help="fresh HOME and TMPDIR per model and run under this "
                   "folder ('': the harness's own, shared by every run)")
    p.add_argument("--no-cgroup", dest="cgroup", action="store_false",
                   help="leave the servers in the harness's cgroup (vram_check then names no container)")
    p.add_argument("--port-offset", type=int, default=0, help="added to the inventory's ports (dry runs here)")
    p.add_argument("--only", help="the inventory's models of these names only (comma-separated)")
    p.add_argument("--triton-in-cache", action="store_true",
                   help="every model's env gets TRITON_CACHE_DIR inside its vLLM cache volume (<mount>/%s); "
                   "the spec sets the same since b553664" % TRITON_SUBDIR)
    p.add_argument("--at-rest", metavar="CMD", help="seq/single: a shell command run while the models rest "
                   "(after the resting vram_check, before the burst); see at_rest()")
    p.add_argument("--expect-gpu", type=float, help="vram_check: each spec GPU's expected GiB at rest")
    p.add_argument("--expect-gpu-tolerance", type=float, default=2.0)
    p.add_argument("--expect-model", action="append", default=[], metavar="NAME=GIB",
                   help="vram_check: a model's expected GiB at rest (its container's expectation)")
    p.add_argument("--expect-model-tolerance", type=float, default=1.0)
    a = p.parse_args()
    # `timeout` ends a phase with SIGTERM: stop the servers and write the report all the same.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.makedirs(a.out, exist_ok=True)
    os.makedirs(a.logs, exist_ok=True)
    if a.phase == "specs":
        # No GPU needed: what the run would start, for an H200's 143,771 MiB (or --total-mib).
        for st in ("static", "kvcached"):
            a.strategy = st
            specs = specs_for(a, models_for_run(a, a.total_mib))
            for s in specs:
                print("%s %s:\n  argv %s\n  env %s\n  bare process env %s\n  device_requests %s\n"
                      "  cache folder %s\n  gate %s\n  vram_check containers[].gpus %s" % (
                          st, s["name"], " ".join(s["command"]), json.dumps(s["env"]),
                          json.dumps(bare_env(s, a, s["index"])), json.dumps(s["device_requests"]), cache_dir(s, a),
                          " ".join(helper_argv(s, local_gate(s, a.gate_root), specs)[1:]),
                          {container_id(s, a)[:12]: list(s["gpus"] or ["0"])}))
        return 0
    total = gpu_total_mib()
    models = models_for_run(a, total)
    if a.phase == "single":
        models = models[:1]
    if a.phase == "chains":
        models = chain_models(models, [g for g in a.gpus.split(",") if g] or ["0", "1"])
    specs = specs_for(a, models)
    if a.fresh_cache:
        for s in specs:
            shutil.rmtree(cache_dir(s, a), ignore_errors=True)
    if a.scratch:
        for s in specs:
            shutil.rmtree(os.path.join(a.scratch, "m%d" % s["index"]), ignore_errors=True)
    report = {"phase": a.phase, "strategy": a.strategy, "tag": a.tag, "only": a.only,
              "triton_in_cache": a.triton_in_cache,
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "gpu": gpu_facts(),
              "versions": versions(), "models": [{k: m[k] for k in ("name", "model", "gpu_memory_utilization",
                                                                    "max_model_len")} for m in models],
              "cache_before": cache_listing(a, specs),
              "bare_env": {s["name"]: bare_env(s, a, s["index"]) for s in specs},
              "device_requests": {s["name"]: s["device_requests"] for s in specs}}
    log("%s %s: %s" % (a.phase, a.strategy, json.dumps(report["models"])))
    try:
        if a.phase == "concurrent":
            phase_concurrent(a, specs, report)
        elif a.phase == "placement":
            phase_placement(a, specs, report)
        elif a.phase == "chains":
            phase_chains(a, specs, report)
        else:
            phase_seq(a, specs, report)
    finally:
        report["cache_after"] = cache_listing(a, specs)
        report["scratch_after"] = scratch_listing(a, specs)
        with open(os.path.join(a.out, "%s.json" % a.tag), "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1, default=str)
        log("report %s" % os.path.join(a.out, "%s.json" % a.tag))
    return 0 if report.get("rest") and not report["rest"].get("error") else 1


if __name__ == "__main__":
    sys.exit(main())
