# -*- coding: utf-8 -*-
# Copyright: llmops.multillm contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The whole inventory checked offline: every host's contract and the rules across hosts."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: multillm_contract_preflight
short_description: Check every host of the inventory and the rules across hosts, offline
version_added: 0.3.0
description:
  - Takes what the inventory sets for each host (collected by C(playbooks/preflight.yml) on the
    control node) and returns, for every host, the list of its broken rules.
  - Per host, the multillm contract, the gateway's settings on gateway hosts (its port defaults to the
    gateway role's default) and model_stack's settings on GPU hosts.
  - Across hosts, two inventory hosts that are one machine, a GPU host that a gateway on another
    machine could not reach (no C(multillm_backend_address)), and one model name given to two
    different models behind one gateway.
  - Each message names the host, the variable, the value (secrets as C(<hidden>)), the rule and what to
    do, and ends with the rule's id. The rules live in C(plugins/module_utils/_contract.py).
positional: gpu_hosts, gateway_hosts
options:
  _input:
    description:
      - Per inventory host, a dictionary (or its JSON text) with C(contract) (the C(multillm_*) variables the inventory sets,
        and on gateway hosts C(litellm_gateway_port), C(litellm_gateway_bind_address),
        C(litellm_gateway_master_key), C(litellm_gateway_version), C(litellm_gateway_extra_env) when set), C(model_stack) (the
        C(model_stack_*) variables), C(machine) (C(address), C(port), C(connection)) and, on gateway hosts,
        C(backends) (the GPU hosts it routes to).
    type: dict
    required: true
  gpu_hosts:
    description: The hosts of the C(multillm_gpu_hosts) group.
    type: list
    elements: str
    required: true
  gateway_hosts:
    description: The hosts of the C(multillm_gateway) group.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Check the whole inventory at once
  ansible.builtin.set_fact:
    __errors: "{{ __hosts | llmops.multillm.multillm_contract_preflight(groups['multillm_gpu_hosts'], groups['multillm_gateway']) }}"
  no_log: true
"""

RETURN = r"""
_value:
  description: Inventory host name to the list of its broken rules (empty when all hold).
  type: dict
"""

from ansible_collections.llmops.multillm.plugins.module_utils._contract import preflight_errors


def multillm_contract_preflight(hosts, gpu_hosts, gateway_hosts):
    """Return {host: [messages]} for every host of the inventory."""
    return preflight_errors(hosts, gpu_hosts, gateway_hosts)


class FilterModule(object):
    """llmops.multillm whole-inventory preflight filter."""

    def filters(self):
        return {"multillm_contract_preflight": multillm_contract_preflight}
