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
  - The rules live in C(plugins/module_utils/_contract.py); this filter only calls them.
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

from ansible_collections.llmops.multillm.plugins.module_utils._contract import contract_errors


def multillm_contract_errors(contract, host):
    """Return every broken rule of the contract for one host (empty when it holds)."""
    return contract_errors(contract, host)


class FilterModule(object):
    """llmops.multillm contract filters."""

    def filters(self):
        return {"multillm_contract_errors": multillm_contract_errors}
