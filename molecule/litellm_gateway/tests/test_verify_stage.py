"""The role's verify entry point (what playbooks/verify.yml runs) against the converged gateway.

Through the real LiteLLM in front of the fault injectors, every model must answer a completion
with usage figures and a streamed completion (content deltas, usage, data: [DONE]); the output
shows tokens, stream chunks and latency per model. A wrong key and a stopped backend fail it with
the model named and the key never printed. Runs last (file order): it stops a backend for a moment.
"""

import json
import os
import re
import subprocess
import time

testinfra_hosts = ["ansible://multillm-litellm_gateway"]
KEY = "sk-molecule-test-key-0123456789"
PLAYBOOK = """\
- name: The litellm_gateway role's verify entry point
  hosts: multillm_gateway
  gather_facts: false
  tasks:
    - name: Verify every model through the gateway
      ansible.builtin.include_role:
        name: llmops.multillm.litellm_gateway
        tasks_from: verify
"""
LINE = re.compile(r"(chat|ocr): ok \| completion 200 in [0-9.]+ s, (\d+)\+(\d+)=(\d+) tokens \| stream 200: "
                  r"(\d+) content chunks of (\d+), first after [0-9.]+ s, [0-9.]+ s, \d+\+\d+=\d+ tokens, \[DONE\]")


def run_verify(tmp_path, *args, extra=None):
    playbook = tmp_path / "verify.yml"
    playbook.write_text(PLAYBOOK)
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    cmd = ["ansible-playbook", "-i", inventory, str(playbook), *args]
    if extra:
        cmd += ["-e", json.dumps(extra)]
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, check=False)
    # Whitespace-normalised: the YAML result format folds long lines.
    return proc.returncode, " ".join((proc.stdout + "\n" + proc.stderr).split())


def test_every_model_serves_usage_and_a_stream_through_the_gateway(tmp_path):
    rc, out = run_verify(tmp_path)
    assert rc == 0, out[-3000:]
    lines = {m.group(1): m for m in LINE.finditer(out)}
    assert sorted(lines) == ["chat", "ocr"], out[-3000:]
    for m in lines.values():
        prompt, completion, total, content, chunks = (int(m.group(i)) for i in range(2, 7))
        assert prompt > 0 and completion > 0 and total == prompt + completion
        assert 0 < content < chunks
    assert KEY not in out


def test_verify_runs_in_check_mode(tmp_path):
    rc, out = run_verify(tmp_path, "--check")
    assert rc == 0, out[-3000:]
    assert sorted(m.group(1) for m in LINE.finditer(out)) == ["chat", "ocr"]


def test_a_wrong_key_fails_with_its_status_and_is_not_printed(tmp_path):
    wrong = "sk-not-the-master-key-9876543210"
    rc, out = run_verify(tmp_path, extra={"litellm_gateway_master_key": wrong})
    assert rc != 0
    assert "host multillm-litellm_gateway: gateway http://127.0.0.1:4001: the gateway's model list" in out, out[-3000:]
    # Without a database LiteLLM answers a key that is not the master key with 400 "No connected db".
    assert re.search(r"/v1/models\): HTTP 40[01]: ", out), out[-3000:]
    assert wrong not in out and KEY not in out


def test_a_stopped_backend_fails_naming_its_model(host, tmp_path):
    host.run("systemctl stop multillm-model-ocr.service")
    try:
        rc, out = run_verify(tmp_path)
        assert rc != 0
        assert re.search(r"model ocr: the completion: HTTP [45]\d\d: ", out), out[-3000:]
        assert re.search(r"ocr: FAILED \| completion [45]\d\d ", out), out[-3000:]
        assert "chat: ok | completion 200" in out
        assert KEY not in out
    finally:
        host.run("systemctl start multillm-model-ocr.service")
        deadline = time.time() + 60
        while time.time() < deadline and host.run("python3 -c \"import urllib.request as u; "
                                                  "u.urlopen('http://127.0.0.1:8002/health', timeout=2)\"").rc:
            time.sleep(0.5)
