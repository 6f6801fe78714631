# -*- coding: utf-8 -*-
# Copyright: llmops.multillm contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The verify stage's summary table of one host, as a list of lines."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: verify_summary
short_description: One host's summary table at the end of the verify stage
version_added: 0.2.0
description:
  - Takes what the verify stage recorded on one host and returns the lines of its table, for one
    C(ansible.builtin.debug) per host.
  - One row per model, its GPU(s), health, resting GiB against its expectation, KV tokens against
    its plan, its answer through the gateway; then vram_check's line per GPU, the gateway's URL with
    curl lines and an OpenAI-client snippet that read the key from E(LITELLM_MASTER_KEY) (the key
    itself is never an input). A figure nobody measured shows as C(n/a).
  - Each run of lines meant to be pasted (curl, the client snippet) is one multi-line item, which Ansible's
    YAML result format prints as a literal block, ready to copy.
  - The logic is C(plugins/module_utils/_summary.py) (C(verify_summary), C(for_display)).
options:
  _input:
    description:
      - C(host) (required), C(models), C(endpoints), C(verify), C(vram), C(kv), C(gpu_required),
        C(resting_vram_gib), C(tolerance_gib), C(gateways) (each C({host, address, bind_address, port, status})),
        C(failures); see C(_summary.verify_summary).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Show the host's summary
  ansible.builtin.debug:
    msg: "{{ {'host': inventory_hostname, 'models': multillm_models, 'verify': model_stack_verify} | llmops.multillm.verify_summary }}"
"""

RETURN = r"""
_value:
  description: The lines of the table; the lines to paste as multi-line items.
  type: list
  elements: str
"""

from ansible_collections.llmops.multillm.plugins.module_utils._summary import for_display, verify_summary as _verify_summary


def verify_summary(facts):
    return for_display(_verify_summary(facts))


class FilterModule(object):
    """llmops.multillm verify summary filter."""

    def filters(self):
        return {"verify_summary": verify_summary}
