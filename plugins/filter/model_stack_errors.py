# -*- coding: utf-8 -*-
# Copyright: llmops.multillm contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Check model_stack's own settings and list every broken rule."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: model_stack_errors
short_description: Check model_stack's settings against the model list and list every broken rule
version_added: 0.2.0
description:
  - Takes the C(model_stack_*) settings (and C(multillm_vram_strategy)) with the model list and
    returns one message per broken rule - poll and timeout settings, the name prefix, the device,
    versions, every model's kvcached values, kvcached pool names that would collide.
  - Each message names the host, the variable, the value and the rule, and says what to do.
  - The rules live in C(plugins/module_utils/_contract.py).
positional: models, host
options:
  _input:
    description: The settings, a dictionary of C(model_stack_*) variables; missing ones take the role defaults.
    type: dict
    required: true
  models:
    description: The model list, C(multillm_models).
    type: list
    elements: dict
    required: true
  host:
    description: The inventory host name, used in the messages.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Fail with every broken setting
  ansible.builtin.fail:
    msg: "{{ __errors }}"
  vars:
    __errors: "{{ {'model_stack_health_timeout_s': 0} | llmops.multillm.model_stack_errors(multillm_models, inventory_hostname) }}"
  when: __errors | length > 0
"""

RETURN = r"""
_value:
  description: One message per broken rule; empty when the settings hold.
  type: list
  elements: str
"""

from ansible_collections.llmops.multillm.plugins.module_utils._contract import model_stack_errors as _errors


def model_stack_errors(settings, models, host):
    return _errors(settings, models, host)


class FilterModule(object):
    """llmops.multillm model_stack settings filter."""

    def filters(self):
        return {"model_stack_errors": model_stack_errors}
