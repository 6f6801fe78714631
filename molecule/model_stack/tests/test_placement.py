"""Placement on a host with several GPUs, rendered by the role's own spec task file on the control
node (molecule/model_stack/render.yml), with the models of inventories/hgx's H100 server: the
Docker device request of each container and the boot chains per GPU. What the rendered units and
gates then do is run in tests/unit/roles/test_model_units_placement.py (no second boot fits this
scenario's time)."""

import os

import yaml

from test_render import PROJECT_DIR, render

HGX = os.path.join(PROJECT_DIR, "inventories", "hgx", "host_vars", "hgx-h100-01.yml")


def hgx_specs():
    with open(HGX) as f:
        host = yaml.safe_load(f)
    return render(multillm_models=host["multillm_models"], multillm_gpu_count=host["multillm_gpu_count"],
                  multillm_vram_strategy="static")


def test_each_container_requests_exactly_its_gpus():
    specs = hgx_specs()
    ids = dict((name, [r.get("device_ids") for r in s["device_requests"]]) for name, s in specs.items())
    assert ids["llama-3.3-70b-instruct"] == [["0", "1", "2", "3"]]
    assert ids["qwen2.5-14b-instruct"] == ids["paddleocr-vl"] == [["4"]]
    assert ids["qwen2.5-coder-7b-instruct"] == [["7"]]
    assert all(r.get("count") is None for s in specs.values() for r in s["device_requests"])
    llama = specs["llama-3.3-70b-instruct"]["command"]
    assert llama[llama.index("--tensor-parallel-size") + 1] == "4"
    assert "--tensor-parallel-size" not in specs["qwen2.5-7b-instruct"]["command"]


def test_only_models_sharing_a_gpu_wait_for_each_other():
    specs = hgx_specs()
    after = dict((name, s["previous_units"]) for name, s in specs.items())
    assert after["paddleocr-vl"] == ["multillm-model-qwen2.5-14b-instruct.service"]
    assert all(units == [] for name, units in after.items() if name != "paddleocr-vl"), after
    ocr = specs["paddleocr-vl"]["gate"]
    assert ["--previous-ready", "/run/multillm-gate/qwen2.5-14b-instruct/ready"] in ocr["health"]
    assert specs["llama-3.3-70b-instruct"]["gate"]["after"] == []
