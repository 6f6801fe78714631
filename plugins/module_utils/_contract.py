# -*- coding: utf-8 -*-
# Copyright: llmops.multillm contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The inventory contract of llmops.multillm: constants, defaults and every rule, once.

Pure functions on plain dicts, lists and numbers. Each check returns a list of messages,
one per broken rule, and each message names the host, the variable, the value (secrets as
<hidden>) and the rule, and says what to do. An empty list means the rule holds.

Callers: the filters llmops.multillm.multillm_contract_errors (roles/multillm, preflight)
and llmops.multillm.model_stack_errors (roles/model_stack preflight); the gateway role
calls gateway_port_errors and litellm_version_errors; _model_spec reads the defaults.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

# --- the multillm_* contract -------------------------------------------------------------

STRATEGIES = ("kvcached", "static")
# The defaults of roles/multillm/defaults/main.yml (tests/unit/test_role_defaults.py keeps
# the two equal), for callers that see a host's inventory variables only.
CONTRACT_DEFAULTS = {
    "multillm_vram_strategy": "kvcached",
    "multillm_gpu_required": True,
    "multillm_gpu_memory_gib": 79.6,
    "multillm_resting_vram_gib": 58,
    "multillm_resting_vram_tolerance_gib": 4,
    "multillm_static_utilization_cap": 0.95,
    "multillm_models": [],
    "multillm_backend_address": "",
    "multillm_hf_token": "",
}
MODEL_KEYS_REQUIRED = ("name", "model", "port", "gpu_memory_utilization")
MODEL_KEYS_OPTIONAL = (
    "image",
    "weights_gib",
    "resting_gib",
    "max_model_len",
    "extra_args",
    "env",
    "health_timeout_s",
    "kvcached",
    "recipe",
    "cpu_kvcache_gib",
)
KVCACHED_KEYS = (
    "min_reserved_pages",
    "max_reserved_pages",
    "page_size_mb",
    "max_cached_tokens",
    "page_prealloc",
    "limit_gib",
)
# Flags model_stack renders itself from the contract; setting them twice makes vLLM
# take whichever comes last, so the inventory and the running server would disagree.
MANAGED_FLAGS = (
    "--host",
    "--port",
    "--served-model-name",
    "--gpu-memory-utilization",
    "--max-model-len",
)
MANAGED_ENV = (
    "KVCACHED_IPC_NAME",
    "ENABLE_KVCACHED",
    "KVCACHED_AUTOPATCH",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "VLLM_CPU_KVCACHE_SPACE",
)
# Lower case letters, digits, '.', '_' and '-', starting with a letter or digit, at most
# 63 characters: valid as a Docker container name, inside a systemd unit name, a LiteLLM
# model name and a DNS label alike.
NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
ADDRESS_RE = re.compile(r"(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}")
PORT_MIN = 1024
PORT_MAX = 65535
UTILIZATION_MAX = 0.95
CPU_KVCACHE_GIB_DEFAULT = 1

# --- model recipes: the serving flags a model family needs -------------------------------
# A model's `recipe` names one (or `none`); without it, the first recipe whose pattern
# matches the model id's last path segment (lower case) applies. Flags the model's own
# extra_args name (either polarity, --x or --no-x) win over the recipe's.
RECIPES = {
    # vLLM's recipe for PaddleOCR-VL (vLLM >= 0.11.1), see shared research vllm.md.
    "paddleocr-vl": {
        "match": r"paddleocr-vl.*",
        "args": ["--trust-remote-code", "--max-num-batched-tokens", "16384", "--no-enable-prefix-caching",
                 "--mm-processor-cache-gb", "0"],
    },
}
RECIPE_NONE = "none"

# --- the gateway settings that share ports and secrets with the models --------------------

MASTER_KEY_MIN_LEN = 16
# LiteLLM releases the gateway refuses: older than the last proxy CVE fix, or the
# two uploads that carried malware (2026-03-24). Post releases (1.83.10.post1) are the
# same release with packaging fixes: accepted, compared by their X.Y.Z.
LITELLM_MIN_VERSION = (1, 83, 10)
LITELLM_COMPROMISED = ("1.82.7", "1.82.8")
LITELLM_VERSION_RE = re.compile(r"(\d+)\.(\d+)\.(\d+)(\.post\d+)?")

# --- model_stack's own settings ------------------------------------------------------------

SERVERS = ("vllm", "standin")
DEVICES = ("gpu", "cpu")
IPC_MODES = ("host", "private")
PREFIX_RE = re.compile(r"[a-z0-9][a-z0-9._-]*")
VERSION_RE = re.compile(r"(\d+)\.(\d+)\.(\d+)")
# kvcached limits a pool's name to 64 characters (see kvcached_ipc_name).
KVCACHED_NAME_MAX = 64
KVCACHED_GROUP_RE = re.compile(r"_g\d+")
# Every model's KVCACHED_IPC_NAME is this prefix and its name.
KVCACHED_POOL_PREFIX = "multillm_"


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def version_tuple(version):
    """(major, minor, patch) of an X.Y.Z version string, or None."""
    match = VERSION_RE.fullmatch(str(version))
    return tuple(int(g) for g in match.groups()) if match else None


def kvcached_ipc_name(name):
    """The name kvcached gives a pool for KVCACHED_IPC_NAME=name.

    kvcached (utils._sanitize_segment, 0.1.5 and 0.1.6) keeps letters, digits, '_' and '-',
    turns every other character ('.' included) into '-', and cuts the result to 64
    characters. Its pool lives in /dev/shm/<that name>, extra KV groups in <that name>_g<N>.
    """
    return "".join(c if (c.isalnum() or c in "_-") else "-" for c in name)[:KVCACHED_NAME_MAX]


def message(host, variable, value, rule, action):
    return "host %s: %s=%r: %s. %s" % (host, variable, value, rule, action)


class _Report:
    def __init__(self, host):
        self.host = host
        self.errors = []

    def add(self, variable, value, rule, action):
        self.errors.append(message(self.host, variable, value, rule, action))


# --- single rules other roles call ----------------------------------------------------------

def gateway_port_errors(port, host, variable="litellm_gateway_port"):
    """The gateway's port: an integer from 1024 to 65535."""
    if not _is_int(port) or not PORT_MIN <= port <= PORT_MAX:
        return [message(host, variable, port, "must be an integer from %d to %d" % (PORT_MIN, PORT_MAX),
                        "Pick a free unprivileged port for the gateway, e.g. 4001.")]
    return []


def litellm_version_errors(version, host, variable="litellm_gateway_version"):
    """One exact LiteLLM release (X.Y.Z or X.Y.Z.postN), not compromised, >= 1.83.10."""
    text = str(version)
    match = LITELLM_VERSION_RE.fullmatch(text) if isinstance(version, str) else None
    base = ".".join(match.groups()[:3]) if match else text
    if base in LITELLM_COMPROMISED:
        return [message(host, variable, version, "is a compromised LiteLLM release (malicious upload of 2026-03-24)",
                        "Pin a clean release, 1.83.10 or newer.")]
    if not match:
        return [message(host, variable, version, "must be an exact release such as 1.106.12 (or 1.106.12.post1)",
                        "Pin one exact version as a string; ranges make reprovisioning unrepeatable.")]
    if tuple(int(g) for g in match.groups()[:3]) < LITELLM_MIN_VERSION:
        return [message(host, variable, version,
                        "is older than 1.83.10, which fixes proxy CVE-2026-42208 and CVE-2026-40217",
                        "Pin 1.83.10 or newer.")]
    return []


def master_key_errors(key, host, variable="litellm_gateway_master_key"):
    if key in (None, ""):
        return [message(host, variable, "<unset>", "is required on the gateway host",
                        "Set it in the inventory's vault file (see inventories/h100/README.md).")]
    if not isinstance(key, str) or not key.startswith("sk-") or len(key) < MASTER_KEY_MIN_LEN:
        # The value itself is a secret: never echo it.
        return [message(host, variable, "<hidden>",
                        "must be a string that starts with 'sk-' and has at least %d characters" % MASTER_KEY_MIN_LEN,
                        "Generate one, e.g. \"sk-$(openssl rand -hex 24)\", and store it with ansible-vault.")]
    return []


# --- the multillm_* contract of one host ------------------------------------------------------

def _check_scalars(c, r):
    strategy = c.get("multillm_vram_strategy", CONTRACT_DEFAULTS["multillm_vram_strategy"])
    if strategy not in STRATEGIES:
        r.add("multillm_vram_strategy", strategy, "must be one of %s" % ", ".join(STRATEGIES),
              "Set kvcached for elastic KV memory or static for fixed slices.")

    gpu = c.get("multillm_gpu_memory_gib", CONTRACT_DEFAULTS["multillm_gpu_memory_gib"])
    gpu_ok = _is_number(gpu) and gpu > 0
    if not gpu_ok:
        r.add("multillm_gpu_memory_gib", gpu, "must be a number above 0 (GiB of one GPU)",
              "Set it to the GPU's total memory, e.g. 79.6 for an H100 80GB.")

    resting = c.get("multillm_resting_vram_gib", None)
    if resting is not None:
        if not _is_number(resting) or resting < 0:
            r.add("multillm_resting_vram_gib", resting, "must be a number of GiB, 0 or more",
                  "Set the resting VRAM the models should hold together, e.g. 58.")
        elif gpu_ok and resting > gpu:
            r.add("multillm_resting_vram_gib", resting,
                  "must not exceed multillm_gpu_memory_gib (%s GiB)" % gpu,
                  "Lower the target or correct multillm_gpu_memory_gib.")

    tolerance = c.get("multillm_resting_vram_tolerance_gib", CONTRACT_DEFAULTS["multillm_resting_vram_tolerance_gib"])
    if not _is_number(tolerance) or tolerance < 0:
        r.add("multillm_resting_vram_tolerance_gib", tolerance, "must be a number of GiB, 0 or more",
              "Set how far the measured resting VRAM may be from the target, e.g. 4.")

    cap = c.get("multillm_static_utilization_cap", UTILIZATION_MAX)
    if not _is_number(cap) or not 0 < cap <= 1:
        r.add("multillm_static_utilization_cap", cap, "must be a fraction above 0 and at most 1",
              "Keep the default 0.95 unless you know why.")

    required = c.get("multillm_gpu_required", True)
    if not isinstance(required, bool):
        r.add("multillm_gpu_required", required, "must be a boolean",
              "Use true on GPU hosts, false on lab or CI hosts.")

    address = c.get("multillm_backend_address", "")
    if address is not None and (not isinstance(address, str) or (address and not ADDRESS_RE.fullmatch(address))):
        r.add("multillm_backend_address", address, "must be empty or an IPv4 address",
              "Set the GPU host's address on the private network to the gateway host, e.g. 10.0.0.21.")

    token = c.get("multillm_hf_token", "")
    if token is not None and not isinstance(token, str):
        r.add("multillm_hf_token", "<hidden>", "must be a string", "Put the Hugging Face token in the vault file.")

    return strategy, gpu if gpu_ok else None, cap if _is_number(cap) else UTILIZATION_MAX


def _check_gateway(c, r):
    port = c.get("litellm_gateway_port")
    if port is not None:
        r.errors.extend(gateway_port_errors(port, r.host))
    if "litellm_gateway_master_key" in c:
        r.errors.extend(master_key_errors(c["litellm_gateway_master_key"], r.host))
    version = c.get("litellm_gateway_version")
    if version is not None:
        r.errors.extend(litellm_version_errors(version, r.host))
    return port if _is_int(port) else None


def _check_extra_args(label, args, r):
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        r.add("%s.extra_args" % label, args, "must be a list of strings", "Write one vllm serve argument per item.")
        return
    for a in args:
        flag = a.split("=", 1)[0]
        if flag in MANAGED_FLAGS:
            r.add("%s.extra_args" % label, a, "sets %s, which model_stack renders from the model entry" % flag,
                  "Use the model entry's own field instead.")


def _check_env(label, env, r):
    if not isinstance(env, dict) or not all(isinstance(k, str) for k in env):
        r.add("%s.env" % label, env, "must be a mapping of variable names to values", "Correct the mapping.")
        return
    for k in env:
        if k in MANAGED_ENV:
            r.add("%s.env.%s" % (label, k), "<hidden>" if "TOKEN" in k else env[k],
                  "is set by model_stack (unique IPC names, CPU KV space, secrets from the env file)",
                  "Remove it from env; use multillm_hf_token for the token, cpu_kvcache_gib for the CPU KV space.")


def _check_model(i, m, ctx, r):
    where = "multillm_models[%d]" % i
    if not isinstance(m, dict):
        r.add(where, m, "must be a dictionary with name, model, port and gpu_memory_utilization",
              "Write each model as a mapping (see docs/inventory.md).")
        return
    label = "%s (%s)" % (where, m.get("name", "unnamed"))
    for key in MODEL_KEYS_REQUIRED:
        if key not in m:
            r.add("%s.%s" % (label, key), None, "is required", "Add the field to the model entry.")
    for key in sorted(set(m) - set(MODEL_KEYS_REQUIRED) - set(MODEL_KEYS_OPTIONAL)):
        r.add("%s.%s" % (label, key), m[key], "is not a known field (known: %s)"
              % ", ".join(MODEL_KEYS_REQUIRED + MODEL_KEYS_OPTIONAL), "Remove it or correct its spelling.")

    name = m.get("name")
    if "name" in m:
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            r.add("%s.name" % label, name,
                  "must be 1-63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit "
                  "(it names the container, the systemd unit and the gateway model)",
                  "Rename the model, e.g. qwen2.5-14b-instruct.")
        elif name in ctx["names"]:
            r.add("%s.name" % label, name, "must be unique; models %d and %d share it" % (ctx["names"][name], i),
                  "Give every model its own name.")
        else:
            ctx["names"][name] = i

    if "model" in m and (not isinstance(m["model"], str) or not m["model"].strip()):
        r.add("%s.model" % label, m["model"], "must be a non-empty repository id or local path",
              "Set e.g. Qwen/Qwen2.5-14B-Instruct.")

    port = m.get("port")
    if "port" in m:
        if not _is_int(port) or not PORT_MIN <= port <= PORT_MAX:
            r.add("%s.port" % label, port, "must be an integer from %d to %d" % (PORT_MIN, PORT_MAX),
                  "Pick a free unprivileged port.")
        elif port in ctx["ports"]:
            r.add("%s.port" % label, port, "must be unique; models %d and %d share it" % (ctx["ports"][port], i),
                  "Give every model its own port.")
        elif ctx["gateway_port"] is not None and port == ctx["gateway_port"]:
            r.add("%s.port" % label, port, "must differ from litellm_gateway_port", "Move the model or the gateway.")
        else:
            ctx["ports"][port] = i

    util = m.get("gpu_memory_utilization")
    util_ok = False
    if "gpu_memory_utilization" in m:
        if not _is_number(util) or not 0 < util <= UTILIZATION_MAX:
            r.add("%s.gpu_memory_utilization" % label, util,
                  "must be a fraction above 0 and at most %s" % UTILIZATION_MAX,
                  "Set the model's share of GPU memory, e.g. 0.5.")
        else:
            util_ok = True
            ctx["util_sum"] += util

    weights = m.get("weights_gib")
    if weights is not None:
        if not _is_number(weights) or weights <= 0:
            r.add("%s.weights_gib" % label, weights, "must be a number of GiB above 0", "Set the size of the weights.")
        elif util_ok and ctx["gpu"] is not None and weights >= util * ctx["gpu"]:
            r.add("%s.weights_gib" % label, weights,
                  "must fit in the model's slice: gpu_memory_utilization %s x %s GiB = %.1f GiB, which must also "
                  "leave room for activations and KV cache" % (util, ctx["gpu"], util * ctx["gpu"]),
                  "Raise gpu_memory_utilization or choose a smaller model.")

    for key in ("resting_gib",):
        value = m.get(key)
        if value is not None and (not _is_number(value) or value < 0):
            r.add("%s.%s" % (label, key), value, "must be a number of GiB, 0 or more",
                  "Set the VRAM the model holds at rest.")

    cpu_kv = m.get("cpu_kvcache_gib")
    if cpu_kv is not None and (not _is_int(cpu_kv) or cpu_kv <= 0):
        r.add("%s.cpu_kvcache_gib" % label, cpu_kv, "must be a whole number of GiB above 0 (VLLM_CPU_KVCACHE_SPACE)",
              "Set the KV cache size of the CPU build, e.g. 1.")

    for key in ("max_model_len", "health_timeout_s"):
        value = m.get(key)
        if value is not None and (not _is_int(value) or value <= 0):
            r.add("%s.%s" % (label, key), value, "must be a positive integer", "Correct the value.")

    image = m.get("image")
    if image is not None and (not isinstance(image, str) or not image.strip() or " " in image):
        r.add("%s.image" % label, image, "must be an image reference without spaces", "Set e.g. vllm/vllm-openai:v0.11.0.")

    recipe = m.get("recipe")
    if recipe is not None and recipe not in tuple(RECIPES) + (RECIPE_NONE,):
        r.add("%s.recipe" % label, recipe, "must be one of %s" % ", ".join(sorted(RECIPES) + [RECIPE_NONE]),
              "Name a known recipe, or none to render no recipe flags (docs/inventory.md lists them).")

    if m.get("extra_args") is not None:
        _check_extra_args(label, m["extra_args"], r)
    if m.get("env") is not None:
        _check_env(label, m["env"], r)

    kvc = m.get("kvcached")
    if kvc is not None:
        if not isinstance(kvc, dict):
            r.add("%s.kvcached" % label, kvc, "must be a mapping", "See roles/model_stack/README.md for its keys.")
        else:
            for k in sorted(set(kvc) - set(KVCACHED_KEYS)):
                r.add("%s.kvcached.%s" % (label, k), kvc[k], "is not a known kvcached setting (known: %s)"
                      % ", ".join(KVCACHED_KEYS), "Remove it or correct its spelling.")


def contract_errors(contract, host):
    """Every broken rule of one host's multillm_* contract (and the gateway settings given)."""
    contract = dict(contract or {})
    r = _Report(host)
    strategy, gpu, cap = _check_scalars(contract, r)
    gateway_port = _check_gateway(contract, r)

    models = contract.get("multillm_models", [])
    if not isinstance(models, list):
        r.add("multillm_models", models, "must be a list of model entries", "Write the models as a YAML list.")
        return r.errors
    if not models:
        r.add("multillm_models", models, "must list at least one model", "Add the models this host serves.")
        return r.errors

    ctx = {"names": {}, "ports": {}, "util_sum": 0.0, "gpu": gpu, "gateway_port": gateway_port}
    for i, m in enumerate(models):
        _check_model(i, m, ctx, r)

    if strategy == "static" and ctx["util_sum"] > cap + 1e-9:
        r.add("multillm_models[*].gpu_memory_utilization", round(ctx["util_sum"], 4),
              "static slices must sum to at most multillm_static_utilization_cap (%s): vLLM reserves each "
              "slice up front and the last model would not fit" % cap,
              "Lower the fractions or switch multillm_vram_strategy to kvcached.")
    return r.errors


# --- model_stack's settings -------------------------------------------------------------------

# The defaults of roles/model_stack/defaults/main.yml that the spec builder reads
# (tests/unit/test_role_defaults.py keeps them equal); templated defaults are resolved by
# the role and always passed in.
MODEL_STACK_DEFAULTS = {
    "model_stack_server": "vllm",
    "model_stack_device": "gpu",
    "model_stack_image_kvcached": "ghcr.io/ovg-project/kvcached-vllm:kvcached-v0.1.5-vllm-v0.19.0",
    "model_stack_image_static": "vllm/vllm-openai:v0.19.0",
    "model_stack_image_standin": "multillm-standin:latest",
    "model_stack_image_cpu": "multillm-vllm-cpu:latest",
    "model_stack_health_timeout_s": 900,
    "model_stack_health_poll_interval_s": 0.05,
    "model_stack_progress_every_s": 10,
    "model_stack_vram_settle_interval_s": 1.0,
    "model_stack_vram_settle_samples": 5,
    "model_stack_vram_settle_delta_mib": 256,
    "model_stack_vram_settle_timeout_s": 120,
    "model_stack_hf_cache_dir": "/var/lib/multillm/hf-cache",
    "model_stack_hf_cache_mount": "/root/.cache/huggingface",
    "model_stack_config_dir": "/etc/multillm/models",
    "model_stack_helper_path": "/usr/local/libexec/multillm/multillm-model-wait",
    "model_stack_docker_cli": "/usr/bin/docker",
    "model_stack_name_prefix": "multillm-model-",
    "model_stack_network": "multillm-models",
    "model_stack_shm_size": "8g",
    "model_stack_kvcached_ipc_mode": "host",
    "model_stack_env": {},
    "model_stack_kvcached_defaults": {
        "min_reserved_pages": 0,
        "max_reserved_pages": 0,
        "max_cached_tokens": 0,
        "page_size_mb": 2,
        "page_prealloc": True,
        "limit_gib": 0,
    },
    "model_stack_kvcached_version": "0.1.5",
    "model_stack_vllm_version": "0.19.0",
}


def _kvcached_value_errors(label, kvc, r):
    def whole(key):
        value = kvc.get(key)
        return value if _is_int(value) else None

    lo, hi = whole("min_reserved_pages"), whole("max_reserved_pages")
    if lo is None or lo < 0:
        r.add("%s.min_reserved_pages" % label, kvc.get("min_reserved_pages"), "must be a whole number, 0 or more",
              "Set KVCACHED_MIN_RESERVED_PAGES, e.g. 0 (the measured default).")
    if hi is None or (lo is not None and hi < lo) or hi < 0:
        r.add("%s.max_reserved_pages" % label, kvc.get("max_reserved_pages"),
              "must be a whole number, at least min_reserved_pages", "Set KVCACHED_MAX_RESERVED_PAGES, e.g. 0.")
    page = whole("page_size_mb")
    if page is None or page < 2 or page % 2:
        r.add("%s.page_size_mb" % label, kvc.get("page_size_mb"), "must be a multiple of 2 (kvcached's page unit)",
              "Set 2 (4 doubled the resting floor on an H100).")
    cached = whole("max_cached_tokens")
    if cached is None or cached < -1:
        r.add("%s.max_cached_tokens" % label, kvc.get("max_cached_tokens"),
              "must be a whole number, -1 (unlimited), 0 (off) or a positive cap",
              "Set the prefix-cache cap in tokens, e.g. 0.")
    if not isinstance(kvc.get("page_prealloc"), bool):
        r.add("%s.page_prealloc" % label, kvc.get("page_prealloc"), "must be a boolean",
              "Use true (kvcached 0.1.6 needs it for kvctl limit to be seen) or false.")
    limit = kvc.get("limit_gib")
    if not _is_number(limit) or limit < 0:
        r.add("%s.limit_gib" % label, limit, "must be a number of GiB, 0 (no limit) or more",
              "Set the kvctl limit of the model's pool, or 0.")


def _pools_collide(a, b):
    """True when two pool names are equal or one is an extra KV group of the other."""
    if a == b:
        return True
    short, long_ = sorted((a, b), key=len)
    return long_.startswith(short) and KVCACHED_GROUP_RE.fullmatch(long_[len(short):]) is not None


def model_stack_errors(settings, models, host):
    """Every broken rule of model_stack's own settings, decided from the inventory alone.

    `settings` holds the model_stack_* variables (missing ones take MODEL_STACK_DEFAULTS)
    and multillm_vram_strategy; `models` is multillm_models, already checked by the contract.
    """
    s = dict(MODEL_STACK_DEFAULTS)
    s.update(settings or {})
    r = _Report(host)

    if s["model_stack_server"] not in SERVERS:
        r.add("model_stack_server", s["model_stack_server"], "must be one of %s" % ", ".join(SERVERS),
              "Use vllm, or standin on hosts that only test the stack.")
    if s["model_stack_device"] not in DEVICES:
        r.add("model_stack_device", s["model_stack_device"], "must be one of %s" % ", ".join(DEVICES),
              "Use gpu, or cpu for vLLM's CPU build (no GPU, no kvcached).")
    poll = s["model_stack_health_poll_interval_s"]
    if not _is_number(poll) or poll <= 0:
        r.add("model_stack_health_poll_interval_s", poll, "must be a number of seconds above 0",
              "Set e.g. 0.05.")
    for key in ("model_stack_progress_every_s", "model_stack_health_timeout_s"):
        value = s[key]
        if not _is_int(value) or value < 1:
            r.add(key, value, "must be a whole number of seconds, 1 or more", "Correct the value.")
    for key in ("model_stack_vram_settle_interval_s", "model_stack_vram_settle_timeout_s"):
        value = s[key]
        if not _is_number(value) or value <= 0:
            r.add(key, value, "must be a number of seconds above 0", "Correct the value.")
    for key in ("model_stack_vram_settle_samples", "model_stack_vram_settle_delta_mib"):
        value = s[key]
        if not _is_int(value) or value < 1:
            r.add(key, value, "must be a whole number, 1 or more", "Correct the value.")
    prefix = s["model_stack_name_prefix"]
    if not isinstance(prefix, str) or not PREFIX_RE.fullmatch(prefix):
        r.add("model_stack_name_prefix", prefix,
              "must be lower-case letters, digits, '.', '_' or '-', starting with a letter or digit "
              "(it starts every container and unit name)", "Keep the default multillm-model- or correct it.")
    if s["model_stack_kvcached_ipc_mode"] not in IPC_MODES:
        r.add("model_stack_kvcached_ipc_mode", s["model_stack_kvcached_ipc_mode"],
              "must be one of %s" % ", ".join(IPC_MODES), "Use host so kvctl on the host sees the pools.")
    for key in ("model_stack_kvcached_version", "model_stack_vllm_version"):
        if version_tuple(s[key]) is None:
            r.add(key, s[key], "must be an X.Y.Z version string", "Set the version the image carries, e.g. 0.19.0.")
    if not isinstance(s["model_stack_env"], dict):
        r.add("model_stack_env", s["model_stack_env"], "must be a mapping", "Correct the mapping.")
    defaults = s["model_stack_kvcached_defaults"]
    if not isinstance(defaults, dict):
        r.add("model_stack_kvcached_defaults", defaults, "must be a mapping", "Correct the mapping.")
        defaults = MODEL_STACK_DEFAULTS["model_stack_kvcached_defaults"]
    else:
        for k in sorted(set(defaults) - set(KVCACHED_KEYS)):
            r.add("model_stack_kvcached_defaults.%s" % k, defaults[k], "is not a known kvcached setting (known: %s)"
                  % ", ".join(KVCACHED_KEYS), "Remove it or correct its spelling.")
        defaults = dict(MODEL_STACK_DEFAULTS["model_stack_kvcached_defaults"], **defaults)

    kvcached = s.get("multillm_vram_strategy", "kvcached") == "kvcached" and s["model_stack_device"] == "gpu"
    if not kvcached or not isinstance(models, list):
        return r.errors
    pools = {}
    for i, m in enumerate(models):
        if not isinstance(m, dict) or not isinstance(m.get("name"), str):
            continue
        own = m.get("kvcached") if isinstance(m.get("kvcached"), dict) else {}
        merged = dict(defaults, **{k: v for k, v in own.items() if k in KVCACHED_KEYS})
        _kvcached_value_errors("multillm_models[%d] (%s).kvcached" % (i, m["name"]), merged, r)
        pool = kvcached_ipc_name(KVCACHED_POOL_PREFIX + m["name"])
        for other, j in pools.items():
            if _pools_collide(pool, other):
                r.add("multillm_models[%d] (%s).name" % (i, m["name"]), m["name"],
                      "gives the kvcached pool %s, which collides with model %d's pool %s (kvcached turns '.' "
                      "into '-', cuts names to 64 characters and keeps extra KV groups in <pool>_g<N>)"
                      % (pool, j, other), "Rename one of the two models.")
        pools[pool] = i
    return r.errors
