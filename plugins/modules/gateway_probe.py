#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.multillm
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: gateway_probe
short_description: Check that every model behind an OpenAI-compatible gateway really serves, plain and streamed
version_added: 0.2.0
description:
  - Lists the models the gateway serves (C(GET /v1/models)) and sends each one chat completion and
    one streamed chat completion through it.
  - "The completion must carry C(usage) with C(prompt_tokens) > 0, C(completion_tokens) > 0 and
    C(total_tokens) equal to their sum. The streamed one asks for usage
    (C(stream_options.include_usage)) and must yield at least one content delta, carry usage
    figures of the same kind and end with C(data: [DONE])."
  - Fails when a model falls short, with one sentence per problem naming the model and what was
    wrong (HTTP status and the gateway's message, missing or zero figures, a stream without
    C([DONE])); the per-model results are returned with the failure too.
  - Read-only for the gateway's state (it spends a few tokens per model); never reports a change.
  - Standard library only; connects directly (no proxy), so it runs on the gateway's host.
author:
  - llmops.multillm maintainers (@llmops)
extends_documentation_fragment:
  - llmops.multillm.attributes.read_only
attributes:
  platform:
    platforms: posix
    support: full
    description: Runs where the gateway's port answers (the gateway host).
options:
  url:
    description: The gateway's base URL, without C(/v1).
    type: str
    default: http://127.0.0.1:4001
  api_key:
    description:
      - "The key sent as C(Authorization: Bearer), the gateway's master key. Never returned or
        printed; an error body quoting a key is redacted."
    type: str
    required: true
  models:
    description:
      - The models to probe, each of which the gateway must list. Empty (the default) probes
        every model it lists.
    type: list
    elements: str
    default: []
  prompt:
    description: The user message of each request.
    type: str
    default: "multillm verify: say ok"
  max_tokens:
    description: The C(max_tokens) of each request.
    type: int
    default: 16
  timeout:
    description: Seconds each request may take (the model list at most 60).
    type: int
    default: 120
notes:
  - Each model costs two short generations; with tiny or random-weight models the text is noise,
    the figures are real.
'''

EXAMPLES = r'''
- name: Check every model behind the gateway, plain and streamed
  llmops.multillm.gateway_probe:
    url: http://127.0.0.1:4001
    api_key: "{{ litellm_gateway_master_key }}"
  register: probe

- name: Show tokens, stream chunks and latency per model
  ansible.builtin.debug:
    msg: "{{ probe.lines }}"
'''

RETURN = r'''
lines:
  description: One line per model, for a person.
  returned: always
  type: list
  elements: str
  sample:
    - "chat: ok | completion 200 in 0.084 s, 4+9=13 tokens | stream 200: 9 content chunks of 11,
      first after 0.031 s, 0.090 s, 4+9=13 tokens, [DONE]"
status:
  description: Per model, the HTTP status of its completion, or of its streamed one when the first was 200; -1 when nothing answered.
  returned: always
  type: dict
  sample: {chat: 200, ocr: 500}
problems:
  description: One sentence per problem, each naming the model (empty when every model served).
  returned: always
  type: list
  elements: str
  sample: ["model ocr: the streamed completion ended without data: [DONE] after 9 chunks"]
models:
  description: Per model, what each request measured.
  returned: always
  type: dict
  contains:
    completion:
      description: C(status), C(latency_s), C(prompt_tokens), C(completion_tokens), C(total_tokens) of the completion.
      type: dict
      returned: always
    stream:
      description:
        - C(status), C(chunks) (JSON chunks), C(content_chunks) (content deltas), C(first_content_s),
          C(latency_s), C(done) (ended with C([DONE])) and the usage figures of the streamed completion.
      type: dict
      returned: always
    status:
      description: As RV(status) for this model.
      type: int
      returned: always
    problems:
      description: This model's problems, without the model's name.
      type: list
      elements: str
      returned: always
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.llmops.multillm.plugins.module_utils._gateway_probe import DEFAULT_PROMPT, probe_gateway


def main():
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str", default="http://127.0.0.1:4001"),
            api_key=dict(type="str", required=True, no_log=True),
            models=dict(type="list", elements="str", default=[]),
            prompt=dict(type="str", default=DEFAULT_PROMPT),
            max_tokens=dict(type="int", default=16, no_log=False),  # a count of tokens, no secret
            timeout=dict(type="int", default=120),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p["max_tokens"] < 1 or p["timeout"] < 1:
        module.fail_json(msg="gateway_probe: max_tokens=%d and timeout=%d must both be at least 1"
                         % (p["max_tokens"], p["timeout"]))
    if not p["url"].startswith(("http://", "https://")):
        module.fail_json(msg="gateway_probe: url=%r must start with http:// or https://" % p["url"])
    result = probe_gateway(p["url"], p["api_key"], p["models"], p["prompt"], p["max_tokens"], p["timeout"])
    if result["problems"]:
        module.fail_json(msg="gateway %s: %s" % (p["url"].rstrip("/"), " | ".join(result["problems"])),
                         changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
