"""Placement on a host with several GPUs, rendered by the role's own spec task file on the control
node (molecule/model_stack/render.yml), with the models of inventories/hgx's H100 server and with
this scenario's own (2 GPUs): the Docker device request of each container and the boot chains per
GPU. The scenario's host runs vLLM's CPU build, whose containers get no GPU: what its per-GPU
chains do on the host (order within a GPU, side by side across GPUs, after a reboot) is tested in
tests/test_model_stack.py; the rendered units and gates of HGX-sized hosts run in
tests/unit/roles/test_model_units_placement.py."""

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


def scenario_specs(**extra):
    """The specs of this scenario's own host (molecule.yml), rendered for a host with 2 GPUs."""
    with open(os.path.join(PROJECT_DIR, "molecule", "model_stack", "molecule.yml")) as f:
        host = yaml.safe_load(f)["provisioner"]["inventory"]["group_vars"]["all"]
    return render(multillm_models=host["multillm_models"], multillm_gpu_count=host["multillm_gpu_count"],
                  multillm_vram_strategy="static", **extra)


def test_the_scenario_s_models_get_one_device_request_per_gpu_on_a_gpu_host():
    # What the Molecule host would give its containers with GPUs: alpha and beta GPU 0, gamma
    # GPU 1, each its own request; beta behind alpha only, gamma behind nothing.
    specs = scenario_specs(multillm_gpu_required=True, model_stack_device="gpu")
    ids = dict((name, [r.get("device_ids") for r in s["device_requests"]]) for name, s in specs.items())
    assert ids == {"alpha": [["0"]], "beta": [["0"]], "gamma": [["1"]]}
    assert dict((n, s["previous_units"]) for n, s in specs.items()) == {
        "alpha": [], "beta": ["multillm-model-alpha.service"], "gamma": []}
    # The VRAM settle of each gate reads its own GPU only.
    assert ["--settle-gpus", "0"] in specs["beta"]["gate"]["health"]
    assert ["--settle-gpus", "1"] in specs["gamma"]["gate"]["health"]


def test_the_scenario_s_cpu_build_keeps_the_chains_and_requests_no_gpu():
    # What the Molecule host runs (model_stack_device: cpu): the same chains, no device request
    # (tests/test_model_stack.py checks the running containers have none).
    specs = scenario_specs(multillm_gpu_required=False, model_stack_device="cpu")
    assert all(s["device_requests"] == [] for s in specs.values())
    assert dict((n, s["previous_units"]) for n, s in specs.items()) == {
        "alpha": [], "beta": ["multillm-model-alpha.service"], "gamma": []}
