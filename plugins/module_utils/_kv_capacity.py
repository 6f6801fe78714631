# -*- coding: utf-8 -*-
# Copyright: llmops.multillm contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""A model's KV-cache capacity as vLLM reports it, and the check against its plan.

vLLM's Prometheus logger publishes its CacheConfig once the engine is initialised, as the
info-style gauge `vllm:cache_config_info` (value 1, every CacheConfig field a label, values as
text; recent releases add an `engine` label). Its `num_gpu_blocks` label is the number of KV
blocks the engine allocated (on the CPU build too: the engine core sets the same field for
whatever device it runs on) and `block_size` the tokens per block, so the capacity in tokens is
num_gpu_blocks x block_size: the figure vLLM logs as "GPU KV cache size: N tokens".
Measured on an H200 with vLLM 0.26.0 (docs/benchmarks.md, 2026-12-04): 3,497 blocks x 16 =
55,952 tokens for Qwen2.5-14B-Instruct at its static slice, the same as the log line.

The check: a model fails when its capacity is below its plan `kv_tokens` by more than
KV_TOLERANCE. Why 10 %: on the same slice kvcached's accounting gives 4 % fewer tokens than a
static pool (53,760 against 55,952, same run), while two models started together cut the 14B
model's KV by 28 % (41.21 -> 29.64 GiB, ../shared/research/vllm.md) and both turned healthy.
10 % passes the first and fails the second with room on both sides.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

METRIC = "vllm:cache_config_info"
KV_TOLERANCE = 0.10
_LABEL_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def cache_configs(text):
    """The label sets of every `vllm:cache_config_info` sample in a /metrics text."""
    out = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line.startswith(METRIC + "{"):
            continue
        body = line[len(METRIC) + 1:line.rfind("}")]
        out.append(dict((k, v.replace('\\"', '"').replace("\\\\", "\\")) for k, v in _LABEL_RE.findall(body)))
    return out


def _whole(value):
    try:
        number = int(str(value))
    except ValueError:
        return None
    return number if number >= 0 else None


def kv_capacity(text):
    """{'tokens', 'blocks', 'block_size'} from a /metrics text. Raises ValueError saying what is
    missing. Several samples (one per engine) carry the same CacheConfig; the largest is taken."""
    configs = cache_configs(text)
    if not configs:
        raise ValueError("no %s sample in /metrics (a vLLM server publishes it once its engine is up)" % METRIC)
    best = None
    for labels in configs:
        blocks, size = _whole(labels.get("num_gpu_blocks")), _whole(labels.get("block_size"))
        if blocks is None or size is None:
            continue
        if best is None or blocks * size > best["tokens"]:
            best = {"tokens": blocks * size, "blocks": blocks, "block_size": size}
    if best is None:
        raise ValueError("%s has no whole num_gpu_blocks and block_size (saw num_gpu_blocks=%r, block_size=%r)"
                         % (METRIC, configs[0].get("num_gpu_blocks"), configs[0].get("block_size")))
    return best


def kv_floor(planned, tolerance=KV_TOLERANCE):
    """The fewest tokens a model may have: its plan less the tolerance, rounded up."""
    floor = planned * (1.0 - tolerance)
    return int(floor) if floor == int(floor) else int(floor) + 1


def kv_error(host, name, index, unit, tokens, planned, tolerance=KV_TOLERANCE):
    """'' when `tokens` meets the plan, else the message (host, model, value, rule, what to do)."""
    if planned is None:
        return ""
    floor = kv_floor(planned, tolerance)
    if tokens >= floor:
        return ""
    return ("host %s: model %s (multillm_models[%s]) has a KV cache of %d tokens, below its plan "
            "kv_tokens=%d less %d%% (at least %d tokens; %.1f%% short of the plan). A model that turns "
            "healthy with less KV than its slice promises was squeezed by another process on its GPU "
            "while it measured free memory (a model started at the same moment, a leftover process), or "
            "its slice, max_model_len or image changed. What to do: check `nvidia-smi` for other "
            "processes, restart the unit alone (systemctl restart %s), or, when the new figure is "
            "intended, set kv_tokens to it. [kv-capacity]"
            % (host, name, index, tokens, planned, round(tolerance * 100), floor,
               100.0 * (planned - tokens) / planned, unit))


def kv_line(name, capacity, planned, tolerance=KV_TOLERANCE):
    """One line of the summary: tokens, blocks x size, plan."""
    plan = "no plan (kv_tokens unset)" if planned is None else "plan %d, at least %d" % (
        planned, kv_floor(planned, tolerance))
    return "%s: %d KV tokens (%d blocks x %d), %s" % (
        name, capacity["tokens"], capacity["blocks"], capacity["block_size"], plan)
