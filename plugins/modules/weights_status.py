#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: llmops.multillm contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: weights_status
short_description: Read the state of the weights fetches of model_stack's weights stage
version_added: 0.2.0
description:
  - "Reads the state file each fetch writes (filter P(llmops.multillm.weights_jobs#filter)) and
    returns one line per model, C(<model>: 1.2 of 3.4 GB, 45.0 MB/s, 12 s), with the figures behind it."
  - Says which models are already complete (same repository and revision, snapshot folder present),
    which failed (with the hub's message) and whether every fetch has ended.
  - Reads only; never fails for a failed fetch and never reports a change.
author:
  - llmops.multillm maintainers (@llmops)
extends_documentation_fragment:
  - llmops.multillm.attributes.read_only
attributes:
  platform:
    platforms: posix
    support: full
    description: Runs on the model host.
options:
  jobs:
    description: The fetches, as P(llmops.multillm.weights_jobs#filter) returns them.
    type: list
    elements: dict
    required: true
  started:
    description:
      - When the fetches were started (seconds since the epoch); a fetch with no state file a minute
        later is reported failed (its container never ran the fetch). V(0) turns this off.
    type: float
    default: 0
'''

EXAMPLES = r'''
- name: Which models are complete already
  llmops.multillm.weights_status:
    jobs: "{{ fetches }}"
  register: weights
'''

RETURN = r'''
done:
  description: Every fetch has ended (complete or failed).
  returned: always
  type: bool
complete:
  description: The names of the models whose weights are complete in the cache.
  returned: always
  type: list
  elements: str
failed:
  description: The names of the models whose fetch failed.
  returned: always
  type: list
  elements: str
lines:
  description: One progress line per model.
  returned: always
  type: list
  elements: str
  sample: ["alpha: 1.2 of 3.4 GB, 45.0 MB/s, 12 s"]
line:
  description: The lines joined with C( | ).
  returned: always
  type: str
models:
  description: Per model name, its state file's content, line, done and error.
  returned: always
  type: dict
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.llmops.multillm.plugins.module_utils._weights import is_complete, status


def main():
    module = AnsibleModule(
        argument_spec=dict(jobs=dict(type="list", elements="dict", required=True),
                           started=dict(type="float", default=0.0)),
        supports_check_mode=True,
    )
    jobs = module.params["jobs"]
    result = status(jobs, module.params["started"], time.time())
    result["complete"] = [j["name"] for j in jobs if is_complete(j, result["models"][j["name"]]["state"])]
    result["line"] = " | ".join(result["lines"])
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
