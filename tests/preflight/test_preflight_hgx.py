"""playbooks/preflight.yml on inventories/hgx (8-GPU servers, models placed on chosen GPUs) with one
GPU over-committed and one model placed on a GPU the host lacks: each refused naming the GPU and the
models (issue 17's acceptance). test_preflight.py checks that the example inventory itself passes."""

import shutil

import yaml

from test_preflight import ROOT, host_failures, run_preflight


def test_an_over_committed_gpu_and_a_missing_gpu_are_named(tmp_path):
    inv = tmp_path / "hgx"
    shutil.copytree(ROOT / "inventories" / "hgx", inv)
    path = inv / "host_vars" / "hgx-h100-01.yml"
    host = yaml.safe_load(path.read_text())
    by_name = dict((m["name"], m) for m in host["multillm_models"])
    by_name["paddleocr-vl"]["gpu_memory_utilization"] = 0.5        # GPU 4: 0.50 + 0.50 > 0.95
    by_name["qwen2.5-coder-7b-instruct"]["gpus"] = [8]              # an 8-GPU host has 0 to 7
    path.write_text(yaml.safe_dump(host))
    proc = run_preflight(inv, "--vault-password-file", str(inv / "vault-pass.example"))
    failures, _ = host_failures(proc.stdout)
    assert proc.returncode != 0
    text = "\n".join(failures["hgx-h100-01"])
    assert "on GPU 4 the models qwen2.5-14b-instruct (0.5), paddleocr-vl (0.5) sum to 1.0" in text
    assert "(qwen2.5-coder-7b-instruct).gpus=[8]: GPU 8 is not on this host: multillm_gpu_count is 8" in text
    assert "hgx-h200-01" not in failures
