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
    C(model) is a hub repository - its container name, image, environment, state file, volumes and
    the cache folder it fills, and the revision (the model's C(--revision), else C(main)).
  - Left out, never fetched - local directories and the models the fault injector serves, which
    loads no weights (C(model_stack_server=fault_injector), or a model whose own C(image) is
    C(model_stack_image_fault_injector)).
  - With O(skipped=true), the models left out instead, each with the reason.
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
      C(model_stack_weights_endpoint), C(model_stack_image_fault_injector) (left out - the role defaults).
    type: dict
    required: true
  skipped:
    description: Return the models left out instead of the fetches, each with C(name), C(reason) and C(line) (the two joined by a colon).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: The fetches
  ansible.builtin.set_fact:
    fetches: "{{ specs | llmops.multillm.weights_jobs(settings) }}"

- name: The models not fetched, and why
  ansible.builtin.debug:
    msg: "{{ specs | llmops.multillm.weights_jobs(settings, skipped=true) }}"
"""

RETURN = r"""
_value:
  description: One fetch per hub model, in boot order (with O(skipped=true), C(name), C(reason) and C(line) of each model left out).
  type: list
  elements: dict
"""

from ansible_collections.llmops.multillm.plugins.module_utils._weights import jobs as _jobs, skipped as _skipped


def weights_jobs(specs, settings, skipped=False):
    return _skipped(specs, settings) if skipped else _jobs(specs, settings)


class FilterModule(object):
    """llmops.multillm weights stage filter."""

    def filters(self):
        return {"weights_jobs": weights_jobs}
