# -*- coding: utf-8 -*-
# Copyright: llmops.multillm contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The endpoints a GPU host's models serve, as the gateway dials them."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: model_endpoints
short_description: The hand-off from model_stack to the gateway, one endpoint per model
version_added: 0.2.0
description:
  - Takes C(multillm_models) and the settings of the host that serves them, and returns one
    dictionary per model with the keys C(name), C(model), C(unit), C(container), C(host), C(port)
    and C(api_base).
  - C(host) is the address the gateway dials, C(multillm_backend_address) when set, else 127.0.0.1;
    C(api_base) is http://host:port/v1.
  - C(roles/model_stack/tasks/endpoints.yml) publishes it as C(model_stack_endpoints).
positional: settings
options:
  _input:
    description: The model list, C(multillm_models).
    type: list
    elements: dict
    required: true
  settings:
    description: The host's C(multillm_backend_address) and C(model_stack_name_prefix) (others are ignored).
    type: dict
    required: false
"""

EXAMPLES = r"""
- name: Publish the endpoints
  ansible.builtin.set_fact:
    model_stack_endpoints: "{{ multillm_models | llmops.multillm.model_endpoints({'multillm_backend_address': '10.0.0.21'}) }}"
"""

RETURN = r"""
_value:
  description: One endpoint per model, in boot order.
  type: list
  elements: dict
"""

from ansible_collections.llmops.multillm.plugins.module_utils._model_spec import model_endpoints as _model_endpoints


def model_endpoints(models, settings=None):
    return _model_endpoints(models, settings)


class FilterModule(object):
    """llmops.multillm endpoint filter."""

    def filters(self):
        return {"model_endpoints": model_endpoints}
