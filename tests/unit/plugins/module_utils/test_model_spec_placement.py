"""The model specs on a host with several GPUs: device requests, tensor parallel, the boot
chains per GPU (gate lines, Wants=, start budgets), per-GPU settle; and a single GPU as before."""

import copy
import itertools

from ansible_collections.llmops.multillm.plugins.module_utils import _model_spec as ms

PORTS = itertools.count(9001)
GPU = {"multillm_gpu_required": True, "multillm_vram_strategy": "static"}


def model(name, gpus=None, **extra):
    m = {"name": name, "model": "org/" + name, "port": next(PORTS),
         "gpu_memory_utilization": 0.4, "health_timeout_s": 100}
    if gpus is not None:
        m["gpus"] = gpus
    m.update(extra)
    return m


def specs(models, **settings):
    return ms.model_specs(copy.deepcopy(models), dict(GPU, **settings))


def by_name(out):
    return dict((s["name"], s) for s in out)


def flags(lines):
    """The gate lines as (flag, value) pairs, the helper's command left out."""
    return [tuple(line) for line in lines[1:]]


# 4 models on 2 GPUs plus one spanning both: a0 -> a1 on GPU 0, b0 -> b1 on GPU 1, tp behind a1 and b1.
HGX = [model("a0", [0]), model("b0", [1]), model("a1", [0]), model("b1", [1]), model("tp", [0, 1])]


def test_a_model_without_gpus_keeps_every_gpu_and_the_strict_chain():
    out = specs([model("a"), model("b"), model("c")])
    assert [s["device_requests"] for s in out] == [[{"driver": "nvidia", "count": -1, "capabilities": [["gpu"]]}]] * 3
    assert [s["previous_units"] for s in out] == [[], ["multillm-model-a.service"], ["multillm-model-b.service"]]
    assert [s["previous_unit"] for s in out] == ["", "multillm-model-a.service", "multillm-model-b.service"]
    assert [s["gpus"] for s in out] == [[], [], []]
    assert all("--tensor-parallel-size" not in s["command"] for s in out)
    # start budgets add up along the one chain: (100 health + 120 settle + 60 margin) per model
    assert [s["start_timeout_s"] for s in out] == [280, 560, 840]
    assert not any("--settle-gpus" in line for s in out for line in s["gate"]["health"])


def test_named_gpus_give_device_ids_and_tensor_parallel_over_them():
    s = by_name(specs(HGX))
    assert s["tp"]["device_requests"] == [{"driver": "nvidia", "device_ids": ["0", "1"], "capabilities": [["gpu"]]}]
    assert s["a1"]["device_requests"][0]["device_ids"] == ["0"]
    cmd = s["tp"]["command"]
    assert cmd[cmd.index("--tensor-parallel-size") + 1] == "2" and s["tp"]["tensor_parallel_size"] == 2
    assert "--tensor-parallel-size" not in s["a0"]["command"]
    assert (s["tp"]["gpus"], s["b1"]["gpus"]) == (["0", "1"], ["1"])


def test_the_tensor_parallel_flag_is_not_rendered_for_the_fault_injector_or_the_cpu_build():
    assert "--tensor-parallel-size" not in by_name(specs(HGX, model_stack_server="fault_injector"))["tp"]["command"]
    assert "--tensor-parallel-size" not in by_name(specs(HGX, model_stack_device="cpu"))["tp"]["command"]


def test_a_tensor_parallel_container_keeps_ipc_and_shared_memory_for_nccl():
    tp = by_name(specs(HGX))["tp"]
    assert (tp["ipc_mode"], tp["shm_size"]) == ("private", "8g")
    tp = by_name(specs(HGX, multillm_vram_strategy="kvcached"))["tp"]
    assert (tp["ipc_mode"], tp["shm_size"]) == ("host", None)


def test_chains_per_gpu_boot_side_by_side_and_in_order_on_each_gpu():
    s = by_name(specs(HGX))
    assert s["a0"]["previous_units"] == [] and s["b0"]["previous_units"] == []
    assert s["a1"]["previous_units"] == ["multillm-model-a0.service"]
    assert s["b1"]["previous_units"] == ["multillm-model-b0.service"]
    assert s["tp"]["previous_units"] == ["multillm-model-a1.service", "multillm-model-b1.service"]
    # Wants= in the unit template reads previous_unit: every predecessor, space-separated.
    assert s["tp"]["previous_unit"] == "multillm-model-a1.service multillm-model-b1.service"
    assert s["b0"]["gate"]["after"] == []


def test_a_spanning_model_waits_for_the_release_and_readiness_of_every_chain_it_touches():
    tp = by_name(specs(HGX))["tp"]
    assert flags(tp["gate"]["after"]) == [
        ("--name", "tp"),
        ("--previous-unit", "multillm-model-a1.service"), ("--previous-release", "/run/multillm-gate/a1/release"),
        ("--previous-unit", "multillm-model-b1.service"), ("--previous-release", "/run/multillm-gate/b1/release"),
        ("--interval", "0.005")]
    health = flags(tp["gate"]["health"])
    assert health[:5] == [
        ("--name", "tp"),
        ("--previous-unit", "multillm-model-a1.service"), ("--previous-ready", "/run/multillm-gate/a1/ready"),
        ("--previous-unit", "multillm-model-b1.service"), ("--previous-ready", "/run/multillm-gate/b1/ready")]


def test_settle_watches_only_the_models_own_gpus():
    s = by_name(specs(HGX))
    assert s["tp"]["gate"]["health"][-1] == ["--settle-gpus", "0,1"]
    assert s["b0"]["gate"]["health"][-1] == ["--settle-gpus", "1"]
    assert not any(line[0] == "--settle-gpus" for line in by_name(specs(HGX, model_stack_vram_settle=False))
                   ["tp"]["gate"]["health"])


def test_start_budgets_follow_the_longest_chain_before_a_model():
    models = [model("a0", [0], health_timeout_s=1000), model("b0", [1]), model("b1", [1]), model("tp", [0, 1])]
    s = by_name(specs(models, model_stack_vram_settle=False))
    assert s["a0"]["start_timeout_s"] == 1060 and s["b0"]["start_timeout_s"] == 160
    assert s["b1"]["start_timeout_s"] == 320            # behind b0 only, not behind a0
    assert s["tp"]["start_timeout_s"] == 1060 + 160     # behind a0's 1060 (longer than b1's 320)


def test_the_endpoints_do_not_change_with_placement():
    ends = ms.model_endpoints(copy.deepcopy(HGX), GPU)
    assert [e["name"] for e in ends] == ["a0", "b0", "a1", "b1", "tp"]
    assert set(ends[0]) == set(ms.ENDPOINT_KEYS)
