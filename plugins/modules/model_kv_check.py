#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.multillm
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: model_kv_check
short_description: Read each vLLM model's KV-cache capacity and fail when it is below its plan
version_added: 0.2.0
description:
  - Reads C(vllm:cache_config_info) from each model's C(/metrics) and reports its KV capacity in
    tokens (C(num_gpu_blocks) x C(block_size), the figure vLLM logs as C(GPU KV cache size)).
  - Fails, naming the model, when a model with a plan (O(models[].kv_tokens)) has fewer than
    the plan less O(tolerance_pct) percent, or when its capacity cannot be read. A model
    without a plan is reported only, also when its capacity cannot be read.
  - Read-only; never reports a change.
author:
  - llmops.multillm maintainers (@llmops)
extends_documentation_fragment:
  - llmops.multillm.attributes.read_only
attributes:
  platform:
    platforms: posix
    support: full
    description: Runs where the models' loopback ports answer (the model host).
options:
  models:
    description: The models to read, in boot order (the role passes its specs).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The model's name (multillm_models[].name).
        type: str
        required: true
      index:
        description: Its index in multillm_models, for the message.
        type: int
        default: 0
      unit:
        description: Its systemd unit, for the message.
        type: str
        default: ''
      metrics_url:
        description: Its vLLM server's metrics URL.
        type: str
        required: true
      kv_tokens:
        description: The KV capacity in tokens its slice promises; null for no check.
        type: int
  tolerance_pct:
    description: How far below its plan a model may be, in percent (10 separates kvcached's
      accounting, 4% below static, from a concurrent start, 28% below).
    type: float
    default: 10
  host:
    description: The host's name in messages (the role passes inventory_hostname); default the host name.
    type: str
    default: ''
  timeout:
    description: Seconds to wait for each /metrics answer.
    type: float
    default: 10
'''

EXAMPLES = r'''
- name: Check the KV capacity of every model against its plan
  llmops.multillm.model_kv_check:
    models:
      - {name: qwen2.5-14b-instruct, metrics_url: "http://127.0.0.1:8001/metrics", kv_tokens: 53760}
'''

RETURN = r'''
models:
  description: Per model name, its capacity and plan.
  returned: always
  type: dict
  sample: {"qwen2.5-14b-instruct": {"kv_tokens": 55952, "blocks": 3497, "block_size": 16,
           "planned": 53760, "floor": 48384}}
summary:
  description: One line per model.
  returned: always
  type: list
  elements: str
'''

import socket
import urllib.error

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url

from ansible_collections.llmops.multillm.plugins.module_utils import _kv_capacity


def fetch(url, timeout):
    resp = open_url(url, timeout=timeout, use_proxy=False)  # a model's loopback port
    try:
        return resp.read().decode("utf-8", "replace")
    finally:
        resp.close()


def check(params, host, reader=fetch):
    """(result, errors) for the module's params; `reader(url, timeout)` returns a /metrics text."""
    tolerance = params["tolerance_pct"] / 100.0
    result, summary, errors = {}, [], []
    for m in params["models"]:
        name = m["name"]
        try:
            capacity = _kv_capacity.kv_capacity(reader(m["metrics_url"], params["timeout"]))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            if m.get("kv_tokens") is None:
                # Nothing promised: shown, not failed (a server build without the metric).
                result[name] = {"kv_tokens": None, "error": str(exc)}
                summary.append("%s: KV capacity not readable (%s), no plan (kv_tokens unset)" % (name, exc))
                continue
            errors.append("host %s: model %s (multillm_models[%s]): its KV capacity could not be read from %s: %s. "
                          "What to do: check that the model serves (journalctl -u %s) and is a vLLM server. "
                          "[kv-capacity]" % (host, name, m["index"], m["metrics_url"], exc, m["unit"]))
            continue
        planned = m.get("kv_tokens")
        result[name] = {"kv_tokens": capacity["tokens"], "blocks": capacity["blocks"],
                        "block_size": capacity["block_size"], "planned": planned,
                        "floor": None if planned is None else _kv_capacity.kv_floor(planned, tolerance)}
        summary.append(_kv_capacity.kv_line(name, capacity, planned, tolerance))
        err = _kv_capacity.kv_error(host, name, m["index"], m["unit"], capacity["tokens"], planned, tolerance)
        if err:
            errors.append(err)
    return result, summary, errors


def main():
    module = AnsibleModule(
        argument_spec=dict(
            models=dict(type="list", elements="dict", required=True, options=dict(
                name=dict(type="str", required=True),
                index=dict(type="int", default=0),
                unit=dict(type="str", default=""),
                metrics_url=dict(type="str", required=True),
                kv_tokens=dict(type="int", no_log=False),
            )),
            tolerance_pct=dict(type="float", default=10.0),
            host=dict(type="str", default=""),
            timeout=dict(type="float", default=10.0),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if not 0 <= p["tolerance_pct"] < 100:
        module.fail_json(msg="tolerance_pct=%r: must be from 0 to below 100" % p["tolerance_pct"])
    for m in p["models"]:
        if m.get("kv_tokens") is not None and m["kv_tokens"] < 1:
            module.fail_json(msg="model %s: kv_tokens=%r: must be a whole number of tokens, 1 or more"
                             % (m["name"], m["kv_tokens"]))
    result, summary, errors = check(p, p["host"] or socket.gethostname())
    if errors:
        module.fail_json(msg=" ".join(errors), models=result, summary=summary)
    module.exit_json(changed=False, models=result, summary=summary)


if __name__ == "__main__":
    main()
