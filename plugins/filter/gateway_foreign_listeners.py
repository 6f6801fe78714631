# -*- coding: utf-8 -*-
# Copyright: llmops.multillm contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The listeners on the gateway's port that belong to another program."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: gateway_foreign_listeners
short_description: The TCP listeners on the gateway's port that are not the gateway's
version_added: 0.2.0
description:
  - Takes C(community.general.listen_ports_facts)' C(tcp_listen) and returns the listeners on the
    port that belong to another program.
  - A listener is the gateway's when its socket unit is active and listens on that address, or when
    its service is active and the listener runs as the service user.
  - The logic is C(foreign_listeners) in C(plugins/module_utils/_gateway.py); the gateway's preflight
    reads the cgroup of each one it returns for the message of C(llmops.multillm.gateway_errors).
positional: port, socket_show, service_show, user
options:
  _input:
    description: The listeners, C(ansible_facts.tcp_listen).
    type: list
    elements: dict
    required: true
  port:
    description: The gateway's port.
    type: int
    required: true
  socket_show:
    description: The lines of C(systemctl show --property=ActiveState --property=Listen) for the gateway's socket unit.
    type: list
    elements: str
    required: true
  service_show:
    description: The lines of C(systemctl show --property=ActiveState) for the gateway's service.
    type: list
    elements: str
    required: true
  user:
    description: The gateway's service user.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Note the listeners that are not the gateway's
  ansible.builtin.set_fact:
    __foreign: "{{ ansible_facts.tcp_listen | llmops.multillm.gateway_foreign_listeners(4001, ['ActiveState=inactive'], [], 'litellm') }}"
"""

RETURN = r"""
_value:
  description: The foreign listeners, as listen_ports_facts gives them.
  type: list
  elements: dict
"""

from ansible_collections.llmops.multillm.plugins.module_utils._gateway import foreign_listeners


def gateway_foreign_listeners(listeners, port, socket_show, service_show, user):
    return foreign_listeners(listeners, port, socket_show, service_show, user)


class FilterModule(object):
    """llmops.multillm gateway port filter."""

    def filters(self):
        return {"gateway_foreign_listeners": gateway_foreign_listeners}
