# -*- coding: utf-8 -*-
# Copyright: llmops.multillm contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Check the gateway's settings and host and list every broken rule."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: gateway_errors
short_description: Check the LiteLLM gateway's settings and host and list every broken rule
version_added: 0.2.0
description:
  - Takes the C(litellm_gateway_*) settings with what the gateway host knows (its service manager,
    the endpoints its backend hosts published, the programs listening on its port) and returns one
    message per broken rule.
  - Each message names the host, the variable, the value (the master key never) and the rule, says
    what to do and ends with the rule id in brackets, as the inventory contract's do.
  - The rules live in C(plugins/module_utils/_gateway.py) and C(plugins/module_utils/_contract.py);
    C(roles/litellm_gateway/tasks/preflight.yml) calls this filter and fails with its messages.
positional: host
options:
  _input:
    description:
      - A dictionary of the gateway's settings (C(litellm_gateway_version), C(litellm_gateway_master_key),
        C(litellm_gateway_port), C(litellm_gateway_bind_address), C(litellm_gateway_num_workers),
        C(litellm_gateway_max_requests_before_restart), C(litellm_gateway_max_requests_before_restart_jitter),
        C(litellm_gateway_gc_threshold), C(litellm_gateway_extra_env), C(litellm_gateway_user)) and the host's
        C(service_mgr), C(backends), C(unpublished), C(deployments), C(drain_dir), and for the port check
        C(listeners), C(socket_show), C(service_show), C(service_name), C(socket_unit) and C(cgroups).
      - See C(gateway_errors) in C(plugins/module_utils/_gateway.py) for each key.
    type: dict
    required: true
  host:
    description: The inventory host name, used in the messages.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Fail with every broken rule of the gateway
  ansible.builtin.fail:
    msg: "{{ __errors }}"
  vars:
    __errors: "{{ {'litellm_gateway_port': 80, 'litellm_gateway_master_key': 'sk-x'} | llmops.multillm.gateway_errors(inventory_hostname) }}"
  when: __errors | length > 0
"""

RETURN = r"""
_value:
  description: One message per broken rule; empty when the gateway's rules hold.
  type: list
  elements: str
"""

from ansible_collections.llmops.multillm.plugins.module_utils._gateway import gateway_errors as _errors


def gateway_errors(gateway, host):
    return _errors(gateway, host)


class FilterModule(object):
    """llmops.multillm gateway filter."""

    def filters(self):
        return {"gateway_errors": gateway_errors}
