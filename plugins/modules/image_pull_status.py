#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.multillm
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: image_pull_status
short_description: Read the progress of a pull that M(llmops.multillm.image_pull) is doing
version_added: 0.2.0
description:
  - "Reads the progress file of a running M(llmops.multillm.image_pull) and returns one line
    C(<image>: 3.1 of 9.4 GB, 85.0 MB/s, 42 s) with the figures behind it."
  - Says RV(done) when the pull has ended (with the registry's message in RV(error) when
    it failed), also when its process is gone without a last word; the file is then removed.
  - Never fails for a failed pull and never reports a change; the pull's own result comes
    from C(async_status).
author:
  - llmops.multillm maintainers (@llmops)
extends_documentation_fragment:
  - llmops.multillm.attributes.read_only
attributes:
  platform:
    platforms: posix
    support: full
    description: Runs on the host that pulls.
options:
  path:
    description: The progress file (O(llmops.multillm.image_pull#module:progress_file)).
    type: path
    required: true
  image:
    description: The image's name, for the line while the pull has written nothing yet.
    type: str
    default: ''
'''

EXAMPLES = r'''
- name: Wait for the pull, a line per 10 s
  llmops.multillm.image_pull_status:
    path: /var/lib/multillm/pulls/vllm.json
    image: vllm/vllm-openai:v0.11.0
  register: progress
  loop: "{{ range(0, 3600, 10) | list }}"
  loop_control:
    label: "{{ progress.line | default('') }}"
    pause: 10
    break_when: progress.done
'''

RETURN = r'''
done:
  description: The pull has ended (succeeded, failed, or its process is gone).
  returned: always
  type: bool
error:
  description: The registry's or engine's message when the pull failed, else null.
  returned: always
  type: str
line:
  description: One line for a person.
  returned: always
  type: str
  sample: "vllm/vllm-openai:v0.11.0: 3.1 of 9.4 GB, 85.0 MB/s, 42 s"
current:
  description: Bytes downloaded.
  returned: always
  type: int
total:
  description: Bytes known to download (grows while layers wait for their turn).
  returned: always
  type: int
rate:
  description: Bytes per second over the last 10 s.
  returned: always
  type: float
'''

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.llmops.multillm.plugins.module_utils._pull_progress import (
    process_alive,
    progress_line,
    read_snapshot,
)


def status(path, image, now):
    snap = read_snapshot(path)
    if snap is None:
        line = "%s: starting" % (image or path)
        return dict(done=False, error=None, line=line, current=0, total=0, rate=0.0)
    if not snap["done"] and not process_alive(snap.get("pid")):
        snap["done"] = True
        snap["error"] = snap.get("error") or "the pull's process ended without a result (async timeout or killed)"
    return dict(done=bool(snap["done"]), error=snap.get("error"), line=progress_line(snap, now),
                current=snap["current"], total=snap["total"], rate=snap["rate"])


def main():
    module = AnsibleModule(
        argument_spec=dict(path=dict(type="path", required=True), image=dict(type="str", default="")),
        supports_check_mode=True,
    )
    result = status(module.params["path"], module.params["image"], time.time())
    if result["done"] and not module.check_mode and os.path.exists(module.params["path"]):
        os.unlink(module.params["path"])  # the pull's last word is read; async_status has its result
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
