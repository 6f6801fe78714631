# -*- coding: utf-8 -*-
# Copyright: llmops.multillm contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Where each model runs on a host with several GPUs, and what follows from it. Pure functions.

A model entry may name its GPUs: `gpus: [0, 1]` (NVML indexes, as `nvidia-smi -L` lists them)
or `gpus: [GPU-<uuid>, ...]`. From that list follow:

* the container's Docker device request (exactly those devices, `device_ids`);
* vLLM's `--tensor-parallel-size` (the count of GPUs, less a pipeline split in extra_args);
* the per-GPU budgets the contract checks offline (placement_errors);
* the boot chains (predecessors): vLLM servers that load together crash each other only
  when they share a GPU (each measures that GPU's free memory), so the models of one GPU
  boot strictly in list order while chains on different GPUs boot side by side, and a model
  spanning several GPUs waits for the last earlier model of every GPU it touches.

A model without `gpus` is on GPU 0, and its container keeps the device request of before
(every GPU, `count: -1`; vLLM then uses the first): single-GPU inventories render as before.

No import of _contract here: _contract calls placement_errors. The defaults below equal
_contract's (tests/unit/plugins/module_utils/test_placement.py keeps them equal).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

DEFAULT_GPU = 0
DEFAULT_GPU_COUNT = 1
DEFAULT_GPU_MEMORY_GIB = 79.6
DEFAULT_CAP = 0.95
# NVIDIA's identifiers as nvidia-smi -L prints them (and Docker's device_ids accept).
UUID_RE = re.compile(r"(GPU|MIG)-[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
PP_FLAGS = ("--pipeline-parallel-size", "-pp")
# The most GPUs one model's tensor or pipeline split may name (a host has at most a few dozen).
PARALLEL_MAX = 64
# Every GPU through the nvidia driver (--gpus all): the request of a model without `gpus`.
ALL_GPUS_REQUEST = {"driver": "nvidia", "count": -1, "capabilities": [["gpu"]]}


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# Rule ids (the contract's RULES lists them with the others): gpu-count, gpus, tensor-parallel,
# and the contract's static-sum and weights-fit, decided here per GPU.
RULES = (
    ("gpu-count", "multillm_gpu_count is a whole number from 1 to 64"),
    ("gpus", "a model's gpus are GPU indexes below multillm_gpu_count or GPU UUIDs, each once, one kind per host"),
    ("tensor-parallel", "tensor_parallel_size times the pipeline split equals the number of gpus; more than one "
                        "GPU needs gpus"),
)


def _message(host, variable, value, rule, action, rule_id):
    # The contract's format (_contract.message); no secret reaches these messages.
    return "host %s: %s=%r: %s. %s [%s]" % (host, variable, value, rule, action, rule_id)


def _label(i, m):
    return "multillm_models[%d] (%s)" % (i, m.get("name", "unnamed"))


def gpu_label(gpu):
    return "GPU %s" % gpu


# --- one model ---------------------------------------------------------------------------------

def has_gpus(model):
    """True when the entry names its GPUs."""
    return isinstance(model, dict) and model.get("gpus") is not None


def model_gpus(model):
    """The GPUs a model runs on: its `gpus` (indexes or UUIDs), else [0]."""
    if has_gpus(model) and isinstance(model["gpus"], list) and model["gpus"]:
        return list(model["gpus"])
    return [DEFAULT_GPU]


def _flag_value(args, flags):
    """The value of the last of `flags` in a list of vllm serve arguments ('--x N' or '--x=N'), or None."""
    value = None
    args = [str(a) for a in args or []]
    for i, arg in enumerate(args):
        name, eq, inline = arg.partition("=")
        if name in flags:
            value = inline if eq else (args[i + 1] if i + 1 < len(args) else "")
    return value


def pipeline_parallel_size(model):
    """vLLM's pipeline split as the entry's extra_args set it (1 without one, None if unreadable)."""
    value = _flag_value(model.get("extra_args") if isinstance(model.get("extra_args"), list) else [], PP_FLAGS)
    if value is None:
        return 1
    return int(value) if re.fullmatch(r"[1-9][0-9]*", value) else None


def tensor_parallel_size(model):
    """The entry's tensor_parallel_size, else its GPU count divided by the pipeline split."""
    if _is_int(model.get("tensor_parallel_size")):
        return model["tensor_parallel_size"]
    return max(len(model_gpus(model)) // (pipeline_parallel_size(model) or 1), 1)


def device_requests(model):
    """The container's Docker device requests: exactly the listed GPUs, or every GPU as before."""
    if not has_gpus(model):
        return [dict(ALL_GPUS_REQUEST)]
    return [{"driver": "nvidia", "device_ids": [str(g) for g in model_gpus(model)], "capabilities": [["gpu"]]}]


def parallel_args(model):
    """The flags placement adds to `vllm serve`: --tensor-parallel-size when above 1."""
    tp = tensor_parallel_size(model)
    return ["--tensor-parallel-size", str(tp)] if tp > 1 else []


# --- the host's chains -----------------------------------------------------------------------

def predecessors(models):
    """For each model, the indexes of the models it boots behind: the last earlier model on
    each of its GPUs, ascending. A single GPU gives the strict chain [[], [0], [1], ...]."""
    last, out = {}, []
    for i, m in enumerate(models):
        before = sorted(set(last[g] for g in model_gpus(m) if g in last))
        out.append(before)
        for g in model_gpus(m):
            last[g] = i
    return out


def chains(models):
    """GPU -> the names of the models on it, in boot order (GPUs in first-use order)."""
    out = {}
    for m in models:
        for g in model_gpus(m):
            out.setdefault(g, []).append(m["name"])
    return out


def host_gpus(contract):
    """The GPUs the host must have: indexes 0..multillm_gpu_count-1, then every UUID a model names."""
    count = contract.get("multillm_gpu_count", DEFAULT_GPU_COUNT)
    gpus = list(range(count)) if _is_int(count) and 0 < count <= PARALLEL_MAX else [DEFAULT_GPU]
    for m in contract.get("multillm_models") or []:
        for g in model_gpus(m) if isinstance(m, dict) else []:
            if g not in gpus:
                gpus.append(g)
    return gpus


def resting_per_gpu(models):
    """GPU -> expected resting GiB (each model's resting_gib split evenly over its GPUs), for the
    GPUs whose every model gives resting_gib; others are left out."""
    sums, unknown = {}, set()
    for m in models:
        gpus = model_gpus(m)
        for g in gpus:
            if _is_number(m.get("resting_gib")):
                sums[g] = sums.get(g, 0.0) + float(m["resting_gib"]) / len(gpus)
            else:
                unknown.add(g)
    return dict((g, round(v, 3)) for g, v in sums.items() if g not in unknown)


# --- the offline contract ---------------------------------------------------------------------

def _gpus_errors(i, m, count, kinds, host):
    """The entry's `gpus` list; records the kinds of names it uses in `kinds`."""
    errors = []
    label = _label(i, m)
    gpus = m["gpus"]
    if not isinstance(gpus, list) or not gpus:
        return [_message(host, "%s.gpus" % label, gpus, "must be a non-empty list of GPU indexes or UUIDs",
                         "List the GPUs the model runs on, e.g. [0] or [0, 1] (nvidia-smi -L shows them).", "gpus")]
    for g in gpus:
        if _is_int(g):
            kinds.setdefault("index", i)
            if g < 0:
                errors.append(_message(host, "%s.gpus" % label, gpus, "GPU index %d is negative" % g,
                                       "Use the indexes nvidia-smi -L lists, from 0.", "gpus"))
            elif _is_int(count) and g >= count:
                errors.append(_message(
                    host, "%s.gpus" % label, gpus,
                    "GPU %d is not on this host: multillm_gpu_count is %d (GPU indexes 0 to %d)" % (g, count, count - 1),
                    "Set multillm_gpu_count to the host's number of GPUs, or place the model on GPUs it has.", "gpus"))
        elif isinstance(g, str) and UUID_RE.fullmatch(g):
            kinds.setdefault("uuid", i)
        else:
            errors.append(_message(host, "%s.gpus" % label, gpus,
                                   "%r is neither a GPU index (0, 1, ...) nor a GPU UUID (GPU-xxxxxxxx-...)" % (g,),
                                   "Write indexes as numbers, or copy the UUIDs from nvidia-smi -L.", "gpus"))
    if len(set(map(str, gpus))) != len(gpus):
        errors.append(_message(host, "%s.gpus" % label, gpus, "lists a GPU twice", "List each GPU once.", "gpus"))
    return errors


def _parallel_errors(i, m, host):
    errors = []
    label = _label(i, m)
    extra = m.get("extra_args") if isinstance(m.get("extra_args"), list) else []
    # --tensor-parallel-size in extra_args: the contract's managed-flag rule refuses it.
    pp = pipeline_parallel_size(m)
    if pp is None or pp > PARALLEL_MAX:
        errors.append(_message(host, "%s.extra_args" % label, _flag_value(extra, PP_FLAGS),
                               "sets --pipeline-parallel-size to a value that is not a whole number from 1 to %d"
                               % PARALLEL_MAX, "Correct the value.", "tensor-parallel"))
        pp = 1
    tp = m.get("tensor_parallel_size")
    if tp is None:
        if has_gpus(m) and isinstance(m["gpus"], list) and m["gpus"] and len(m["gpus"]) % pp:
            errors.append(_message(host, "%s.gpus" % label, m["gpus"], "%d GPUs do not split into a pipeline of %d "
                                   "stages" % (len(m["gpus"]), pp), "List a multiple of %d GPUs." % pp, "tensor-parallel"))
        return errors
    if not _is_int(tp) or not 1 <= tp <= PARALLEL_MAX:
        return errors + [_message(host, "%s.tensor_parallel_size" % label, tp,
                                  "must be a whole number from 1 to %d" % PARALLEL_MAX,
                                  "Leave it out to use every GPU in gpus, or correct it.", "tensor-parallel")]
    gpus = m["gpus"] if has_gpus(m) and isinstance(m["gpus"], list) else None
    if gpus is None and tp * pp > 1:
        errors.append(_message(host, "%s.tensor_parallel_size" % label, tp,
                               "needs gpus: a model on several GPUs must name them",
                               "Add gpus with %d GPU indexes, e.g. %s." % (tp * pp, list(range(tp * pp))), "tensor-parallel"))
    elif gpus and tp * pp != len(gpus):
        errors.append(_message(host, "%s.tensor_parallel_size" % label, tp,
                               "times the pipeline split (%d) must equal the number of GPUs in gpus (%d, %s)"
                               % (pp, len(gpus), gpus),
                               "Leave tensor_parallel_size out (it defaults to the GPU count) or list as many GPUs.",
                               "tensor-parallel"))
    return errors


def _budget_errors(models, strategy, gpu_gib, cap, host):
    errors = []
    # Static slices per GPU: vLLM's gpu_memory_utilization is a fraction of EACH GPU it uses.
    if strategy == "static" and _is_number(cap):
        per_gpu = {}
        for i, m in enumerate(models):
            if isinstance(m, dict) and _is_number(m.get("gpu_memory_utilization")):
                for g in model_gpus(m):
                    per_gpu.setdefault(g, []).append((m.get("name", "unnamed"), m["gpu_memory_utilization"]))
        for g, users in per_gpu.items():
            total = sum(share for _name, share in users)
            if total > cap + 1e-9:
                errors.append(_message(
                    host, "multillm_models[*].gpu_memory_utilization", round(total, 4),
                    "static slices must sum to at most multillm_static_utilization_cap (%s) on each GPU; on %s "
                    "the models %s sum to %s: vLLM reserves each slice up front and the last model would not fit"
                    % (cap, gpu_label(g), ", ".join("%s (%s)" % u for u in users), round(total, 4)),
                    "Lower the fractions, move a model to another GPU, or switch multillm_vram_strategy to kvcached.",
                    "static-sum"))
    # Weights split over the model's GPUs must fit in its slice of each.
    if _is_number(gpu_gib) and gpu_gib > 0:
        for i, m in enumerate(models):
            if not isinstance(m, dict):
                continue
            util, weights = m.get("gpu_memory_utilization"), m.get("weights_gib")
            if not (_is_number(util) and 0 < util and _is_number(weights) and weights > 0):
                continue
            split = tensor_parallel_size(m) * (pipeline_parallel_size(m) or 1)
            per_gpu = float(weights) / split
            if per_gpu >= util * gpu_gib:
                gpus = model_gpus(m)
                errors.append(_message(
                    host, "%s.weights_gib" % _label(i, m), weights,
                    "must fit in the model's slice on each of its GPUs (%s): %s GiB split over %d GPU%s is %.1f GiB "
                    "per GPU, gpu_memory_utilization %s x %s GiB = %.1f GiB, which must also leave room for "
                    "activations and KV cache" % (", ".join(gpu_label(g) for g in gpus), weights, split,
                                                  "" if split == 1 else "s", per_gpu, util, gpu_gib, util * gpu_gib),
                    "Raise gpu_memory_utilization, spread the model over more GPUs (gpus), or choose a smaller model.",
                    "weights-fit"))
    return errors


def placement_errors(contract, host):
    """Every broken placement rule of one host: multillm_gpu_count, each model's gpus and
    tensor_parallel_size, and the per-GPU budgets (static slices, weights per GPU).
    Values of the wrong type in fields the contract checks elsewhere are skipped here."""
    contract = contract or {}
    errors = []
    count = contract.get("multillm_gpu_count", DEFAULT_GPU_COUNT)
    if not _is_int(count) or not 1 <= count <= PARALLEL_MAX:
        errors.append(_message(host, "multillm_gpu_count", count, "must be a whole number from 1 to %d" % PARALLEL_MAX,
                               "Set the number of GPUs the host has (nvidia-smi -L), e.g. 8 for an HGX server.", "gpu-count"))
        count = None
    models = contract.get("multillm_models")
    if not isinstance(models, list):
        return errors
    kinds = {}
    for i, m in enumerate(models):
        if not isinstance(m, dict):
            continue
        if has_gpus(m):
            errors.extend(_gpus_errors(i, m, count, kinds, host))
        errors.extend(_parallel_errors(i, m, host))
    if len(kinds) > 1:
        errors.append(_message(
            host, "multillm_models[*].gpus", "indexes and UUIDs",
            "must name GPUs one way on a host: model %d uses indexes, model %d UUIDs, and the two cannot be "
            "matched before the host is asked" % (kinds["index"], kinds["uuid"]),
            "Use indexes everywhere, or UUIDs everywhere.", "gpus"))
    uses_uuids = "uuid" in kinds
    if uses_uuids and any(isinstance(m, dict) and not has_gpus(m) for m in models):
        errors.append(_message(host, "multillm_models[*].gpus", "missing on some models",
                               "must be given on every model of a host whose models name GPUs by UUID (a model "
                               "without gpus is on GPU 0, an index)", "Add gpus to every model.", "gpus"))
    strategy = contract.get("multillm_vram_strategy", "kvcached")
    errors.extend(_budget_errors(models, strategy, contract.get("multillm_gpu_memory_gib", DEFAULT_GPU_MEMORY_GIB),
                                 contract.get("multillm_static_utilization_cap", DEFAULT_CAP), host))
    return errors


# --- what vram_check checks on the host -----------------------------------------------------------

def vram_expectations(specs, models, gpu_count=DEFAULT_GPU_COUNT):
    """vram_check's per-GPU options for a host: {"gpus": ..., "containers": ..., "present": ...}.

    gpus: every GPU the host must have (indexes below gpu_count, every UUID a model names), as
    a key; its value the expected resting GiB when every model on it gives resting_gib (each
    model's split evenly over its GPUs), else None (the GPU must only exist).
    containers: each container whose model names its GPUs must run on exactly those GPUs (with
    its resting_gib as expected_gib when given). present: the same GPUs, each without an
    expectation (before the models load: they must only exist). `specs` are
    _model_spec.model_specs(models).
    """
    expected = resting_per_gpu([m for m in models if isinstance(m, dict)])
    gpus = {}
    for g in host_gpus({"multillm_gpu_count": gpu_count, "multillm_models": models}):
        gpus[str(g)] = expected.get(g)
    containers = {}
    for spec in specs:
        if spec.get("gpus"):
            entry = {"gpus": list(spec["gpus"])}
            if _is_number(spec.get("resting_gib")):
                entry["expected_gib"] = spec["resting_gib"]
            containers[spec["container"]] = entry
    return {"gpus": gpus, "containers": containers, "present": dict((g, None) for g in gpus)}
