# -*- coding: utf-8 -*-
# Copyright: llmops.multillm contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""vram_check's per-GPU options for a host, from its model specs and model list."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: vram_placement
short_description: The per-GPU expectations vram_check checks on a host with several GPUs
version_added: 0.2.0
description:
  - Takes the model specs (filter C(llmops.multillm.model_specs)), the model list and the host's
    C(multillm_gpu_count), and returns C({gpus, containers}) for the options of the same names of
    C(llmops.multillm.vram_check).
  - C(gpus) names every GPU the host must have (indexes below C(multillm_gpu_count) and every UUID a
    model names), with the expected resting GiB where every model on that GPU gives C(resting_gib).
  - C(containers) holds each model that names its GPUs to exactly those GPUs.
  - C(present) names the same GPUs as C(gpus) without expectations, for a check before the models load.
  - The logic is C(plugins/module_utils/_placement.py) (C(vram_expectations)).
positional: models, gpu_count
options:
  _input:
    description: The model specs, in boot order.
    type: list
    elements: dict
    required: true
  models:
    description: The model list, C(multillm_models).
    type: list
    elements: dict
    required: true
  gpu_count:
    description: The host's C(multillm_gpu_count).
    type: int
    default: 1
"""

EXAMPLES = r"""
- name: Check the GPUs the models are placed on
  llmops.multillm.vram_check:
    settle_samples: 1
    gpus: "{{ (specs | llmops.multillm.vram_placement(multillm_models, multillm_gpu_count)).gpus }}"
"""

RETURN = r"""
_value:
  description: C({gpus, containers, present}) for vram_check.
  type: dict
"""

from ansible_collections.llmops.multillm.plugins.module_utils._placement import vram_expectations


def vram_placement(specs, models, gpu_count=1):
    return vram_expectations(specs, models, gpu_count)


class FilterModule(object):
    """llmops.multillm placement filter for vram_check."""

    def filters(self):
        return {"vram_placement": vram_placement}
