# -*- coding: utf-8 -*-
# Copyright: llmops.multillm contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The weights stage's fetches: one per model whose weights come from the hub."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: weights_jobs
short_description: One weights fetch per hub model of the model specs
version_added: 0.2.0
description:
  - Takes the output of P(llmops.multillm.model_specs#filter) and returns one fetch per model whose
    C(model) is a hub repository (local directories and the fault injector are left out) - its
    container name, image, environment, state file, volumes and the cache folder it fills, and the revision (the model's C(--revision), else C(main)).
  - The builder is C(plugins/module_utils/_weights.py).
positional: settings
options:
  _input:
    description: The model specs.
    type: list
    elements: dict
    required: true
  settings:
    description: C(model_stack_hf_cache_dir), C(model_stack_hf_cache_mount), C(model_stack_weights_state_dir),
      C(model_stack_weights_endpoint).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: The fetches
  ansible.builtin.set_fact:
    fetches: "{{ specs | llmops.multillm.weights_jobs(settings) }}"
"""

RETURN = r"""
_value:
  description: One fetch per hub model, in boot order.
  type: list
  elements: dict
"""

from ansible_collections.llmops.multillm.plugins.module_utils._weights import jobs as _jobs


def weights_jobs(specs, settings):
    return _jobs(specs, settings)


class FilterModule(object):
    """llmops.multillm weights stage filter."""

    def filters(self):
        return {"weights_jobs": weights_jobs}
