# -*- coding: utf-8 -*-
# Copyright: llmops.multillm contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The collection's filters, each a function of plugins/module_utils where its rules live and are
unit-tested. As ansible-core does for its own filters (plugins/filter/core.py), one file exports
them and each filter's documentation is plugins/filter/<name>.yml, which ansible-doc reads
(ansible-doc -t filter llmops.multillm.<name>). weights_jobs.py is still a file of its own."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.llmops.multillm.plugins.module_utils._contract import (
    contract_errors, model_stack_errors, preflight_errors)
from ansible_collections.llmops.multillm.plugins.module_utils._gateway import foreign_listeners, gateway_errors
from ansible_collections.llmops.multillm.plugins.module_utils._model_spec import (
    model_endpoints, model_removals, model_specs)
from ansible_collections.llmops.multillm.plugins.module_utils._placement import vram_expectations
from ansible_collections.llmops.multillm.plugins.module_utils._summary import for_display
from ansible_collections.llmops.multillm.plugins.module_utils._summary import verify_summary as _verify_summary


def verify_summary(facts):
    """The summary's lines, the ones meant to be pasted joined into multi-line items."""
    return for_display(_verify_summary(facts))


class FilterModule(object):
    """llmops.multillm filters: name -> function (docs: plugins/filter/<name>.yml)."""

    def filters(self):
        return {
            # the inventory contract and each role's own settings (preflight)
            "multillm_contract_errors": contract_errors,
            "multillm_contract_preflight": preflight_errors,
            "model_stack_errors": model_stack_errors,
            "gateway_errors": gateway_errors,
            "gateway_foreign_listeners": foreign_listeners,
            # what model_stack runs and the gateway dials
            "model_specs": model_specs,
            "model_endpoints": model_endpoints,
            "model_removals": model_removals,
            # the verify stage
            "vram_placement": vram_expectations,
            "verify_summary": verify_summary,
        }
