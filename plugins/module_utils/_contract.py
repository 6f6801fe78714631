# -*- coding: utf-8 -*-
# Copyright: llmops.multillm contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The inventory contract of llmops.multillm: constants, defaults and every rule, once.

Pure functions on plain dicts, lists and numbers. Each check returns a list of messages,
one per broken rule, and each message names the host, the variable, the value (secrets as
<hidden>) and the rule, says what to do, and ends with the rule's id in brackets
([name-chars]); RULES lists every id and docs/inventory.md shows an example of each.

Callers: the filters llmops.multillm.multillm_contract_errors (roles/multillm),
llmops.multillm.multillm_preflight_errors (playbooks/preflight.yml: every host and the
rules across hosts) and llmops.multillm.model_stack_errors (roles/model_stack preflight);
_model_spec reads the defaults.

Every value that ends up in a unit file, an env file, a config or an argv is matched whole
(re.fullmatch, never a `$` that admits a trailing newline) against the characters its kind
may hold, so nothing the inventory says can add a line to a file or an argument to a command.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib
import ipaddress
import json
import math
import re

from ansible_collections.llmops.multillm.plugins.module_utils import _placement

# --- the rules, by id (docs/inventory.md shows each with an example of its message) ---------

RULES = (
    ("unknown-variable", "every multillm_* variable is one the contract knows"),
    ("strategy", "multillm_vram_strategy is kvcached or static"),
    ("gpu-size", "multillm_gpu_memory_gib is a finite number of GiB above 0 and below 1024 (a larger one is MiB)"),
    ("resting-target", "multillm_resting_vram_gib is unset (measured, not checked) or finite, 0 or more and at most "
                       "the GPU size"),
    ("tolerance", "multillm_resting_vram_tolerance_gib is finite, 0 or more, and below the resting target"),
    ("utilization-cap", "multillm_static_utilization_cap is a fraction above 0 and at most 1"),
    ("gpu-required", "multillm_gpu_required is a boolean"),
    ("backend-address", "multillm_backend_address is empty or one IPv4 address of a host (no wildcard, "
                        "broadcast or multicast)"),
    ("hf-token", "multillm_hf_token is empty or one line of letters, digits, '_', '-' and '.'"),
    ("models-list", "multillm_models is a list of at least one model"),
    ("model-entry", "each model is a mapping"),
    ("model-field-required", "each model has name, model, port and gpu_memory_utilization"),
    ("model-field-unknown", "each model key is a known one"),
    ("name-chars", "a model name is 1-63 of [a-z0-9._-], first a letter or digit"),
    ("name-unique", "model names are unique on a host"),
    ("model-id", "model is a repository id (org/name) or an absolute path of [A-Za-z0-9._+@/-]"),
    ("port-range", "a model port is an integer from 1024 to 65535"),
    ("port-unique", "model ports are unique on a host"),
    ("port-gateway", "no model listens on the gateway's port (its default 4001 when the inventory leaves it)"),
    ("fraction", "gpu_memory_utilization is a fraction above 0 and at most 0.95"),
    ("static-sum", "static fractions sum to at most multillm_static_utilization_cap"),
    ("gib-value", "weights_gib and resting_gib are finite GiB, below 1024 (a larger one is MiB)"),
    ("weights-fit", "weights_gib fits in the model's slice"),
    ("whole-number", "max_model_len, health_timeout_s, cpu_kvcache_gib and kv_tokens are whole numbers in range"),
    ("image-ref", "an image is a Docker reference (registry/path:tag@digest), nothing else"),
    ("recipe", "recipe is a known recipe or none"),
    ("extra-args", "extra_args is a list of one-line printable strings"),
    ("managed-flag", "extra_args set no flag model_stack renders, in any spelling vLLM accepts"),
    ("env-form", "env is a mapping of NAME: one-line value (NAME of [A-Za-z_][A-Za-z0-9_]*)"),
    ("managed-env", "env sets no variable model_stack manages (KVCACHED_*, ENABLE_KVCACHED, tokens, CPU KV space)"),
    ("kvcached-key", "kvcached is a mapping of known kvcached settings"),
    ("kvcached-value", "kvcached values: reserve pages 0 <= min <= max, cached tokens >= -1, prealloc a "
                       "boolean, limit_gib finite >= 0"),
    ("page-size", "kvcached page_size_mb is a multiple of 2 from 2 to 1024"),
    ("pool-collision", "no two models whose kvcached pools collide"),
    ("gateway-port", "litellm_gateway_port is an integer from 1024 to 65535"),
    ("gateway-bind-address", "litellm_gateway_bind_address is an IP address literal or localhost"),
    ("master-key", "a gateway host has litellm_gateway_master_key: sk- and 13+ of [A-Za-z0-9._~+/=-]"),
    ("litellm-version", "litellm_gateway_version is one exact, clean release >= 1.83.10"),
    ("model-stack-setting", "model_stack settings: choices, numbers, versions, the name prefix"),
    ("model-stack-path", "model_stack paths, images, network, shm size and env hold only their characters"),
    ("same-machine", "no two inventory hosts are one machine (same address and port)"),
    ("backend-unreachable", "a GPU host whose gateway runs on another machine has a multillm_backend_address"),
    ("name-two-models", "one model name means one model across the hosts of a gateway"),
    ("inventory-groups", "the inventory has multillm_gpu_hosts and multillm_gateway hosts"),
) + _placement.RULES
RULE_IDS = tuple(r[0] for r in RULES)

# --- the multillm_* contract -------------------------------------------------------------

STRATEGIES = ("kvcached", "static")
# The defaults of roles/multillm/defaults/main.yml (tests/unit/test_role_defaults.py keeps
# the two equal), for callers that see a host's inventory variables only.
CONTRACT_DEFAULTS = {
    "multillm_vram_strategy": "kvcached",
    "multillm_gpu_required": True,
    "multillm_gpu_memory_gib": 79.6,
    # Unset: verify measures and shows the total, checks each GPU and model (resting_gib) only.
    "multillm_resting_vram_gib": None,
    "multillm_resting_vram_tolerance_gib": 4,
    "multillm_static_utilization_cap": 0.95,
    "multillm_models": [],
    "multillm_backend_address": "",
    "multillm_hf_token": "",
}
# multillm_* names an inventory may set beyond the contract's own (other roles' public
# variables that share the prefix); anything else is a typo.
# multillm_gpu_count: plugins/module_utils/_placement.py (hosts with several GPUs), default 1.
MULTILLM_VARIABLES_EXTRA = ("multillm_gpu_count",)
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
    "gpus",
    "tensor_parallel_size",
    "kv_tokens",
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
# --model: vLLM moves `--model X` (and `--model=X`) in place of the positional model;
# --config: a YAML file whose keys become flags (port, host...) that no check here can see.
MANAGED_FLAGS = (
    "--host",
    "--port",
    "--served-model-name",
    "--gpu-memory-utilization",
    "--max-model-len",
    "--model",
    "--config",
    "--tensor-parallel-size",
)
# vLLM's short aliases of managed flags (-tp 2, -tp=2, -tp2 alike).
MANAGED_SHORT_FLAGS = {"-tp": "--tensor-parallel-size"}
MANAGED_ENV = (
    "KVCACHED_IPC_NAME",
    "ENABLE_KVCACHED",
    "KVCACHED_AUTOPATCH",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "VLLM_CPU_KVCACHE_SPACE",
)
# Every variable kvcached reads starts with this: model_stack renders them from `kvcached:`.
MANAGED_ENV_PREFIXES = ("KVCACHED_",)
# Lower case letters, digits, '.', '_' and '-', starting with a letter or digit, at most
# 63 characters: valid as a Docker container name, inside a systemd unit name, a LiteLLM
# model name and a DNS label alike.
NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
# Hugging Face repository ids: [org/]name of letters, digits, '.', '_', '-' (no '--' or
# '..', at most 96 characters, as huggingface_hub's validate_repo_id requires).
HUB_ID_RE = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9._-]*/)?[A-Za-z0-9][A-Za-z0-9._-]*")
# An absolute path: it goes into a Docker volume spec (no ':' or ','), a unit comment and an
# argv; no '.' or '..' segment.
_PATH_SEGMENT = r"(?!\.\.?(?:/|\Z))[A-Za-z0-9._+@-]+"
ABS_PATH_RE = re.compile(r"/(?:%s(?:/%s)*/?)?" % (_PATH_SEGMENT, _PATH_SEGMENT))
# A Docker image reference (distribution's grammar): [registry[:port]/]path[:tag][@digest].
# A first component is a registry only with a '.' or a ':port', or as localhost.
_IMAGE_DOMAIN = r"(?:(?:localhost|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)(?::[0-9]+)?/|[A-Za-z0-9-]+:[0-9]+/)"
_IMAGE_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
IMAGE_RE = re.compile(_IMAGE_DOMAIN + r"?" + _IMAGE_PATH + r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
                      r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?")
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
HF_TOKEN_RE = re.compile(r"[A-Za-z0-9_.-]{1,256}")
MASTER_KEY_RE = re.compile(r"sk-[A-Za-z0-9._~+/=-]{13,256}")
ADDRESS_RE = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
PORT_MIN = 1024
PORT_MAX = 65535
UTILIZATION_MAX = 0.95
CPU_KVCACHE_GIB_DEFAULT = 1
# No GPU holds 1024 GiB; a size that large is MiB given as GiB (81920 for an H100 80GB).
GIB_PLAUSIBLE_MAX = 1024
MAX_MODEL_LEN_MAX = 16 * 1024 * 1024
KV_TOKENS_MAX = 1024 * 1024 * 1024
HEALTH_TIMEOUT_MAX_S = 86400
CPU_KVCACHE_GIB_MAX = 4096
PAGE_SIZE_MB_MAX = 1024

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
LITELLM_VERSION_RE = re.compile(r"([0-9]+)\.([0-9]+)\.([0-9]+)(\.post[0-9]+)?")

# --- model_stack's own settings ------------------------------------------------------------

SERVERS = ("vllm", "fault_injector")
DEVICES = ("gpu", "cpu")
IPC_MODES = ("host", "private")
PREFIX_RE = re.compile(r"[a-z0-9][a-z0-9._-]*")
VERSION_RE = re.compile(r"([0-9]+)\.([0-9]+)\.([0-9]+)")
# kvcached limits a pool's name to 64 characters (see kvcached_ipc_name).
KVCACHED_NAME_MAX = 64
KVCACHED_GROUP_RE = re.compile(r"_g[0-9]+")
# Every model's KVCACHED_IPC_NAME is this prefix and its name.
KVCACHED_POOL_PREFIX = "multillm_"


# --- the gateway's defaults: the contract decides the gateway's rules offline ---------------
# The defaults of roles/litellm_gateway/defaults/main.yml that the offline rules read
# (tests/unit/plugins/module_utils/test_contract.py keeps them equal). A gateway host that
# leaves its port unset listens on GATEWAY_DEFAULTS' port: no model may take it.
GATEWAY_DEFAULTS = {
    "litellm_gateway_port": 4001,
    "litellm_gateway_bind_address": "0.0.0.0",
    "litellm_gateway_version": "1.106.12",
    "litellm_gateway_backend_group": "multillm_gpu_hosts",
}
# Names whose values are secrets wherever they appear (a model's env, a list-style env).
SECRET_NAME_RE = re.compile(r"TOKEN|SECRET|PASSW|API_?KEY|MASTER_?KEY|CREDENTIAL|PRIVATE_?KEY", re.I)
SECRET_VALUE_RE = re.compile(r"\A(?:hf_|sk-|api_org_)|(?:TOKEN|SECRET|PASSW|KEY)[A-Z_]*\s*[=:]", re.I)
HIDDEN = "<hidden>"
SECRET_VARIABLES = ("multillm_hf_token", "litellm_gateway_master_key")


def _is_number(value):
    """A finite int or float (bool is not a number; nan and inf are not finite)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _one_line(value):
    """A string of printable characters only: no newline, carriage return, tab, NUL or
    other control or separator character (str.isprintable)."""
    return isinstance(value, str) and value.isprintable()


def _closest(word, known):
    match = difflib.get_close_matches(str(word), list(known), n=1, cutoff=0.6)
    return match[0] if match else None


def _did_you_mean(word, known, fallback):
    close = _closest(word, known)
    return ("Did you mean %s? " % close if close else "") + fallback


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


def vllm_flag(token):
    """The flag a `vllm serve` argument sets, as vLLM's FlexibleArgumentParser reads it, or None.

    vLLM (vllm/utils/argparse_utils.py, read 2026-12-04) turns '_' into '-' between the leading
    '--' and the first '.', splits `--flag=value`, reads `--flag.key value` as part of the JSON
    flag `--flag`; argparse takes `--no-flag` as the other polarity of a boolean flag.
    """
    if not isinstance(token, str) or not token.startswith("--") or token == "--":
        return None
    name = token[2:].split("=", 1)[0].split(".", 1)[0].replace("_", "-").rstrip("+")
    if name.startswith("no-"):
        name = name[3:]
    return "--" + name


def managed_flag(token):
    """The managed flag a `vllm serve` argument sets, in any spelling, or None.

    Besides the spellings vllm_flag folds, argparse (allow_abbrev, on in vLLM's parsers)
    expands a unique prefix: `--served` is --served-model-name, `--gpu-mem` is
    --gpu-memory-utilization. A prefix of a managed flag is refused as that flag.
    """
    for short, managed in MANAGED_SHORT_FLAGS.items():
        if isinstance(token, str) and token.startswith(short) and not token.startswith("--"):
            return managed
    flag = vllm_flag(token)
    if flag is None:
        return None
    if flag in MANAGED_FLAGS:
        return flag
    for managed in MANAGED_FLAGS:
        if len(flag) >= 4 and managed.startswith(flag):
            return managed
    return None


def managed_env(name):
    return isinstance(name, str) and (name in MANAGED_ENV or name.startswith(MANAGED_ENV_PREFIXES))


def mask(value, secrets=()):
    """The value with every secret in it replaced by <hidden>: the given secrets, values of
    names that say secret (HF_TOKEN, API_KEY...), strings that look like tokens (hf_..., sk-...)
    or like NAME=value assignments of such names."""
    if isinstance(value, str):
        if value in secrets or SECRET_VALUE_RE.search(value):
            return HIDDEN
        return value
    if isinstance(value, dict):
        return dict((k, HIDDEN if SECRET_NAME_RE.search(str(k)) else mask(v, secrets)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [mask(v, secrets) for v in value]
    return value


def message(host, variable, value, rule, action, rule_id=None, secrets=()):
    text = "host %s: %s=%r: %s. %s" % (host, variable, mask(value, secrets), rule, action)
    for secret in secrets:
        if isinstance(secret, str) and len(secret) >= 4:
            text = text.replace(secret, HIDDEN).replace(repr(secret)[1:-1], HIDDEN)
    return text + (" [%s]" % rule_id if rule_id else "")


def message_masked(text, secrets):
    """A message made elsewhere (_placement), with any secret in it hidden."""
    for secret in secrets:
        if isinstance(secret, str) and len(secret) >= 4:
            text = text.replace(secret, HIDDEN).replace(repr(secret)[1:-1], HIDDEN)
    return text


class _Report:
    def __init__(self, host, secrets=()):
        self.host = host
        self.errors = []
        self.secrets = tuple(s for s in secrets if isinstance(s, str) and s)

    def add(self, variable, value, rule, action, rule_id):
        self.errors.append(message(self.host, variable, value, rule, action, rule_id, self.secrets))


def _secrets_of(contract):
    return tuple(contract.get(k) for k in ("multillm_hf_token", "litellm_gateway_master_key")
                 if isinstance(contract.get(k), str) and contract.get(k))


# --- single rules other roles call ----------------------------------------------------------

def gateway_port_errors(port, host, variable="litellm_gateway_port"):
    """The gateway's port: an integer from 1024 to 65535."""
    if not _is_int(port) or not PORT_MIN <= port <= PORT_MAX:
        return [message(host, variable, port, "must be an integer from %d to %d" % (PORT_MIN, PORT_MAX),
                        "Pick a free unprivileged port for the gateway, e.g. 4001.", "gateway-port")]
    return []


def bind_address_errors(address, host, variable="litellm_gateway_bind_address"):
    """The address systemd's socket unit listens on: an IP literal (0.0.0.0 and :: are every
    address) or localhost; systemd resolves no other host name."""
    ok = address == "localhost"
    if not ok and isinstance(address, str) and re.fullmatch(r"[0-9A-Fa-f:.]+", address):
        try:
            ipaddress.ip_address(address)
            ok = True
        except ValueError:
            ok = False
    if not ok:
        return [message(host, variable, address,
                        "must be an IPv4 or IPv6 address literal (0.0.0.0 and :: listen on every address) or "
                        "localhost: systemd binds the gateway's socket and resolves no host name",
                        "Set the address itself, e.g. 127.0.0.1 or 0.0.0.0.", "gateway-bind-address")]
    return []


def litellm_version_errors(version, host, variable="litellm_gateway_version"):
    """One exact LiteLLM release (X.Y.Z or X.Y.Z.postN), not compromised, >= 1.83.10."""
    text = str(version)
    match = LITELLM_VERSION_RE.fullmatch(text) if isinstance(version, str) else None
    base = ".".join(match.groups()[:3]) if match else text
    if base in LITELLM_COMPROMISED:
        return [message(host, variable, version, "is a compromised LiteLLM release (malicious upload of 2026-03-24)",
                        "Pin a clean release, 1.83.10 or newer.", "litellm-version")]
    if not match:
        return [message(host, variable, version, "must be an exact release such as 1.106.12 (or 1.106.12.post1)",
                        "Pin one exact version as a string; ranges make reprovisioning unrepeatable.",
                        "litellm-version")]
    if tuple(int(g) for g in match.groups()[:3]) < LITELLM_MIN_VERSION:
        return [message(host, variable, version,
                        "is older than 1.83.10, which fixes proxy CVE-2026-42208 and CVE-2026-40217",
                        "Pin 1.83.10 or newer.", "litellm-version")]
    return []


def master_key_errors(key, host, variable="litellm_gateway_master_key"):
    if key in (None, ""):
        return [message(host, variable, "<unset>", "is required on the gateway host",
                        "Set it in the inventory's vault file (see inventories/h100/README.md).", "master-key")]
    if not isinstance(key, str) or not key.startswith("sk-") or len(key) < MASTER_KEY_MIN_LEN \
            or not MASTER_KEY_RE.fullmatch(key):
        # The value itself is a secret: never echo it.
        return [message(host, variable, HIDDEN,
                        "must be one line that starts with 'sk-', has at least %d characters and holds only "
                        "letters, digits and ._~+/=- (no space, quote, '%%' or '$': it goes into a systemd "
                        "environment file)" % MASTER_KEY_MIN_LEN,
                        "Generate one, e.g. \"sk-$(openssl rand -hex 24)\", and store it with ansible-vault.",
                        "master-key")]
    return []


# --- the multillm_* contract of one host ------------------------------------------------------

def _gib_value(r, variable, value, rule, action, rule_id, strict=False):
    """A finite number of GiB, above 0 (strict) or 0 or more, below GIB_PLAUSIBLE_MAX (a larger
    one is MiB given as GiB). Reports and returns False when it is not."""
    if not _is_number(value) or value < 0 or (strict and value == 0):
        r.add(variable, value, rule, action, rule_id)
        return False
    if value >= GIB_PLAUSIBLE_MAX:
        r.add(variable, value, "looks like MiB, not GiB: no GPU holds %d GiB (%s MiB = %.1f GiB)"
              % (GIB_PLAUSIBLE_MAX, _num(value), value / 1024.0), "Give the value in GiB, e.g. %.1f." % (value / 1024.0),
              rule_id)
        return False
    return True


def _num(value):
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _check_unknown(c, r):
    known = set(CONTRACT_DEFAULTS) | set(MULTILLM_VARIABLES_EXTRA)
    for name in sorted(k for k in c if isinstance(k, str) and k.startswith("multillm_") and k not in known):
        # A misspelt secret variable holds a secret: hide it whatever it looks like.
        secret = SECRET_NAME_RE.search(name) or _closest(name, known) in SECRET_VARIABLES
        r.add(name, HIDDEN if secret else c[name], "is not a variable of the multillm contract",
              _did_you_mean(name, known, "Remove it or correct its spelling (docs/inventory.md lists them)."),
              "unknown-variable")


def _check_scalars(c, r):
    strategy = c.get("multillm_vram_strategy", CONTRACT_DEFAULTS["multillm_vram_strategy"])
    if strategy not in STRATEGIES:
        r.add("multillm_vram_strategy", strategy, "must be one of %s" % ", ".join(STRATEGIES),
              _did_you_mean(strategy, STRATEGIES, "Set kvcached for elastic KV memory or static for fixed slices."),
              "strategy")

    gpu = c.get("multillm_gpu_memory_gib", CONTRACT_DEFAULTS["multillm_gpu_memory_gib"])
    gpu_ok = _gib_value(r, "multillm_gpu_memory_gib", gpu, "must be a number above 0 (finite, GiB of one GPU)",
                        "Set it to the GPU's total memory, e.g. 79.6 for an H100 80GB.", "gpu-size", strict=True)

    resting = c.get("multillm_resting_vram_gib", CONTRACT_DEFAULTS["multillm_resting_vram_gib"])
    resting_ok = False
    if resting is None:
        pass  # unset: verify measures the total and shows it, unchecked
    elif not _is_number(resting) or resting < 0:
        r.add("multillm_resting_vram_gib", resting, "must be a finite number of GiB, 0 or more",
              "Set what the models hold together at rest as verify measured it (inventories/h100: 37), "
              "or leave it unset to measure first.", "resting-target")
    elif gpu_ok and resting > gpu * _gpu_count(c):
        r.add("multillm_resting_vram_gib", resting,
              "must not exceed multillm_gpu_memory_gib (%s GiB)%s" % (
                  gpu, "" if _gpu_count(c) == 1 else " x multillm_gpu_count (%d)" % _gpu_count(c)),
              "Lower the target or correct multillm_gpu_memory_gib.", "resting-target")
    else:
        resting_ok = True

    tolerance = c.get("multillm_resting_vram_tolerance_gib", CONTRACT_DEFAULTS["multillm_resting_vram_tolerance_gib"])
    if not _is_number(tolerance) or tolerance < 0:
        r.add("multillm_resting_vram_tolerance_gib", tolerance, "must be a finite number of GiB, 0 or more",
              "Set how far the measured resting VRAM may be from the target, e.g. 4.", "tolerance")
    elif resting_ok and resting > 0 and tolerance >= resting:
        r.add("multillm_resting_vram_tolerance_gib", tolerance,
              "must be below the resting target (%s GiB): a tolerance as large as the target accepts an "
              "empty GPU" % _num(resting), "Set a tolerance of a few GiB, e.g. 4.", "tolerance")

    cap = c.get("multillm_static_utilization_cap", UTILIZATION_MAX)
    if not _is_number(cap) or not 0 < cap <= 1:
        r.add("multillm_static_utilization_cap", cap, "must be a fraction above 0 and at most 1",
              "Keep the default 0.95 unless you know why.", "utilization-cap")

    required = c.get("multillm_gpu_required", True)
    if not isinstance(required, bool):
        r.add("multillm_gpu_required", required, "must be a boolean",
              "Use true on GPU hosts, false on lab or CI hosts.", "gpu-required")

    address = c.get("multillm_backend_address", "")
    if address is not None and address != "":
        problem = backend_address_problem(address)
        if problem:
            r.add("multillm_backend_address", address, problem,
                  "Set the GPU host's own address on the private network to the gateway host, e.g. 10.0.0.21.",
                  "backend-address")

    token = c.get("multillm_hf_token", "")
    if token is not None and not isinstance(token, str):
        r.add("multillm_hf_token", HIDDEN, "must be a string", "Put the Hugging Face token in the vault file.",
              "hf-token")
    elif token and not HF_TOKEN_RE.fullmatch(token):
        r.add("multillm_hf_token", HIDDEN, "must be one line of letters, digits, '_', '-' and '.' (it is written "
              "to the model's env file, one variable a line)",
              "Copy the token again without quotes, spaces or line breaks (a YAML block scalar adds a newline).",
              "hf-token")

    return strategy, gpu if gpu_ok else None, cap if _is_number(cap) else UTILIZATION_MAX


def _gpu_count(c):
    count = c.get("multillm_gpu_count", _placement.DEFAULT_GPU_COUNT)
    return count if _is_int(count) and count >= 1 else 1


def backend_address_problem(address):
    """Why an address cannot be a backend address, or None."""
    if not isinstance(address, str) or not ADDRESS_RE.fullmatch(address):
        return "must be empty or an IPv4 address"
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError:
        return "must be empty or an IPv4 address"
    if ip.is_unspecified:
        return "is the wildcard address: the gateway cannot dial it; it must be this host's own address"
    if ip.is_multicast or ip == ipaddress.IPv4Address("255.255.255.255"):
        return "is a multicast or broadcast address, not a host's"
    return None


def _check_gateway(c, r):
    """Gateway settings, when the host runs the gateway (master key given, or is_gateway)."""
    is_gateway = bool(c.get("multillm_is_gateway")) or "litellm_gateway_master_key" in c
    port = c.get("litellm_gateway_port")
    if port is None and is_gateway:
        port = GATEWAY_DEFAULTS["litellm_gateway_port"]
    if port is not None:
        r.errors.extend(gateway_port_errors(port, r.host))
    if "litellm_gateway_bind_address" in c:
        r.errors.extend(bind_address_errors(c["litellm_gateway_bind_address"], r.host))
    if is_gateway:
        r.errors.extend(master_key_errors(c.get("litellm_gateway_master_key"), r.host))
    version = c.get("litellm_gateway_version")
    if version is not None:
        r.errors.extend(litellm_version_errors(version, r.host))
    extra_env = c.get("litellm_gateway_extra_env")
    if extra_env is not None:
        # Written as NAME="value" lines into the gateway's systemd environment file.
        env_errors("litellm_gateway_extra_env", extra_env, r)
        if isinstance(extra_env, dict) and "LITELLM_MASTER_KEY" in extra_env:
            r.add("litellm_gateway_extra_env.LITELLM_MASTER_KEY", HIDDEN, "is set by the gateway role from "
                  "litellm_gateway_master_key", "Remove it from litellm_gateway_extra_env.", "managed-env")
    return port if _is_int(port) else None


def _check_extra_args(label, args, r):
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        r.add("%s.extra_args" % label, args, "must be a list of strings", "Write one vllm serve argument per item.",
              "extra-args")
        return
    for a in args:
        if not _one_line(a) or not a:
            r.add("%s.extra_args" % label, a, "must be one non-empty line of printable characters (a line break "
                  "or control character would become part of the command line)",
                  "Write one argument per item, without line breaks.", "extra-args")
            continue
        flag = managed_flag(a)
        if flag:
            r.add("%s.extra_args" % label, a,
                  "sets %s (vLLM reads '_' as '-', --flag=value, --flag.key and unique prefixes alike), which "
                  "model_stack renders from the model entry" % flag,
                  "Use the model entry's own field instead (name, model, port, gpu_memory_utilization, "
                  "max_model_len); a config file is not accepted.", "managed-flag")


def env_errors(label, env, r, rule_form="env-form"):
    """A mapping NAME: one-line value; NAMEs that model_stack manages are refused."""
    if not isinstance(env, dict) or not all(isinstance(k, str) for k in env):
        r.add(label, env, "must be a mapping of variable names to values (not a list of NAME=value)",
              "Write it as NAME: value pairs.", rule_form)
        return
    for k in sorted(env):
        v = env[k]
        secret = SECRET_NAME_RE.search(k) is not None
        if not ENV_NAME_RE.fullmatch(k):
            r.add("%s.%s" % (label, k), HIDDEN if secret else v,
                  "the name must be letters, digits and '_', not starting with a digit",
                  "Rename the variable.", rule_form)
        elif managed_env(k):
            r.add("%s.%s" % (label, k), HIDDEN if secret else v,
                  "is set by model_stack (kvcached settings from `kvcached:`, unique IPC names, CPU KV space, "
                  "secrets from the env file)",
                  "Remove it from env; use the model's kvcached: settings, multillm_hf_token for the token, "
                  "cpu_kvcache_gib for the CPU KV space.", "managed-env")
        elif isinstance(v, (dict, list)) or v is None or (isinstance(v, float) and not math.isfinite(v)) \
                or (isinstance(v, str) and not _one_line(v)):
            r.add("%s.%s" % (label, k), HIDDEN if secret else v,
                  "the value must be one line of printable characters, a number or a boolean",
                  "Put the value on one line (a YAML block scalar adds a line break).", rule_form)


def _check_model_id(label, value, r):
    ok = isinstance(value, str) and (
        (value.startswith("/") and ABS_PATH_RE.fullmatch(value) is not None and len(value) > 1)
        or (HUB_ID_RE.fullmatch(value) is not None and len(value) <= 96 + 97
            and ".." not in value and "--" not in value and not value.endswith((".", "-"))))
    if not ok:
        r.add("%s.model" % label, value,
              "must be a non-empty repository id (org/name of letters, digits, '.', '_', '-') or an absolute "
              "path of letters, digits and ._+@-/ (no '..', ':', space or line break)",
              "Set e.g. Qwen/Qwen2.5-14B-Instruct or /models/qwen2.", "model-id")


def image_ok(value):
    return isinstance(value, str) and len(value) <= 512 and IMAGE_RE.fullmatch(value) is not None


def _check_whole(label, key, value, maximum, r, action):
    if value is not None and (not _is_int(value) or value <= 0 or value > maximum):
        r.add("%s.%s" % (label, key), value, "must be a positive integer, at most %d" % maximum, action,
              "whole-number")


def _check_model(i, m, ctx, r):
    where = "multillm_models[%d]" % i
    if not isinstance(m, dict):
        r.add(where, m, "must be a dictionary with name, model, port and gpu_memory_utilization",
              "Write each model as a mapping (see docs/inventory.md).", "model-entry")
        return
    label = "%s (%s)" % (where, m.get("name", "unnamed"))
    known = MODEL_KEYS_REQUIRED + MODEL_KEYS_OPTIONAL
    for key in MODEL_KEYS_REQUIRED:
        if key not in m:
            r.add("%s.%s" % (label, key), None, "is required", "Add the field to the model entry.",
                  "model-field-required")
    for key in sorted(set(m) - set(known), key=str):
        secret = SECRET_NAME_RE.search(str(key)) is not None
        r.add("%s.%s" % (label, key), HIDDEN if secret else m[key], "is not a known field (known: %s)" % ", ".join(known),
              _did_you_mean(key, known, "Remove it or correct its spelling."), "model-field-unknown")

    name = m.get("name")
    if "name" in m:
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            r.add("%s.name" % label, name,
                  "must be 1-63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit "
                  "(it names the container, the systemd unit and the gateway model)",
                  "Rename the model, e.g. qwen2.5-14b-instruct.", "name-chars")
        elif name in ctx["names"]:
            r.add("%s.name" % label, name, "must be unique; models %d and %d share it" % (ctx["names"][name], i),
                  "Give every model its own name.", "name-unique")
        else:
            ctx["names"][name] = i

    if "model" in m:
        _check_model_id(label, m["model"], r)

    port = m.get("port")
    if "port" in m:
        if not _is_int(port) or not PORT_MIN <= port <= PORT_MAX:
            r.add("%s.port" % label, port, "must be an integer from %d to %d" % (PORT_MIN, PORT_MAX),
                  "Pick a free unprivileged port.", "port-range")
        elif port in ctx["ports"]:
            r.add("%s.port" % label, port, "must be unique; models %d and %d share it" % (ctx["ports"][port], i),
                  "Give every model its own port.", "port-unique")
        elif ctx["gateway_port"] is not None and port == ctx["gateway_port"]:
            r.add("%s.port" % label, port, "must differ from litellm_gateway_port (%d, the gateway's port on "
                  "this host%s)" % (port, "" if ctx["gateway_port_set"] else ", its default"),
                  "Move the model or the gateway.", "port-gateway")
        else:
            ctx["ports"][port] = i

    util = m.get("gpu_memory_utilization")
    if "gpu_memory_utilization" in m and (not _is_number(util) or not 0 < util <= UTILIZATION_MAX):
        r.add("%s.gpu_memory_utilization" % label, util,
              "must be a fraction above 0 and at most %s" % UTILIZATION_MAX,
              "Set the model's share of GPU memory, e.g. 0.5.", "fraction")
        ctx["bad_util"].add(i)

    weights = m.get("weights_gib")
    # Whether the weights fit their slice is decided per GPU by _placement (weights-fit).
    if weights is not None and not _gib_value(r, "%s.weights_gib" % label, weights, "must be a finite number of "
                                              "GiB above 0", "Set the size of the weights in GiB.", "gib-value",
                                              strict=True):
        ctx["bad_weights"].add(i)

    if m.get("resting_gib") is not None:
        _gib_value(r, "%s.resting_gib" % label, m["resting_gib"], "must be a finite number of GiB, 0 or more",
                   "Set the VRAM the model holds at rest.", "gib-value")

    cpu_kv = m.get("cpu_kvcache_gib")
    if cpu_kv is not None and (not _is_int(cpu_kv) or cpu_kv <= 0 or cpu_kv > CPU_KVCACHE_GIB_MAX):
        r.add("%s.cpu_kvcache_gib" % label, cpu_kv, "must be a whole number of GiB above 0 and at most %d "
              "(VLLM_CPU_KVCACHE_SPACE)" % CPU_KVCACHE_GIB_MAX, "Set the KV cache size of the CPU build, e.g. 1.",
              "whole-number")

    _check_whole(label, "max_model_len", m.get("max_model_len"), MAX_MODEL_LEN_MAX, r, "Correct the value.")
    # A4 (issue 15 item 11): the KV capacity in tokens the model's slice promises (model_kv_check).
    _check_whole(label, "kv_tokens", m.get("kv_tokens"), KV_TOKENS_MAX, r,
                 "Set the capacity vLLM reported for this slice (its log's \"GPU KV cache size\"), or remove it.")
    _check_whole(label, "health_timeout_s", m.get("health_timeout_s"), HEALTH_TIMEOUT_MAX_S, r,
                 "Correct the value (seconds).")

    image = m.get("image")
    if image is not None and not image_ok(image):
        r.add("%s.image" % label, image, "must be an image reference without spaces or line breaks "
              "([registry[:port]/]path[:tag][@digest])", "Set e.g. vllm/vllm-openai:v0.11.0.", "image-ref")

    recipe = m.get("recipe")
    if recipe is not None and recipe not in tuple(RECIPES) + (RECIPE_NONE,):
        r.add("%s.recipe" % label, recipe, "must be one of %s" % ", ".join(sorted(RECIPES) + [RECIPE_NONE]),
              _did_you_mean(recipe, tuple(RECIPES) + (RECIPE_NONE,),
                            "Name a known recipe, or none to render no recipe flags (docs/inventory.md lists them)."),
              "recipe")

    if m.get("extra_args") is not None:
        _check_extra_args(label, m["extra_args"], r)
    if m.get("env") is not None:
        env_errors("%s.env" % label, m["env"], r)

    kvc = m.get("kvcached")
    if kvc is not None:
        if not isinstance(kvc, dict):
            r.add("%s.kvcached" % label, kvc, "must be a mapping", "See roles/model_stack/README.md for its keys.",
                  "kvcached-key")
        else:
            for k in sorted(set(kvc) - set(KVCACHED_KEYS), key=str):
                r.add("%s.kvcached.%s" % (label, k), kvc[k], "is not a known kvcached setting (known: %s)"
                      % ", ".join(KVCACHED_KEYS), _did_you_mean(k, KVCACHED_KEYS, "Remove it or correct its spelling."),
                      "kvcached-key")


def contract_errors(contract, host):
    """Every broken rule of one host's multillm_* contract (and the gateway settings given).

    A host runs the gateway when the contract holds litellm_gateway_master_key (roles/multillm
    passes it on gateway hosts) or multillm_is_gateway: true (preflight); its port is then
    litellm_gateway_port or the gateway's default, and no model may take it.
    """
    contract = dict(contract or {})
    r = _Report(host, _secrets_of(contract))
    _check_unknown(dict((k, v) for k, v in contract.items() if k != "multillm_is_gateway"), r)
    strategy, gpu, cap = _check_scalars(contract, r)
    gateway_port = _check_gateway(contract, r)

    models = contract.get("multillm_models", [])
    if not isinstance(models, list):
        r.add("multillm_models", models, "must be a list of model entries", "Write the models as a YAML list.",
              "models-list")
        return r.errors
    if not models:
        r.add("multillm_models", models, "must list at least one model", "Add the models this host serves.",
              "models-list")
        return r.errors

    ctx = {"names": {}, "ports": {}, "gpu": gpu, "gateway_port": gateway_port, "bad_util": set(),
           "bad_weights": set(), "gateway_port_set": contract.get("litellm_gateway_port") is not None}
    for i, m in enumerate(models):
        _check_model(i, m, ctx, r)

    # Placement (several GPUs, tensor parallel) and the budgets per GPU: static slices and
    # weights that fit their slice. Values already refused above are left out of its sums.
    placed = dict(contract, multillm_vram_strategy=strategy, multillm_gpu_memory_gib=gpu,
                  multillm_static_utilization_cap=cap)
    placed["multillm_models"] = [
        m if not isinstance(m, dict) else dict((k, v) for k, v in m.items() if not (
            (k == "gpu_memory_utilization" and i in ctx["bad_util"]) or (k == "weights_gib" and i in ctx["bad_weights"])))
        for i, m in enumerate(models)]
    r.errors.extend(message_masked(e, r.secrets) for e in _placement.placement_errors(placed, host))
    return r.errors


# --- model_stack's settings -------------------------------------------------------------------

# The defaults of roles/model_stack/defaults/main.yml that the spec builder reads
# (tests/unit/test_role_defaults.py keeps them equal); templated defaults are resolved by
# the role and always passed in.
MODEL_STACK_DEFAULTS = {
    "model_stack_server": "vllm",
    "model_stack_device": "gpu",
    "model_stack_image_kvcached": "multillm-kvcached-vllm:kvcached-v0.1.5-vllm-v0.19.0",
    "model_stack_image_static": "vllm/vllm-openai:v0.19.0",
    "model_stack_image_fault_injector": "multillm-fault-injector:latest",
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
    "model_stack_weights_endpoint": "",
    "model_stack_weights_state_dir": "/var/lib/multillm/weights",
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
              "Set KVCACHED_MIN_RESERVED_PAGES, e.g. 0 (the measured default).", "kvcached-value")
    if hi is None or (lo is not None and hi < lo) or hi < 0:
        r.add("%s.max_reserved_pages" % label, kvc.get("max_reserved_pages"),
              "must be a whole number, at least min_reserved_pages", "Set KVCACHED_MAX_RESERVED_PAGES, e.g. 0.",
              "kvcached-value")
    page = whole("page_size_mb")
    if page is None or page < 2 or page % 2 or page > PAGE_SIZE_MB_MAX:
        r.add("%s.page_size_mb" % label, kvc.get("page_size_mb"),
              "must be a multiple of 2 (kvcached's page unit) from 2 to %d" % PAGE_SIZE_MB_MAX,
              "Set 2 (4 doubled the resting floor on an H100).", "page-size")
    cached = whole("max_cached_tokens")
    if cached is None or cached < -1:
        r.add("%s.max_cached_tokens" % label, kvc.get("max_cached_tokens"),
              "must be a whole number, -1 (unlimited), 0 (off) or a positive cap",
              "Set the prefix-cache cap in tokens, e.g. 0.", "kvcached-value")
    if not isinstance(kvc.get("page_prealloc"), bool):
        r.add("%s.page_prealloc" % label, kvc.get("page_prealloc"), "must be a boolean",
              "Use true (kvcached 0.1.6 needs it for kvctl limit to be seen) or false.", "kvcached-value")
    limit = kvc.get("limit_gib")
    if not _is_number(limit) or limit < 0:
        r.add("%s.limit_gib" % label, limit, "must be a finite number of GiB, 0 (no limit) or more",
              "Set the kvctl limit of the model's pool, or 0.", "kvcached-value")
    elif limit >= GIB_PLAUSIBLE_MAX:
        r.add("%s.limit_gib" % label, limit, "looks like MiB, not GiB: no GPU holds %d GiB" % GIB_PLAUSIBLE_MAX,
              "Give the limit in GiB.", "kvcached-value")


def _pools_collide(a, b):
    """True when two pool names are equal or one is an extra KV group of the other."""
    if a == b:
        return True
    short, long_ = sorted((a, b), key=len)
    return long_.startswith(short) and KVCACHED_GROUP_RE.fullmatch(long_[len(short):]) is not None


# model_stack settings that end up in a unit file or a docker argument, by kind.
MODEL_STACK_PATHS = ("model_stack_hf_cache_dir", "model_stack_hf_cache_mount", "model_stack_config_dir",
                     "model_stack_helper_path", "model_stack_docker_cli")
MODEL_STACK_IMAGES = ("model_stack_image_kvcached", "model_stack_image_static", "model_stack_image_fault_injector",
                      "model_stack_image_cpu")
NETWORK_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
SHM_SIZE_RE = re.compile(r"[0-9]{1,12}[bkmgBKMG]?")


def _model_stack_strings(s, r):
    for key in MODEL_STACK_PATHS:
        value = s.get(key)
        if not isinstance(value, str) or not ABS_PATH_RE.fullmatch(value) or value == "/":
            r.add(key, value, "must be an absolute path of letters, digits and ._+@-/ (it is written into the "
                  "model units and docker arguments: no space, '%', ':' or line break)",
                  "Keep the default or choose a plain path.", "model-stack-path")
    for key in MODEL_STACK_IMAGES:
        if key in s and not image_ok(s[key]):
            r.add(key, s[key], "must be an image reference without spaces or line breaks",
                  "Set e.g. vllm/vllm-openai:v0.19.0.", "model-stack-path")
    network = s.get("model_stack_network")
    if network not in (None, "") and (not isinstance(network, str) or not NETWORK_RE.fullmatch(network)):
        r.add("model_stack_network", network, "must be empty or a Docker network name ([A-Za-z0-9_.-])",
              "Keep the default multillm-models.", "model-stack-path")
    shm = s.get("model_stack_shm_size")
    if not isinstance(shm, str) or not SHM_SIZE_RE.fullmatch(shm):
        r.add("model_stack_shm_size", shm, "must be a size such as 8g (digits and one of b, k, m, g)",
              "Keep the default 8g.", "model-stack-path")
    if isinstance(s.get("model_stack_env"), dict):
        env_errors("model_stack_env", s["model_stack_env"], r, rule_form="model-stack-path")


def model_stack_errors(settings, models, host):
    """Every broken rule of model_stack's own settings, decided from the inventory alone.

    `settings` holds the model_stack_* variables (missing ones take MODEL_STACK_DEFAULTS)
    and multillm_vram_strategy; `models` is multillm_models, already checked by the contract.
    """
    s = dict(MODEL_STACK_DEFAULTS)
    s.update(settings or {})
    r = _Report(host, tuple(v for k, v in s.items() if k in ("multillm_hf_token",) and isinstance(v, str)))

    def choice(key, choices, action):
        if s[key] not in choices:
            r.add(key, s[key], "must be one of %s" % ", ".join(choices),
                  _did_you_mean(s[key], choices, action), "model-stack-setting")

    choice("model_stack_server", SERVERS, "Use vllm, or fault_injector only where a test injects a model fault.")
    choice("model_stack_device", DEVICES, "Use gpu, or cpu for vLLM's CPU build (no GPU, no kvcached).")
    poll = s["model_stack_health_poll_interval_s"]
    if not _is_number(poll) or poll <= 0 or poll > 60:
        r.add("model_stack_health_poll_interval_s", poll, "must be a finite number of seconds above 0, at most 60",
              "Set e.g. 0.05.", "model-stack-setting")
    for key in ("model_stack_progress_every_s", "model_stack_health_timeout_s"):
        value = s[key]
        if not _is_int(value) or value < 1 or value > HEALTH_TIMEOUT_MAX_S:
            r.add(key, value, "must be a whole number of seconds, 1 or more (at most %d)" % HEALTH_TIMEOUT_MAX_S,
                  "Correct the value.", "model-stack-setting")
    for key in ("model_stack_vram_settle_interval_s", "model_stack_vram_settle_timeout_s"):
        value = s[key]
        if not _is_number(value) or value <= 0 or value > HEALTH_TIMEOUT_MAX_S:
            r.add(key, value, "must be a finite number of seconds above 0", "Correct the value.",
                  "model-stack-setting")
    for key in ("model_stack_vram_settle_samples", "model_stack_vram_settle_delta_mib"):
        value = s[key]
        if not _is_int(value) or value < 1:
            r.add(key, value, "must be a whole number, 1 or more", "Correct the value.", "model-stack-setting")
    prefix = s["model_stack_name_prefix"]
    if not isinstance(prefix, str) or not PREFIX_RE.fullmatch(prefix) or len(prefix) > 64:
        r.add("model_stack_name_prefix", prefix,
              "must be lower-case letters, digits, '.', '_' or '-', starting with a letter or digit "
              "(it starts every container and unit name)", "Keep the default multillm-model- or correct it.",
              "model-stack-setting")
    choice("model_stack_kvcached_ipc_mode", IPC_MODES, "Use host so kvctl on the host sees the pools.")
    for key in ("model_stack_kvcached_version", "model_stack_vllm_version"):
        if version_tuple(s[key]) is None:
            r.add(key, s[key], "must be an X.Y.Z version string", "Set the version the image carries, e.g. 0.19.0.",
                  "model-stack-setting")
    if not isinstance(s["model_stack_env"], dict):
        r.add("model_stack_env", s["model_stack_env"], "must be a mapping", "Correct the mapping.",
              "model-stack-path")
    _model_stack_strings(s, r)
    defaults = s["model_stack_kvcached_defaults"]
    if not isinstance(defaults, dict):
        r.add("model_stack_kvcached_defaults", defaults, "must be a mapping", "Correct the mapping.",
              "kvcached-key")
        defaults = MODEL_STACK_DEFAULTS["model_stack_kvcached_defaults"]
    else:
        for k in sorted(set(defaults) - set(KVCACHED_KEYS), key=str):
            r.add("model_stack_kvcached_defaults.%s" % k, defaults[k], "is not a known kvcached setting (known: %s)"
                  % ", ".join(KVCACHED_KEYS), _did_you_mean(k, KVCACHED_KEYS, "Remove it or correct its spelling."),
                  "kvcached-key")
        defaults = dict(MODEL_STACK_DEFAULTS["model_stack_kvcached_defaults"], **defaults)

    # What the model's files and argv are rendered from, checked here too: the role's preflight
    # runs this when roles/multillm's validation was skipped (--tags model_stack_preflight,...).
    r.errors.extend(render_errors(models, host, s.get("multillm_hf_token")))
    kvcached = s.get("multillm_vram_strategy", "kvcached") == "kvcached" and s["model_stack_device"] == "gpu"
    if not kvcached or not isinstance(models, list):
        return r.errors
    pools = {}
    for i, m in enumerate(models):
        if not isinstance(m, dict) or not isinstance(m.get("name"), str):
            continue
        own = m.get("kvcached") if isinstance(m.get("kvcached"), dict) else {}
        merged = dict(defaults, **dict((k, v) for k, v in own.items() if k in KVCACHED_KEYS))
        _kvcached_value_errors("multillm_models[%d] (%s).kvcached" % (i, m["name"]), merged, r)
        pool = kvcached_ipc_name(KVCACHED_POOL_PREFIX + m["name"])
        for other, j in pools.items():
            # Two equal names are the contract's name-unique rule, reported there.
            if _pools_collide(pool, other) and models[j].get("name") != m["name"]:
                r.add("multillm_models[%d] (%s).name" % (i, m["name"]), m["name"],
                      "gives the kvcached pool %s, which collides with model %d's pool %s (kvcached turns '.' "
                      "into '-', cuts names to 64 characters and keeps extra KV groups in <pool>_g<N>)"
                      % (pool, j, other), "Rename one of the two models.", "pool-collision")
        pools[pool] = i
    return r.errors


# Rules on what model_stack writes into unit files, env files and argv.
RENDER_RULES = ("name-chars", "model-id", "image-ref", "extra-args", "managed-flag", "env-form", "managed-env",
                "hf-token")


def render_errors(models, host, token=None):
    """The contract's rules on what a model's unit, env file and argv are rendered from."""
    contract = {"multillm_models": models if isinstance(models, list) else []}
    if token is not None:
        contract["multillm_hf_token"] = token
    if not contract["multillm_models"]:
        return []
    return [e for e in contract_errors(contract, host) if e.rsplit("[", 1)[-1].rstrip("]") in RENDER_RULES]


# --- the whole inventory: every host, and the rules across hosts -------------------------------

def _machine(h):
    """What identifies the machine an inventory host reaches: (connection, address, port)."""
    m = h.get("machine") or {}
    connection = str(m.get("connection") or "ssh").rsplit(".", 1)[-1]
    if connection == "local":
        return ("local", "localhost", None)
    address = str(m.get("address") or h.get("name"))
    port = m.get("port")
    return (connection, address.lower(), str(port) if port not in (None, "") else None)


def preflight_errors(hosts, gpu_hosts, gateway_hosts):
    """Every broken rule of every host, and of the inventory across hosts: {host: [messages]}.

    hosts: {inventory name: {"contract": {multillm_* as the inventory sets them, and for gateway
    hosts litellm_gateway_port/bind_address/master_key/version when set}, "model_stack": {the
    model_stack_* the inventory sets}, "machine": {address, port, connection},
    "backends": [the GPU hosts this gateway routes to]}}. Nothing here contacts a host.
    """
    # Each host's entry may come as JSON text (playbooks/preflight.yml sends it so: older
    # ansible-core loses nan and inf when it templates a mapping).
    hosts = dict((name, json.loads(h) if isinstance(h, str) else h) for name, h in (hosts or {}).items())
    gpu_hosts = [h for h in (gpu_hosts or []) if h in hosts]
    gateway_hosts = [h for h in (gateway_hosts or []) if h in hosts]
    out = dict((name, []) for name in hosts)
    secrets = []
    for name, h in sorted(hosts.items()):
        h = h if isinstance(h, dict) else {}
        hosts[name] = h
        contract = dict(h.get("contract") or {})
        secrets.extend(_secrets_of(contract))
        if name in gateway_hosts:
            contract["multillm_is_gateway"] = True
        try:
            out[name].extend(contract_errors(contract, name))
            if name in gpu_hosts:
                settings = dict(h.get("model_stack") or {})
                settings["multillm_vram_strategy"] = contract.get("multillm_vram_strategy",
                                                                  CONTRACT_DEFAULTS["multillm_vram_strategy"])
                settings["multillm_hf_token"] = contract.get("multillm_hf_token", "")
                models = contract.get("multillm_models", [])
                out[name].extend(model_stack_errors(settings, models if isinstance(models, list) else [], name))
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # preflight runs the check behind no_log (the input holds secrets): a bug here must
            # still reach the user, as a message, with any secret in it hidden.
            out[name].append(message_masked(
                "host %s: the contract check itself failed (%s: %s). This is a bug in "
                "plugins/module_utils/_contract.py; report it with the variable names, not their values. "
                "[internal]" % (name, type(exc).__name__, exc), _secrets_of(contract)))

    def add(host, variable, value, rule, action, rule_id):
        out[host].append(message(host, variable, value, rule, action, rule_id, tuple(secrets)))

    # Two inventory hosts that are one machine: their units, ports and GPU would collide.
    machines = {}
    for name in sorted(hosts):
        key = _machine(dict(hosts[name], name=name))
        if key in machines:
            add(name, "ansible_host", key[1], "is the same machine as host %s (%s %s%s): two inventory hosts "
                "would write the same units and take the same ports and GPU" % (
                    machines[key], key[0], key[1], "" if key[2] is None else ":%s" % key[2]),
                "Keep one inventory host per machine; put it in both groups if it runs models and the gateway.",
                "same-machine")
        else:
            machines[key] = name
        address = (hosts[name].get("contract") or {}).get("multillm_backend_address")
        if name in gpu_hosts and isinstance(address, str) and address:
            akey = ("backend", address, None)
            if akey in machines:
                add(name, "multillm_backend_address", address, "is also host %s's backend address: two GPU hosts "
                    "cannot be one address" % machines[akey], "Give each GPU host its own address.",
                    "same-machine")
            else:
                machines[akey] = name

    # Each gateway dials its backends: on its own machine by loopback, elsewhere by address.
    for gw in gateway_hosts:
        backends = hosts[gw].get("backends")
        backends = [b for b in (backends if isinstance(backends, list) else gpu_hosts) if b in hosts]
        gw_machine = _machine(dict(hosts[gw], name=gw))
        names = {}
        for b in backends:
            contract = hosts[b].get("contract") or {}
            address = contract.get("multillm_backend_address")
            remote = b != gw and _machine(dict(hosts[b], name=b)) != gw_machine
            if remote and not address:
                add(b, "multillm_backend_address", address or "",
                    "is empty, but the gateway on host %s is another machine: it would dial 127.0.0.1, its own "
                    "loopback, and never reach this host's models" % gw,
                    "Set multillm_backend_address to this host's address on the network to %s, e.g. 10.0.0.22." % gw,
                    "backend-unreachable")
            elif remote and isinstance(address, str) and ipaddress_is_loopback(address):
                add(b, "multillm_backend_address", address,
                    "is a loopback address, but the gateway on host %s is another machine" % gw,
                    "Set this host's address on the network to %s." % gw, "backend-unreachable")
            models = contract.get("multillm_models")
            for m in models if isinstance(models, list) else []:
                if not isinstance(m, dict) or not isinstance(m.get("name"), str) or "model" not in m:
                    continue
                seen = names.get(m["name"])
                if seen is None:
                    names[m["name"]] = (b, m.get("model"))
                elif seen[1] != m.get("model") and seen[0] != b:
                    add(b, "multillm_models (%s).model" % m["name"], m.get("model"),
                        "serves the name %s, which host %s gives to model %r: the gateway %s would balance one "
                        "name across two different models" % (m["name"], seen[0], seen[1], gw),
                        "Give different models different names, or serve the same model under that name.",
                        "name-two-models")
    # One gateway or several: a rule across hosts is reported once per host.
    return dict((name, [e for i, e in enumerate(errors) if e not in errors[:i]]) for name, errors in out.items())


def ipaddress_is_loopback(address):
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
