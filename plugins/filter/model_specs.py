# -*- coding: utf-8 -*-
# Copyright: llmops.multillm contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The model_stack spec of every model, from the model list and the settings."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: model_specs
short_description: Turn the model list into one container and unit spec per model
version_added: 0.2.0
description:
  - Takes C(multillm_models) and a dictionary of settings (the C(model_stack_*) variables,
    C(multillm_vram_strategy), C(multillm_gpu_required), C(multillm_backend_address)) and returns
    one dictionary per model, in boot order - container and unit name, image, gate entrypoint,
    C(vllm serve) argv, environment, ports, volumes, device request, IPC mode, kvcached pool name,
    unit command lines, endpoint.
  - Settings left out take the role defaults. The builder is C(plugins/module_utils/_model_spec.py).
positional: settings
options:
  _input:
    description: The model list, C(multillm_models), already checked by the contract.
    type: list
    elements: dict
    required: true
  settings:
    description: The C(model_stack_*) and C(multillm_*) settings the specs depend on.
    type: dict
    required: false
"""

EXAMPLES = r"""
- name: Render the specs
  ansible.builtin.set_fact:
    specs: "{{ multillm_models | llmops.multillm.model_specs({'multillm_vram_strategy': 'static'}) }}"
"""

RETURN = r"""
_value:
  description: One spec per model, in the order of the list.
  type: list
  elements: dict
"""

from ansible_collections.llmops.multillm.plugins.module_utils._model_spec import model_specs as _model_specs


def model_specs(models, settings=None):
    return _model_specs(models, settings)


class FilterModule(object):
    """llmops.multillm model spec filter."""

    def filters(self):
        return {"model_specs": model_specs}
