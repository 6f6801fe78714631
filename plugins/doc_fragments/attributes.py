# -*- coding: utf-8 -*-
# Copyright: llmops.multillm contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The attributes the collection's modules share, written once."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # A module that only reads (vram_check, model_kv_check, image_pull_status, weights_status, gateway_probe):
    # check mode runs the same checks, there is never a diff. Each module adds its own platform attribute.
    READ_ONLY = r"""
options: {}
attributes:
  check_mode:
    support: full
    description: The module only reads; check mode runs the same checks.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
"""
