"""model_stack's entry point `endpoints`, as the gateway play runs it: once per backend, on the
gateway host, contacting no host. Each GPU host gets its own model_stack_endpoints."""

import json
import os
import pathlib
import subprocess

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]

PLAY = """
- name: Gateway side
  hosts: gw
  gather_facts: false
  tasks:
    - name: Publish every backend's endpoints
      ansible.builtin.include_role:
        name: llmops.multillm.model_stack
        tasks_from: endpoints
      vars:
        model_stack_endpoints_host: "{{ item }}"
      loop: "{{ groups['multillm_gpu_hosts'] }}"

    - name: Show them
      ansible.builtin.debug:
        msg: "{{ dict(groups['multillm_gpu_hosts'] | zip(groups['multillm_gpu_hosts']
                 | map('extract', hostvars, 'model_stack_endpoints'))) }}"
"""


def test_the_gateway_publishes_each_backends_endpoints_without_contacting_it(tmp_path):
    models = [{"name": "qwen2.5-14b-instruct", "model": "Qwen/Qwen2.5-14B-Instruct", "port": 8001,
               "gpu_memory_utilization": 0.5}]
    unreachable = {"ansible_host": "192.0.2.1", "ansible_connection": "ssh", "ansible_ssh_timeout": 2}
    inventory = {
        "multillm_gpu_hosts": {"hosts": {
            "gpu-a": dict(unreachable, multillm_backend_address="10.0.0.21", multillm_models=models),
            "gpu-b": dict(unreachable, model_stack_name_prefix="llm-",
                          multillm_models=[dict(models[0], name="ocr", port=8002)]),
        }},
        # As group_vars/all gives it in a real inventory, the gateway host has a model list too
        # (the contract role, a dependency of both roles, checks it there).
        "multillm_gateway": {"hosts": {"gw": dict(unreachable, litellm_gateway_master_key="sk-0123456789abcdef",
                                                  multillm_models=models)}},
    }
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "play.yml").write_text(PLAY)
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
               ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(["ansible-playbook", "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    result = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert all(s.get("unreachable", 0) == 0 for s in result["stats"].values())
    shown = result["plays"][0]["tasks"][-1]["hosts"]["gw"]["msg"]
    assert shown == {
        "gpu-a": [{"name": "qwen2.5-14b-instruct", "model": "Qwen/Qwen2.5-14B-Instruct",
                   "unit": "multillm-model-qwen2.5-14b-instruct.service",
                   "container": "multillm-model-qwen2.5-14b-instruct", "host": "10.0.0.21", "port": 8001,
                   "api_base": "http://10.0.0.21:8001/v1"}],
        "gpu-b": [{"name": "ocr", "model": "Qwen/Qwen2.5-14B-Instruct", "unit": "llm-ocr.service",
                   "container": "llm-ocr", "host": "127.0.0.1", "port": 8002, "api_base": "http://127.0.0.1:8002/v1"}],
    }
