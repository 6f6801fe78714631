# -*- coding: utf-8 -*-
# Copyright: llmops.multillm contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""One spec per model: everything model_stack renders for it, computed once, in Python.

model_specs(models, settings) turns multillm_models and the model_stack_* settings into
a list of dicts (container, unit, image, entrypoint, argv, env, ports, volumes, device
request, gate, kvcached pool, unit command lines...), in boot order. The role's tasks and
templates only read these dicts. model_endpoints() is the hand-off to the gateway.
unit_name() and container_name() are the one place a model's unit and container are named;
model_removals() finds, from what the host has, the models that left the list.

The input is assumed to have passed _contract.contract_errors and model_stack_errors.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.llmops.multillm.plugins.module_utils._contract import (
    CONTRACT_DEFAULTS,
    CPU_KVCACHE_GIB_DEFAULT,
    KVCACHED_POOL_PREFIX,
    MODEL_STACK_DEFAULTS,
    RECIPE_NONE,
    RECIPES,
    kvcached_ipc_name,
    version_tuple,
)
from ansible_collections.llmops.multillm.plugins.module_utils import _placement

import re

# The gate (roles/model_stack/files/multillm-model-wait): every model's unit has the
# RuntimeDirectory /run/<GATE_ROOT>/<model>, mounted read-only into its container at
# GATE_MOUNT. The container's entrypoint is a few lines of Python (every vLLM image has
# python3) that wait for the file `release` there, checking every GATE_POLL_S (a stat, no
# process spawned), and then execute the model server in its place, as PID 1.
GATE_ROOT = "multillm-gate"
GATE_MOUNT = "/run/multillm-gate"
GATE_POLL_S = 0.005
GATE_SCRIPT = "\n".join([
    "import os, signal, sys, time",
    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))",
    "signal.signal(signal.SIGINT, lambda *_: sys.exit(130))",
    "while not os.path.exists(\"%s/release\"):" % GATE_MOUNT,
    "    time.sleep(%s)" % GATE_POLL_S,
    "signal.signal(signal.SIGPIPE, signal.SIG_DFL)",
    "os.execvp(sys.argv[1], sys.argv[1:])",
])
GATE_ENTRYPOINT = ["python3", "-I", "-S", "-c", GATE_SCRIPT]
# Seconds of a unit's start budget beyond the health timeouts (container start, gate).
START_MARGIN_S = 60
# kvcached < 0.1.6 reads KVCACHED_MAX_CACHED_TOKENS=0 as unlimited: there "off" is vLLM's flag.
KVCACHED_ZERO_IS_OFF = (0, 1, 6)
# vLLM made Model Runner V2 its default for Qwen3 dense models in 0.22.0 (#39337), Llama and
# Mistral in 0.23.0 (#43458), all dense models in 0.25.0 (#44443); kvcached 0.1.6 refuses it
# ("set VLLM_USE_V2_MODEL_RUNNER=0", seen with vLLM 0.26.0). From 0.22.0 on, kvcached models
# get VLLM_USE_V2_MODEL_RUNNER=0 (a model's own env may set 1 for a kvcached that supports it).
VLLM_V2_RUNNER_DEFAULT = (0, 22, 0)
# The flags of vLLM's prefix cache: one polarity's presence decides.
PREFIX_OFF = "--no-enable-prefix-caching"
# A Docker device request for every GPU through the nvidia driver (--gpus all): a model
# without `gpus` (placement: plugins/module_utils/_placement.py).
GPU_REQUEST = [dict(_placement.ALL_GPUS_REQUEST)]
LOOPBACK = "127.0.0.1"
# vLLM's cache (torch.compile artefacts, CUDA graphs' compiled code), one host folder per model
# so a restart or a reboot starts warm (issue 20 item 4). vLLM keys every entry on its version,
# the model config, the traced code, torch/CUDA/GPU and the vLLM-relevant environment, so a
# folder never serves another model or release; entries of old keys stay (30-45 MiB each on an
# H200, docs/benchmarks.md) until removed: README "Running against a real H100".
VLLM_CACHE_DIR = "/var/lib/multillm/vllm-cache"
VLLM_CACHE_MOUNT = "/root/.cache/vllm"
# Triton's JIT cache inside the same volume: vLLM 0.26 on torch 2.11 leaves it at ~/.triton, so a
# recreated container compiled vLLM's warm-up kernels again (OCR-sized model on an H200: 14-16 s
# per warm start, docs/benchmarks.md, third run of 2026-12-04).
TRITON_CACHE_DIR = VLLM_CACHE_MOUNT + "/triton"


def _num(value):
    """A number as the shortest text that reads back the same (2 -> '2', 2.0 -> '2', 0.5 -> '0.5')."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _env_value(value):
    """Docker wants every value a string; booleans as true/false."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return _num(value) if isinstance(value, (int, float)) else str(value)


def settings_with_defaults(settings):
    s = dict(CONTRACT_DEFAULTS)
    s.update(MODEL_STACK_DEFAULTS)
    s["model_stack_vram_settle"] = None
    s["model_stack_gpu_device_request"] = None
    s.update(settings or {})
    # Defaults that follow another setting (defaults/main.yml templates them alike).
    if s["model_stack_vram_settle"] is None:
        s["model_stack_vram_settle"] = bool(s["multillm_gpu_required"])
    if s["model_stack_gpu_device_request"] is None:
        s["model_stack_gpu_device_request"] = bool(s["multillm_gpu_required"])
    s["model_stack_kvcached_defaults"] = dict(MODEL_STACK_DEFAULTS["model_stack_kvcached_defaults"],
                                              **(s["model_stack_kvcached_defaults"] or {}))
    return s


def _flag(token):
    """The flag a `vllm serve` argument sets, without value and polarity: '--no-x=1' -> '--x'."""
    flag = token.split("=", 1)[0]
    return "--" + flag[len("--no-"):] if flag.startswith("--no-") else flag


def recipe_name(model):
    """The recipe a model entry gets: its `recipe`, else the first whose pattern matches the
    last path segment of its model id (lower case), else none."""
    if model.get("recipe"):
        return model["recipe"]
    tail = str(model.get("model", "")).rstrip("/").rsplit("/", 1)[-1].lower()
    for name in sorted(RECIPES):
        if re.fullmatch(RECIPES[name]["match"], tail):
            return name
    return RECIPE_NONE


def recipe_args(model):
    """The recipe's flags, less those the model's extra_args set itself (either polarity)."""
    name = recipe_name(model)
    if name == RECIPE_NONE:
        return []
    own = set(_flag(a) for a in model.get("extra_args") or [] if a.startswith("--"))
    args, out, i = RECIPES[name]["args"], [], 0
    while i < len(args):
        group = [args[i]]
        while i + len(group) < len(args) and not args[i + len(group)].startswith("--"):
            group.append(args[i + len(group)])
        if _flag(args[i]) not in own:
            out.extend(group)
        i += len(group)
    return out


def _kvcached(m, s):
    return dict(s["model_stack_kvcached_defaults"], **(m.get("kvcached") or {}))


def _prefix_off_by_flag(kvc, use_kvcached, s):
    """kvcached < 0.1.6 reads max_cached_tokens 0 as unlimited: there the cache is turned off
    by vLLM's flag (and kvcached gets a one-block cap)."""
    return (use_kvcached and int(kvc["max_cached_tokens"]) == 0
            and version_tuple(s["model_stack_kvcached_version"]) < KVCACHED_ZERO_IS_OFF)


def _argv(m, s, prefix_off_by_flag):
    name, port = m["name"], str(m["port"])
    max_len = ["--max-model-len", str(m["max_model_len"])] if m.get("max_model_len") is not None else []
    extra = [str(a) for a in m.get("extra_args") or []]
    if s["model_stack_server"] == "fault_injector":
        return ["python3", "/usr/local/bin/fault_injector.py", "--host", "0.0.0.0", "--port", port, "--model", name] \
            + max_len + extra
    argv = ["vllm", "serve", m["model"], "--host", "0.0.0.0", "--port", port, "--served-model-name", name]
    # The CPU mapping (model_stack_device: cpu): the CPU build sizes its KV cache from
    # VLLM_CPU_KVCACHE_SPACE (see _env), not from a fraction of a GPU.
    if s["model_stack_device"] == "gpu":
        argv += ["--gpu-memory-utilization", _num(m["gpu_memory_utilization"])]
        # Placement: --tensor-parallel-size over the model's GPUs, when above 1.
        argv += _placement.parallel_args(m)
    argv += max_len
    recipe = recipe_args(m)
    if prefix_off_by_flag and PREFIX_OFF not in recipe and PREFIX_OFF not in extra:
        argv.append(PREFIX_OFF)
    return argv + recipe + extra


def _env(m, s, kvc, use_kvcached, pool, prefix_off_by_flag):
    # First, so that model_stack_env or the model's env may move it.
    env = {"TRITON_CACHE_DIR": TRITON_CACHE_DIR} if s["model_stack_server"] == "vllm" else {}
    env.update(s["model_stack_env"] or {})
    if use_kvcached:
        env.update({
            "ENABLE_KVCACHED": "true",
            "KVCACHED_AUTOPATCH": "1",
            "KVCACHED_IPC_NAME": pool,
            "KVCACHED_MIN_RESERVED_PAGES": kvc["min_reserved_pages"],
            "KVCACHED_MAX_RESERVED_PAGES": kvc["max_reserved_pages"],
            # With prefix caching off in vLLM the cap has nothing to hold; 16 tokens (one
            # block) keeps kvcached < 0.1.6 from reading 0 as unlimited should anything be cached.
            "KVCACHED_MAX_CACHED_TOKENS": 16 if prefix_off_by_flag else kvc["max_cached_tokens"],
            "KVCACHED_PAGE_SIZE_MB": kvc["page_size_mb"],
            "KVCACHED_PAGE_PREALLOC_ENABLED": bool(kvc["page_prealloc"]),
        })
        if s["model_stack_server"] == "vllm" and \
                version_tuple(s["model_stack_vllm_version"]) >= VLLM_V2_RUNNER_DEFAULT:
            env["VLLM_USE_V2_MODEL_RUNNER"] = "0"
    else:
        # kvcached images bake ENABLE_KVCACHED=true: a model without kvcached must say no.
        env["ENABLE_KVCACHED"] = "false"
    if s["model_stack_device"] == "cpu":
        env["VLLM_CPU_KVCACHE_SPACE"] = m.get("cpu_kvcache_gib", CPU_KVCACHE_GIB_DEFAULT)
    env.update(m.get("env") or {})
    if s["model_stack_server"] == "vllm":
        # Where the per-model cache volume is mounted (model_spec's volumes); set last, so the
        # folder vLLM writes is always the mounted one.
        env["VLLM_CACHE_ROOT"] = VLLM_CACHE_MOUNT
    return dict((k, _env_value(v)) for k, v in env.items())


def _image(m, s):
    if m.get("image"):
        return m["image"]
    if s["model_stack_server"] == "fault_injector":
        return s["model_stack_image_fault_injector"]
    if s["model_stack_device"] == "cpu":
        return s["model_stack_image_cpu"]
    return s["model_stack_image_" + s["multillm_vram_strategy"]]


def endpoint_host(s):
    """The address the gateway dials for this host's models."""
    return s.get("multillm_backend_address") or LOOPBACK


def _gate_lines(spec, previous, s):
    """The unit's gate commands, each a list of lines of tokens (the template writes one flag
    and its value per continued line). `previous`: the specs this model boots behind (one on a
    single GPU; one per GPU it shares, placement decides), each as a --previous-* pair."""
    helper, name = s["model_stack_helper_path"], spec["name"]
    after = []
    if previous:
        after = [[helper, "after"], ["--name", name]]
        for p in previous:
            after += [["--previous-unit", p["unit"]], ["--previous-release", p["gate_dir"] + "/release"]]
        after.append(["--interval", _num(GATE_POLL_S)])
    health = [[helper, "health"], ["--name", name]]
    for p in previous:
        health += [["--previous-unit", p["unit"]], ["--previous-ready", p["gate_dir"] + "/ready"]]
    health += [["--gate-interval", _num(GATE_POLL_S)], ["--release", spec["gate_dir"] + "/release"]]
    # With a kvctl limit the model is ready once the limit holds (kvctl_limit below).
    if not spec["kvctl_limit_gib"]:
        health.append(["--ready", spec["gate_dir"] + "/ready"])
    health += [["--url", spec["health_url"]], ["--timeout", str(spec["health_timeout_s"])],
               ["--interval", _num(s["model_stack_health_poll_interval_s"])],
               ["--report-every", _num(s["model_stack_progress_every_s"])]]
    if s["model_stack_vram_settle"]:
        health += [["--settle"], ["--settle-interval", _num(s["model_stack_vram_settle_interval_s"])],
                   ["--settle-samples", _num(s["model_stack_vram_settle_samples"])],
                   ["--settle-delta-mib", _num(s["model_stack_vram_settle_delta_mib"])],
                   ["--settle-timeout", _num(s["model_stack_vram_settle_timeout_s"])]]
        if spec["gpus"]:
            # Only the model's own GPUs: chains on other GPUs load meanwhile.
            health.append(["--settle-gpus", ",".join(spec["gpus"])])
    kvctl = []
    if spec["kvctl_limit_gib"]:
        kvctl = [[helper, "kvctl-limit"], ["--name", name], ["--docker", s["model_stack_docker_cli"]],
                 ["--container", spec["container"]], ["--pool", spec["ipc_name"]],
                 ["--gib", _num(spec["kvctl_limit_gib"])], ["--ready", spec["gate_dir"] + "/ready"]]
    shm_clean = []
    if spec["kvcached"] and spec["ipc_mode"] == "host":
        shm_clean = [[helper, "shm-clean"], ["--pool", spec["ipc_name"]]]
    return {"after": after, "health": health, "kvctl_limit": kvctl, "shm_clean": shm_clean}


def unit_name(name, prefix):
    """The systemd unit of the model ``name``: <prefix><name>.service."""
    return "%s%s.service" % (prefix, name)


def container_name(name, prefix):
    """The container of the model ``name``: <prefix><name>."""
    return prefix + name


def env_file(name, config_dir):
    """The env file of the model ``name`` (its token, its own env)."""
    return "%s/%s.env" % (config_dir, name)


def model_removals(models, unit_files, containers, settings=None):
    """The models the host still has that left ``models``, sorted by name: a model is on the host
    when one of ``unit_files`` (paths of <prefix><name>.service) or ``containers`` (Docker's names,
    "/<prefix><name>") names it. For each: {name, unit, unit_file (the path found, or None),
    container, env_file}. Names without the prefix are not this host's models and are left alone."""
    s = settings_with_defaults(settings)
    prefix, listed = s["model_stack_name_prefix"], set(m["name"] for m in models)
    unit_re = re.compile("^%s(.+)[.]service$" % re.escape(prefix))
    found = {}  # name -> the unit file found, or None
    for path in unit_files:
        match = unit_re.match(path.rsplit("/", 1)[-1])
        if match:
            found[match.group(1)] = path
    for container in containers:
        container = container[1:] if container.startswith("/") else container
        if container.startswith(prefix) and len(container) > len(prefix):
            found.setdefault(container[len(prefix):], None)
    return [{"name": name, "unit": unit_name(name, prefix), "unit_file": found[name],
             "container": container_name(name, prefix), "env_file": env_file(name, s["model_stack_config_dir"])}
            for name in sorted(found) if name not in listed]


def model_spec(index, models, settings, before=None, start_after_s=0):
    """The spec of models[index]; `settings` as returned by settings_with_defaults. `before`:
    the indexes it boots behind (default: the previous model); `start_after_s`: the start
    budget of the longest chain before it (default: every earlier model's, as in one chain)."""
    s = settings
    m = models[index]
    name, prefix = m["name"], s["model_stack_name_prefix"]
    use_kvcached = s["multillm_vram_strategy"] == "kvcached" and s["model_stack_device"] == "gpu"
    kvc = _kvcached(m, s)
    pool = kvcached_ipc_name(KVCACHED_POOL_PREFIX + name) if use_kvcached else ""
    prefix_off_by_flag = _prefix_off_by_flag(kvc, use_kvcached, s)
    argv = _argv(m, s, prefix_off_by_flag)
    health_timeout = int(m.get("health_timeout_s", s["model_stack_health_timeout_s"]))
    settle = int(float(s["model_stack_vram_settle_timeout_s"])) if s["model_stack_vram_settle"] else 0
    before = [index - 1] if before is None and index > 0 else (before or [])
    if before and start_after_s == 0 and before == [index - 1]:
        start_after_s = sum(_own_start_s(x, s) for x in models[:index])
    # systemd's start timeout covers the wait behind the longest chain before it, then its own.
    start_timeout = start_after_s + _own_start_s(m, s)
    address = s.get("multillm_backend_address") or ""
    port = m["port"]
    gate_dir = "/run/%s/%s" % (GATE_ROOT, name)
    volumes = ["%s:%s" % (s["model_stack_hf_cache_dir"], s["model_stack_hf_cache_mount"]),
               "%s:%s:ro" % (gate_dir, GATE_MOUNT)]
    vllm_cache = ""
    if s["model_stack_server"] == "vllm":
        vllm_cache = "%s/%s" % (VLLM_CACHE_DIR, name)
        volumes.append("%s:%s" % (vllm_cache, VLLM_CACHE_MOUNT))
    if str(m["model"]).startswith("/"):
        # A local directory of weights: the same path inside, read-only.
        volumes.append("%s:%s:ro" % (m["model"], m["model"]))
    ipc_mode = s["model_stack_kvcached_ipc_mode"] if use_kvcached else "private"
    extra_ports = ["%s:%s:%s" % (address, port, port)] if address else []
    gpu_request = s["model_stack_gpu_device_request"] and s["model_stack_device"] == "gpu"
    spec = {
        "index": index,
        "name": name,
        "model": m["model"],
        "port": port,
        "container": container_name(name, prefix),
        "unit": unit_name(name, prefix),
        # The units it boots behind, space-separated (one on a single GPU; see _placement).
        "previous_unit": " ".join(unit_name(models[j]["name"], prefix) for j in before),
        "previous_units": [unit_name(models[j]["name"], prefix) for j in before],
        "image": _image(m, s),
        "entrypoint": list(GATE_ENTRYPOINT),
        "command": argv,
        "recipe": recipe_name(m) if s["model_stack_server"] == "vllm" else RECIPE_NONE,
        "gate_dir": gate_dir,
        "runtime_dir": "%s/%s" % (GATE_ROOT, name),
        "previous_gate_dir": " ".join("/run/%s/%s" % (GATE_ROOT, models[j]["name"]) for j in before),
        "start_timeout_s": start_timeout,
        "env": _env(m, s, kvc, use_kvcached, pool, prefix_off_by_flag),
        "env_file": env_file(name, s["model_stack_config_dir"]),
        "published_ports": ["%s:%s:%s" % (LOOPBACK, port, port)] + extra_ports,
        "volumes": volumes,
        "server": s["model_stack_server"],
        "device": s["model_stack_device"],
        "vram_settle": bool(s["model_stack_vram_settle"]),
        "device_requests": _placement.device_requests(m) if gpu_request else [],
        # The GPUs it is placed on as Docker and nvidia-smi name them ([] = GPU 0, every GPU visible).
        "gpus": [str(g) for g in _placement.model_gpus(m)] if _placement.has_gpus(m) else [],
        "tensor_parallel_size": _placement.tensor_parallel_size(m),
        "ipc_mode": ipc_mode,
        "shm_size": s["model_stack_shm_size"] if ipc_mode != "host" else None,
        "network": s["model_stack_network"] or None,
        "labels": {"io.llmops.multillm.managed": "true", "io.llmops.multillm.model": name,
                   "io.llmops.multillm.unit": unit_name(name, prefix)},
        "health_url": "http://%s:%s/health" % (LOOPBACK, port),
        # The KV check after the gate (module model_kv_check): vLLM's cache_config_info there,
        # against kv_tokens, the capacity in tokens the model's slice promises (None: no check).
        "metrics_url": "http://%s:%s/metrics" % (LOOPBACK, port),
        "kv_tokens": m.get("kv_tokens"),
        # The host folder of its vLLM cache ("" for the fault injector).
        "vllm_cache_dir": vllm_cache,
        "health_timeout_s": health_timeout,
        # How long the play watches the unit once the model is released: health, then settle.
        "watch_timeout_s": health_timeout + settle,
        "resting_gib": m.get("resting_gib"),
        "kvcached": use_kvcached,
        "ipc_name": pool,
        "kvctl_limit_gib": kvc["limit_gib"] if use_kvcached else 0,
        "host": endpoint_host(s),
        "api_base": "http://%s:%s/v1" % (endpoint_host(s), port),
    }
    return spec


def _own_start_s(m, s):
    """A model's own share of a start budget: its health timeout, the settle, the margin."""
    settle = int(float(s["model_stack_vram_settle_timeout_s"])) if s["model_stack_vram_settle"] else 0
    return int(m.get("health_timeout_s", s["model_stack_health_timeout_s"])) + settle + START_MARGIN_S


def model_specs(models, settings=None):
    """Every model's spec, in boot order: each boots behind the last earlier model of every
    GPU it uses (_placement.predecessors; one strict chain on a single GPU)."""
    s = settings_with_defaults(settings)
    specs = []
    for i, before in enumerate(_placement.predecessors(models)):
        after_s = max([specs[j]["start_timeout_s"] for j in before] or [0])
        spec = model_spec(i, models, s, before, after_s)
        spec["gate"] = _gate_lines(spec, [specs[j] for j in before], s)
        specs.append(spec)
    return specs


ENDPOINT_KEYS = ("name", "model", "unit", "container", "host", "port", "api_base")


def model_endpoints(models, settings=None):
    """The hand-off to the gateway: {name, model, unit, container, host, port, api_base} per
    model, host being the address the gateway dials (multillm_backend_address, else 127.0.0.1)."""
    return [dict((k, spec[k]) for k in ENDPOINT_KEYS) for spec in model_specs(models, settings)]
