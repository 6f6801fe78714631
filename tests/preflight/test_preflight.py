"""playbooks/preflight.yml against real inventories: one bad rule per host, the
example inventories, and the guarantee that no managed host is contacted."""

import copy
import json
import os
import pathlib
import subprocess

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
PREFLIGHT = ROOT / "playbooks" / "preflight.yml"

GOOD = {
    # An address nobody answers on: preflight must never try it.
    "ansible_host": "192.0.2.1",
    "ansible_connection": "ssh",
    "ansible_ssh_timeout": 2,
    "multillm_vram_strategy": "static",
    "multillm_gpu_memory_gib": 79.6,
    "multillm_resting_vram_gib": 58,
    "multillm_resting_vram_tolerance_gib": 4,
    "litellm_gateway_port": 4001,
    "litellm_gateway_master_key": "sk-preflight-test-key-0001",
    "multillm_models": [
        {"name": "qwen", "model": "Qwen/Qwen2.5-14B-Instruct", "port": 8001, "gpu_memory_utilization": 0.5,
         "weights_gib": 27.5},
        {"name": "ocr", "model": "PaddlePaddle/PaddleOCR-VL", "port": 8002, "gpu_memory_utilization": 0.3},
    ],
}


def _model(i, **changes):
    def mutate(v):
        m = v["multillm_models"][i]
        for k, val in changes.items():
            if val is None:
                m.pop(k, None)
            else:
                m[k] = val
    return mutate


def _set(**changes):
    def mutate(v):
        v.update(changes)
    return mutate


# host name -> (mutation, text the error must contain); one rule broken each.
BAD = {
    "bad-strategy": (_set(multillm_vram_strategy="dynamic"), "multillm_vram_strategy='dynamic': must be one of"),
    "bad-gpu-size": (_set(multillm_gpu_memory_gib=-1), "multillm_gpu_memory_gib=-1"),
    "bad-resting-over-gpu": (_set(multillm_resting_vram_gib=100), "must not exceed multillm_gpu_memory_gib"),
    "bad-tolerance": (_set(multillm_resting_vram_tolerance_gib=-1), "multillm_resting_vram_tolerance_gib=-1"),
    "bad-no-models": (_set(multillm_models=[]), "must list at least one model"),
    "bad-models-not-list": (_set(multillm_models="qwen"), "must be a list of model entries"),
    "bad-name-chars": (_model(0, name="Qwen/14B"), "name='Qwen/14B': must be 1-63 lower-case"),
    "bad-name-dup": (_model(1, name="qwen"), "name='qwen': must be unique"),
    "bad-missing-model": (_model(0, model=None), "(qwen).model=None: is required"),
    "bad-port-low": (_model(0, port=80), "port=80: must be an integer from 1024"),
    "bad-port-dup": (_model(1, port=8001), "port=8001: must be unique"),
    "bad-port-gateway": (_model(0, port=4001), "must differ from litellm_gateway_port"),
    "bad-fraction": (_model(0, gpu_memory_utilization=1.2), "gpu_memory_utilization=1.2: must be a fraction"),
    "bad-static-sum": (_model(1, gpu_memory_utilization=0.6), "static slices must sum to at most"),
    "bad-weights": (_model(0, weights_gib=60), "weights_gib=60: must fit in the model's slice"),
    "bad-max-len": (_model(0, max_model_len=0), "max_model_len=0: must be a positive integer"),
    "bad-health-timeout": (_model(1, health_timeout_s=-3), "health_timeout_s=-3"),
    "bad-extra-arg": (_model(0, extra_args=["--gpu-memory-utilization=0.9"]), "which model_stack renders"),
    "bad-env": (_model(0, env={"KVCACHED_IPC_NAME": "shared"}), "is set by model_stack"),
    "bad-unknown-field": (_model(0, gpu_fraction=0.5), "gpu_fraction=0.5: is not a known field"),
    "bad-master-key-prefix": (_set(litellm_gateway_master_key="pk-0123456789abcdef"), "starts with 'sk-'"),
    "bad-master-key-missing": (_set(litellm_gateway_master_key=""), "is required on the gateway host"),
    "bad-gateway-port": (_set(litellm_gateway_port=70000), "litellm_gateway_port=70000"),
    "bad-litellm-version": (_set(litellm_gateway_version="1.82.7"), "compromised LiteLLM release"),
    "bad-kvcached-key": (_model(1, kvcached={"reserved": 2}), "not a known kvcached setting"),
    "bad-recipe": (_model(1, recipe="paddle"), "recipe='paddle': must be one of"),
    # model_stack's settings, checked offline too (plugins/module_utils/_contract.py).
    "bad-model-stack-timeout": (_set(model_stack_health_timeout_s=0), "model_stack_health_timeout_s=0: must be a whole"),
    "bad-model-stack-device": (_set(model_stack_device="tpu"), "model_stack_device='tpu': must be one of gpu, cpu"),
    "bad-kvcached-page": (lambda v: (v.update(multillm_vram_strategy="kvcached"),
                                     v["multillm_models"][1].update(kvcached={"page_size_mb": 3})),
                          "(ocr).kvcached.page_size_mb=3: must be a multiple of 2"),
    "bad-pool-collision": (lambda v: (v.update(multillm_vram_strategy="kvcached"),
                                      v["multillm_models"][0].update(name="ocr2.5"),
                                      v["multillm_models"][1].update(name="ocr2-5")),
                           "collides with model 0's pool multillm_ocr2-5"),
}


def run_preflight(inventory, *extra):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
               ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(
        ["ansible-playbook", "-i", str(inventory), str(PREFLIGHT), *extra],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    return proc


def host_failures(stdout):
    """host -> list of failure messages, from the json callback's output."""
    result = json.loads(stdout[stdout.index("{"):])
    failures = {}
    for play in result["plays"]:
        for task in play["tasks"]:
            for host, res in task["hosts"].items():
                if res.get("failed") or res.get("unreachable"):
                    msg = res.get("msg")
                    failures.setdefault(host, []).append("\n".join(msg) if isinstance(msg, list) else str(msg))
    return failures, result["stats"]


def standalone(hv, name, n):
    """One host that is its own machine and its own gateway's only backend, so that the rules
    across hosts (same machine, reachability, one name per model) find nothing between hosts."""
    hv["ansible_host"] = "192.0.2.%d" % (n + 1)
    hv["litellm_gateway_backend_hosts"] = [name]
    return hv


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory):
    inv = tmp_path_factory.mktemp("inv")
    hosts = {"good-host": standalone(copy.deepcopy(GOOD), "good-host", 0)}
    for n, (name, (mutate, _)) in enumerate(sorted(BAD.items()), 1):
        hv = copy.deepcopy(GOOD)
        mutate(hv)
        hosts[name] = standalone(hv, name, n)
    inventory = {
        "multillm_gpu_hosts": {"hosts": hosts},
        "multillm_gateway": {"hosts": {name: None for name in hosts}},
    }
    (inv / "hosts.yml").write_text(yaml.safe_dump(inventory))
    proc = run_preflight(inv / "hosts.yml")
    return proc, host_failures(proc.stdout)


def test_there_are_at_least_twenty_bad_inventories():
    assert len(BAD) >= 20


def test_preflight_fails_when_any_host_is_bad(bad_run):
    proc, _ = bad_run
    assert proc.returncode != 0


@pytest.mark.parametrize("host", sorted(BAD))
def test_each_bad_host_fails_with_its_rule_only(bad_run, host):
    _, (failures, _) = bad_run
    assert host in failures, "host %s passed preflight" % host
    messages = failures[host]
    assert len(messages) == 1
    text = messages[0]
    assert "(1 errors)" in text, text
    assert "host %s: " % host in text
    assert BAD[host][1] in text, text


def test_the_good_host_passes_and_nothing_was_contacted(bad_run):
    _, (failures, stats) = bad_run
    assert "good-host" not in failures
    # 192.0.2.1 answers nobody: an attempted connection would show as unreachable.
    assert all(s.get("unreachable", 0) == 0 for s in stats.values())


def test_secrets_do_not_appear_in_the_output(bad_run):
    proc, _ = bad_run
    assert "sk-preflight-test-key-0001" not in proc.stdout + proc.stderr


def test_all_errors_of_one_host_come_in_one_message(tmp_path):
    hv = copy.deepcopy(GOOD)
    hv["multillm_vram_strategy"] = "dynamic"
    hv["multillm_models"][1]["port"] = 8001
    hv["litellm_gateway_master_key"] = "oops"
    inv = {"multillm_gpu_hosts": {"hosts": {"multi": hv}}, "multillm_gateway": {"hosts": {"multi": None}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inv))
    proc = run_preflight(tmp_path / "hosts.yml")
    failures, _ = host_failures(proc.stdout)
    assert proc.returncode != 0
    assert "(3 errors)" in failures["multi"][0]


def test_an_inventory_without_a_gateway_group_fails(tmp_path):
    inv = {"multillm_gpu_hosts": {"hosts": {"lonely": copy.deepcopy(GOOD)}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inv))
    proc = run_preflight(tmp_path / "hosts.yml")
    failures, _ = host_failures(proc.stdout)
    assert proc.returncode != 0
    assert "both groups must hold at least one host" in failures["localhost"][0]


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "inventories").iterdir() if p.is_dir()))
def test_every_example_inventory_passes(name):
    extra = []
    vault_pass = ROOT / "inventories" / name / "vault-pass.example"
    if vault_pass.exists():
        extra = ["--vault-password-file", str(vault_pass)]
    proc = run_preflight(ROOT / "inventories" / name, *extra)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    failures, stats = host_failures(proc.stdout)
    assert failures == {}
    assert len(stats) >= 2  # localhost and at least one managed host were checked
