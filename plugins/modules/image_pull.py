#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.multillm
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: image_pull
short_description: Pull a Docker image and write its progress in bytes to a file while it pulls
version_added: 0.2.0
description:
  - Pulls one image through the Docker Engine API (C(POST /images/create)), as
    M(community.docker.docker_image_pull) does (same connection options, same registry
    credentials from the Docker client configuration), and while the pull runs writes the bytes
    downloaded, the bytes known and the recent rate to O(progress_file).
  - Meant to run with C(async) and C(poll=0); M(llmops.multillm.image_pull_status) reads the
    file for a progress line per slice of the wait.
  - A pull the registry refuses fails with the registry's own message.
author:
  - llmops.multillm maintainers (@llmops)
extends_documentation_fragment:
  - community.docker.docker.api_documentation
attributes:
  check_mode:
    support: full
    description: Reports the pull it would do; pulls nothing, writes no file.
  diff_mode:
    support: none
    description: No diff.
  platform:
    platforms: posix
    support: full
    description: Runs where the Docker engine's socket is (the model host).
options:
  name:
    description: The image, with its tag (C(repo/name:tag)); C(latest) when it has none.
    type: str
    required: true
  pull:
    description: C(always) pulls even when the image is present (a moving tag); C(not_present)
      only when it is missing.
    type: str
    choices: [always, not_present]
    default: always
  progress_file:
    description: Where the progress is written (replaced at once, mode 0644, its folder created).
    type: path
    required: true
  progress_every_s:
    description: At most one write of O(progress_file) per this many seconds (and one at the end).
    type: float
    default: 1
'''

EXAMPLES = r'''
- name: Start the pull
  llmops.multillm.image_pull:
    name: vllm/vllm-openai:v0.11.0
    pull: not_present
    progress_file: /var/lib/multillm/pulls/vllm.json
  async: 3600
  poll: 0
  register: pull
'''

RETURN = r'''
pulled:
  description: Whether the pull changed the image (as C(changed), kept where a wait overrides that).
  returned: success
  type: bool
image:
  description: The image's inspection after the pull (empty when it could not be found).
  returned: success
  type: dict
current:
  description: Bytes downloaded.
  returned: success
  type: int
total:
  description: Bytes of the layers that had to be downloaded.
  returned: success
  type: int
line:
  description: The last progress line.
  returned: always
  type: str
'''

import os
import time
import traceback

from ansible.module_utils.common.text.converters import to_native

from ansible_collections.llmops.multillm.plugins.module_utils._pull_progress import (
    PullProgress,
    progress_line,
    stream_error,
    write_snapshot,
)

# community.docker's API client (the one docker_image_pull uses): its module utils are named
# common_api up to 4.x and _common_api from 5.0 on.
try:
    from ansible_collections.community.docker.plugins.module_utils._common_api import (
        AnsibleDockerClient,
    )
except ImportError:
    from ansible_collections.community.docker.plugins.module_utils.common_api import (
        AnsibleDockerClient,
    )
from ansible_collections.community.docker.plugins.module_utils._api import auth
from ansible_collections.community.docker.plugins.module_utils._api.utils.utils import (
    parse_repository_tag,
)


def pull(client, params):
    repository, tag = parse_repository_tag(params["name"])
    tag = tag or "latest"
    image = "%s:%s" % (repository, tag)
    before = client.find_image(repository, tag)
    if client.check_mode:
        would = "already present" if before and params["pull"] == "not_present" else "would be pulled"
        return dict(changed=would != "already present", pulled=False, image=before or {}, current=0, total=0,
                    line="%s: %s" % (image, would))

    path, every = params["progress_file"], params["progress_every_s"]
    pid = os.getpid()  # the reader tells a pull that died from one still running
    progress = PullProgress(image, time.time())
    if before and params["pull"] == "not_present":
        snap = progress.snapshot(time.time(), done=True, pid=pid)
        write_snapshot(path, snap)  # the reader's last word: nothing to wait for
        return dict(changed=False, pulled=False, image=before, current=0, total=0, line="%s: already present" % image)
    write_snapshot(path, progress.snapshot(time.time(), pid=pid))
    last_write = time.time()
    try:
        registry = auth.resolve_repository_name(repository)[0]
        headers = {}
        header = auth.get_config_header(client, registry)
        if header:
            headers["X-Registry-Auth"] = header
        response = client._post(client._url("/images/create"), params={"fromImage": repository, "tag": tag},
                                headers=headers, stream=True, timeout=None)
        client._raise_for_status(response)
        for event in client._stream_helper(response, decode=True):
            progress.feed(event, time.time())
            if stream_error(event):
                break
            if time.time() - last_write >= every:
                write_snapshot(path, progress.snapshot(time.time(), pid=pid))
                last_write = time.time()
    except Exception as exc:  # the engine's own words, whatever failed
        progress.error = progress.error or to_native(exc)
    now = time.time()
    snap = progress.snapshot(now, done=True, pid=pid)
    write_snapshot(path, snap)
    line = progress_line(snap, now)
    if progress.error:
        client.fail("%s" % progress.error, line=line, current=snap["current"], total=snap["total"])
    after = client.find_image(repository, tag)
    changed = (before or {}).get("Id") != (after or {}).get("Id")
    return dict(changed=changed, pulled=changed, image=after or {}, current=snap["current"], total=snap["total"], line=line)


def main():
    client = AnsibleDockerClient(
        argument_spec=dict(
            name=dict(type="str", required=True),
            pull=dict(type="str", choices=["always", "not_present"], default="always"),
            progress_file=dict(type="path", required=True),
            progress_every_s=dict(type="float", default=1),
        ),
        supports_check_mode=True,
    )
    try:
        client.module.exit_json(**pull(client, client.module.params))
    except Exception as exc:  # pylint: disable=broad-except
        client.fail("Error pulling %s: %s" % (client.module.params["name"], to_native(exc)),
                    exception=traceback.format_exc())


if __name__ == "__main__":
    main()
