# -*- coding: utf-8 -*-
# Copyright: llmops.multillm contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The shared inventory contract of llmops.multillm, checked in one place."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: multillm_contract_errors
short_description: Check the multillm inventory contract and list every broken rule
version_added: 0.1.0
description:
  - Takes the C(multillm_*) variables of one host (and the gateway settings that share ports
    and secrets with them) and returns a list of error messages, one per broken rule.
  - Each message names the host, the variable, the value and the rule, and says what to do.
  - An empty list means the contract holds. Used by the C(llmops.multillm.multillm) role and by
    C(playbooks/preflight.yml), which runs it offline on the control node.
positional: host
options:
  _input:
    description:
      - A dictionary of the host's contract variables, for example C(multillm_models),
        C(multillm_vram_strategy), C(multillm_gpu_memory_gib), C(multillm_resting_vram_gib),
        C(multillm_resting_vram_tolerance_gib), C(multillm_static_utilization_cap),
        C(multillm_gpu_required), C(multillm_hf_token), and optionally C(litellm_gateway_port),
        C(litellm_gateway_version) and C(litellm_gateway_master_key) (checked only when present).
    type: dict
    required: true
  host:
    description: The inventory host name the variables belong to, used in the messages.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Fail with every broken rule of the contract
  ansible.builtin.fail:
    msg: "{{ __errors | join('\n') }}"
  vars:
    __errors: "{{ {'multillm_models': multillm_models} | llmops.multillm.multillm_contract_errors(inventory_hostname) }}"
  when: __errors | length > 0
"""

RETURN = r"""
_value:
  description: One message per broken rule; empty when the contract holds.
  type: list
  elements: str
"""

import re

STRATEGIES = ("kvcached", "static")
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
MANAGED_ENV = ("KVCACHED_IPC_NAME", "ENABLE_KVCACHED", "KVCACHED_AUTOPATCH", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
# Lower case letters, digits, '.', '_' and '-', starting with a letter or digit, at most
# 63 characters: valid as a Docker container name, inside a systemd unit name, a LiteLLM
# model name and a DNS label alike.
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
ADDRESS_RE = re.compile(r"^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$")
MASTER_KEY_MIN_LEN = 16
# LiteLLM releases the gateway refuses: older than the last proxy CVE fix, or the
# two uploads that carried malware (2026-03-24).
LITELLM_MIN_VERSION = (1, 83, 10)
LITELLM_COMPROMISED = ("1.82.7", "1.82.8")
VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
UTILIZATION_MAX = 0.95


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


class _Report:
    def __init__(self, host):
        self.host = host
        self.errors = []

    def add(self, variable, value, rule, action):
        self.errors.append("host %s: %s=%r: %s. %s" % (self.host, variable, value, rule, action))


def _check_scalars(c, r):
    strategy = c.get("multillm_vram_strategy", "kvcached")
    if strategy not in STRATEGIES:
        r.add("multillm_vram_strategy", strategy, "must be one of %s" % ", ".join(STRATEGIES),
              "Set kvcached for elastic KV memory or static for fixed slices.")

    gpu = c.get("multillm_gpu_memory_gib", 79.6)
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

    tolerance = c.get("multillm_resting_vram_tolerance_gib", 4)
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
    if address is not None and (not isinstance(address, str) or (address and not ADDRESS_RE.match(address))):
        r.add("multillm_backend_address", address, "must be empty or an IPv4 address",
              "Set the GPU host's address on the private network to the gateway host, e.g. 10.0.0.21.")

    token = c.get("multillm_hf_token", "")
    if token is not None and not isinstance(token, str):
        r.add("multillm_hf_token", "<hidden>", "must be a string", "Put the Hugging Face token in the vault file.")

    return strategy, gpu if gpu_ok else None, cap if _is_number(cap) else UTILIZATION_MAX


def _check_gateway(c, r):
    port = c.get("litellm_gateway_port")
    if port is not None and (not _is_int(port) or not 1024 <= port <= 65535):
        r.add("litellm_gateway_port", port, "must be an integer from 1024 to 65535",
              "Pick a free unprivileged port for the gateway, e.g. 4001.")
    if "litellm_gateway_master_key" in c:
        key = c["litellm_gateway_master_key"]
        if key in (None, ""):
            r.add("litellm_gateway_master_key", "<unset>", "is required on the gateway host",
                  "Set it in the inventory's vault file (see inventories/h100/README.md).")
        elif not isinstance(key, str) or not key.startswith("sk-") or len(key) < MASTER_KEY_MIN_LEN:
            # The value itself is a secret: never echo it.
            r.add("litellm_gateway_master_key", "<hidden>",
                  "must be a string that starts with 'sk-' and has at least %d characters" % MASTER_KEY_MIN_LEN,
                  "Generate one, e.g. \"sk-$(openssl rand -hex 24)\", and store it with ansible-vault.")
    version = c.get("litellm_gateway_version")
    if version is not None:
        match = VERSION_RE.match(str(version))
        if str(version) in LITELLM_COMPROMISED:
            r.add("litellm_gateway_version", version, "is a compromised LiteLLM release (malicious upload of 2026-03-24)",
                  "Pin a clean release, 1.83.10 or newer.")
        elif not match:
            r.add("litellm_gateway_version", version, "must be an exact release such as 1.106.12",
                  "Pin one exact version; ranges make reprovisioning unrepeatable.")
        elif tuple(int(g) for g in match.groups()) < LITELLM_MIN_VERSION:
            r.add("litellm_gateway_version", version,
                  "is older than 1.83.10, which fixes proxy CVE-2026-42208 and CVE-2026-40217",
                  "Pin 1.83.10 or newer.")
    return port if _is_int(port) else None


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
    unknown = sorted(set(m) - set(MODEL_KEYS_REQUIRED) - set(MODEL_KEYS_OPTIONAL))
    for key in unknown:
        r.add("%s.%s" % (label, key), m[key], "is not a known field (known: %s)"
              % ", ".join(MODEL_KEYS_REQUIRED + MODEL_KEYS_OPTIONAL), "Remove it or correct its spelling.")

    name = m.get("name")
    if "name" in m:
        if not isinstance(name, str) or not NAME_RE.match(name):
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
        if not _is_int(port) or not 1024 <= port <= 65535:
            r.add("%s.port" % label, port, "must be an integer from 1024 to 65535", "Pick a free unprivileged port.")
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

    resting = m.get("resting_gib")
    if resting is not None and (not _is_number(resting) or resting < 0):
        r.add("%s.resting_gib" % label, resting, "must be a number of GiB, 0 or more",
              "Set the VRAM the model holds at rest.")

    for key in ("max_model_len", "health_timeout_s"):
        value = m.get(key)
        if value is not None and (not _is_int(value) or value <= 0):
            r.add("%s.%s" % (label, key), value, "must be a positive integer", "Correct the value.")

    image = m.get("image")
    if image is not None and (not isinstance(image, str) or not image.strip() or " " in image):
        r.add("%s.image" % label, image, "must be an image reference without spaces", "Set e.g. vllm/vllm-openai:v0.11.0.")

    args = m.get("extra_args")
    if args is not None:
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            r.add("%s.extra_args" % label, args, "must be a list of strings", "Write one vllm serve argument per item.")
        else:
            for a in args:
                flag = a.split("=", 1)[0]
                if flag in MANAGED_FLAGS:
                    r.add("%s.extra_args" % label, a, "sets %s, which model_stack renders from the model entry" % flag,
                          "Use the model entry's own field instead.")

    env = m.get("env")
    if env is not None:
        if not isinstance(env, dict) or not all(isinstance(k, str) for k in env):
            r.add("%s.env" % label, env, "must be a mapping of variable names to values", "Correct the mapping.")
        else:
            for k in env:
                if k in MANAGED_ENV:
                    r.add("%s.env.%s" % (label, k), "<hidden>" if "TOKEN" in k else env[k],
                          "is set by model_stack (unique IPC names, secrets from the env file)",
                          "Remove it from env; use multillm_hf_token for the token.")

    kvc = m.get("kvcached")
    if kvc is not None:
        if not isinstance(kvc, dict):
            r.add("%s.kvcached" % label, kvc, "must be a mapping", "See roles/model_stack/README.md for its keys.")
        else:
            for k in sorted(set(kvc) - set(KVCACHED_KEYS)):
                r.add("%s.kvcached.%s" % (label, k), kvc[k], "is not a known kvcached setting (known: %s)"
                      % ", ".join(KVCACHED_KEYS), "Remove it or correct its spelling.")


def multillm_contract_errors(contract, host):
    """Return every broken rule of the contract for one host (empty when it holds)."""
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


class FilterModule(object):
    """llmops.multillm contract filters."""

    def filters(self):
        return {"multillm_contract_errors": multillm_contract_errors}
