"""Secrets never reach preflight's output, even at -vvv: a sentinel token and key placed where a
careless inventory puts them (the token variable, an unknown field, a list-style env, a model's
env, an extra argument, a malformed master key) never appear in stdout or stderr."""

import os
import pathlib
import subprocess

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOKEN = "hf_SENTINELtoken4242"
KEY = "sk-SENTINEL-key-4242-with space"
GOOD_KEY = "sk-SENTINELgoodkey4242"


def inventory():
    model = {"name": "qwen", "model": "Qwen/Qwen2.5-14B-Instruct", "port": 8001, "gpu_memory_utilization": 0.5}
    broken = dict(model, env=["HF_TOKEN=" + TOKEN], extra_args=["--api-key=" + TOKEN])
    return {
        "multillm_gpu_hosts": {"hosts": {
            "leaky": {"ansible_host": "192.0.2.31", "multillm_hf_token": TOKEN + "\nLD_PRELOAD=/tmp/x.so",
                      "multillm_hf_tokn": TOKEN, "litellm_gateway_master_key": KEY,
                      "litellm_gateway_backend_hosts": ["leaky"],
                      "multillm_models": [broken, dict(model, name="ocr", port=8002, env={"HF_TOKEN": TOKEN})]},
            "tidy": {"ansible_host": "192.0.2.32", "multillm_hf_token": TOKEN, "litellm_gateway_master_key": GOOD_KEY,
                     "litellm_gateway_backend_hosts": ["tidy"], "multillm_models": [model]},
        }},
        "multillm_gateway": {"hosts": {"leaky": None, "tidy": None}},
    }


def test_no_secret_at_vvv(tmp_path):
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory()))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(["ansible-playbook", "-vvv", "-i", str(path), str(ROOT / "playbooks" / "preflight.yml")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    out = proc.stdout + proc.stderr
    # The run did check the broken host and said why, with the values hidden.
    assert proc.returncode != 0
    assert "The multillm inventory is broken on leaky" in out
    assert "[hf-token]" in out and "[unknown-variable]" in out and "[env-form]" in out and "[master-key]" in out
    assert "<hidden>" in out
    assert "broken on tidy" not in out
    for secret in (TOKEN, "SENTINEL"):
        assert secret not in out
