"""Placement on hosts with several GPUs: GPUs per model, device requests, tensor parallel,
boot chains per GPU, and the per-GPU budgets of the offline contract."""

import itertools

import pytest

from ansible_collections.llmops.multillm.plugins.module_utils import _contract as contract
from ansible_collections.llmops.multillm.plugins.module_utils import _placement as pl

UUID0 = "GPU-4f2c1a7e-8f3b-2d6e-9a1c-0b5e7d3f9a21"
UUID1 = "GPU-00000000-1111-2222-3333-444444444444"
PORTS = itertools.count(8001)


def model(name, gpus=None, util=0.4, **extra):
    m = {"name": name, "model": "org/" + name, "port": next(PORTS), "gpu_memory_utilization": util}
    if gpus is not None:
        m["gpus"] = gpus
    m.update(extra)
    return m


def host(models, **contract_vars):
    c = {"multillm_vram_strategy": "static", "multillm_gpu_memory_gib": 79.6, "multillm_gpu_count": 8,
         "multillm_models": models}
    c.update(contract_vars)
    return c


def errors(models, **contract_vars):
    return pl.placement_errors(host(models, **contract_vars), "hgx")


def test_defaults_equal_the_contract_defaults():
    assert pl.DEFAULT_GPU_MEMORY_GIB == contract.CONTRACT_DEFAULTS["multillm_gpu_memory_gib"]
    assert pl.DEFAULT_CAP == contract.CONTRACT_DEFAULTS["multillm_static_utilization_cap"] == contract.UTILIZATION_MAX
    assert pl._message("h", "v", 1, "r", "a", "gpus") == contract.message("h", "v", 1, "r", "a", "gpus")


# --- one model -----------------------------------------------------------------------------------

def test_a_model_without_gpus_is_on_gpu_0_and_keeps_every_gpu_visible():
    m = model("a")
    assert pl.model_gpus(m) == [0]
    assert pl.device_requests(m) == [{"driver": "nvidia", "count": -1, "capabilities": [["gpu"]]}]
    assert pl.tensor_parallel_size(m) == 1 and pl.parallel_args(m) == []


def test_named_gpus_give_exactly_those_devices_and_tensor_parallel_over_them():
    m = model("a", gpus=[2, 3])
    assert pl.device_requests(m) == [{"driver": "nvidia", "device_ids": ["2", "3"], "capabilities": [["gpu"]]}]
    assert pl.tensor_parallel_size(m) == 2
    assert pl.parallel_args(m) == ["--tensor-parallel-size", "2"]
    assert pl.device_requests(model("u", gpus=[UUID0]))[0]["device_ids"] == [UUID0]
    assert pl.parallel_args(model("one", gpus=[5])) == []


def test_a_pipeline_split_in_extra_args_divides_the_tensor_parallel_default():
    assert pl.tensor_parallel_size(model("a", gpus=[0, 1, 2, 3], extra_args=["--pipeline-parallel-size", "2"])) == 2
    assert pl.tensor_parallel_size(model("a", gpus=[0, 1, 2, 3], extra_args=["-pp=4"])) == 1
    assert pl.tensor_parallel_size(model("a", gpus=[0, 1], tensor_parallel_size=1,
                                         extra_args=["--pipeline-parallel-size=2"])) == 1


# --- chains --------------------------------------------------------------------------------------

def test_one_gpu_gives_the_strict_chain_of_before():
    models = [model(n) for n in "abcd"]
    assert pl.predecessors(models) == [[], [0], [1], [2]]


def test_chains_on_different_gpus_are_independent_and_a_spanning_model_waits_for_each():
    models = [model("a", [0]), model("b", [1]), model("c", [0]), model("d", [1]),
              model("tp", [0, 1]), model("e", [2]), model("f", [1])]
    assert pl.predecessors(models) == [[], [], [0], [1], [2, 3], [], [4]]
    assert pl.chains(models) == {0: ["a", "c", "tp"], 1: ["b", "d", "tp", "f"], 2: ["e"]}


def test_host_gpus_are_the_counted_indexes_and_every_named_uuid():
    assert pl.host_gpus({"multillm_gpu_count": 2, "multillm_models": [model("a", [1])]}) == [0, 1]
    assert pl.host_gpus({"multillm_models": [model("a", [UUID0])]}) == [0, UUID0]


def test_resting_per_gpu_splits_a_spanning_model_and_leaves_out_gpus_with_an_unknown_model():
    models = [model("a", [0], resting_gib=10), model("tp", [0, 1], resting_gib=30), model("b", [2])]
    assert pl.resting_per_gpu(models) == {0: 25.0, 1: 15.0}


# --- the contract ------------------------------------------------------------------------------

def test_a_valid_hgx_placement_has_no_error():
    models = [model("tp", [0, 1, 2, 3], util=0.9, weights_gib=130),
              model("a", [4], util=0.5), model("b", [4], util=0.4), model("c", [5]), model("d", [6])]
    assert errors(models) == []


def test_the_single_gpu_reference_inventory_has_no_error():
    models = [model("qwen", util=0.5, weights_gib=27.5), model("ocr", util=0.3)]
    assert pl.placement_errors(host(models, multillm_gpu_count=1), "h100") == []
    assert pl.placement_errors({"multillm_models": models}, "h100") == []


def test_static_slices_over_the_cap_on_one_gpu_name_the_gpu_and_its_models():
    models = [model("a", [0], util=0.5), model("b", [1], util=0.9), model("c", [1], util=0.3)]
    [err] = errors(models)
    assert err.startswith("host hgx: multillm_models[*].gpu_memory_utilization=1.2: static slices must sum to at most")
    assert "on GPU 1 the models b (0.9), c (0.3) sum to 1.2" in err
    assert "GPU 0" not in err


def test_a_spanning_model_counts_its_fraction_on_every_gpu():
    models = [model("tp", [0, 1], util=0.6), model("b", [1], util=0.4)]
    [err] = errors(models)
    assert "on GPU 1 the models tp (0.6), b (0.4) sum to 1.0" in err


def test_kvcached_fractions_are_not_summed():
    models = [model("a", [0], util=0.6), model("b", [0], util=0.6)]
    assert errors(models, multillm_vram_strategy="kvcached") == []


def test_the_old_single_gpu_static_sum_still_fails_with_its_phrase():
    [err] = pl.placement_errors(host([model("qwen", util=0.5), model("ocr", util=0.6)], multillm_gpu_count=1), "h")
    assert "static slices must sum to at most multillm_static_utilization_cap (0.95)" in err
    assert "on GPU 0 the models qwen (0.5), ocr (0.6)" in err


def test_weights_split_by_tensor_parallel_must_fit_each_gpu():
    fits = model("tp", [0, 1], util=0.9, weights_gib=130)    # 65 GiB per GPU < 71.6
    assert errors([fits]) == []
    [err] = errors([model("tp", [0], util=0.9, weights_gib=130)])
    assert "multillm_models[0] (tp).weights_gib=130: must fit in the model's slice on each of its GPUs (GPU 0)" in err
    assert "130.0 GiB per GPU" in err and "0.9 x 79.6 GiB = 71.6 GiB" in err


def test_gpu_memory_is_per_host_so_an_h200_host_fits_what_an_h100_host_does_not():
    big = [model("tp", [0, 1], util=0.9, weights_gib=160)]   # 80 GiB per GPU
    assert errors(big, multillm_gpu_memory_gib=140.0) == []
    [err] = errors(big, multillm_gpu_memory_gib=79.6)
    assert "GPU 0, GPU 1" in err and "80.0 GiB per GPU" in err


def test_a_missing_gpu_index_is_named_with_the_host_count():
    [err] = errors([model("a", [0, 8])])
    assert "multillm_models[0] (a).gpus=[0, 8]: GPU 8 is not on this host: multillm_gpu_count is 8" in err
    [err] = pl.placement_errors({"multillm_models": [model("a", [1])]}, "h")
    assert "GPU 1 is not on this host: multillm_gpu_count is 1 (GPU indexes 0 to 0)" in err


@pytest.mark.parametrize("gpus, text", [
    ([], "must be a non-empty list"),
    ("0", "must be a non-empty list"),
    ([-1], "GPU index -1 is negative"),
    ([0, 0], "lists a GPU twice"),
    (["gpu0"], "is neither a GPU index"),
    ([True], "is neither a GPU index"),
])
def test_bad_gpu_lists(gpus, text):
    [err] = errors([model("a", gpus)])
    assert text in err and "(a).gpus=" in err


def test_indexes_and_uuids_are_not_mixed_on_one_host():
    errs = errors([model("a", [0]), model("b", [UUID1])])
    assert len(errs) == 1 and "must name GPUs one way on a host: model 0 uses indexes, model 1 UUIDs" in errs[0]
    errs = errors([model("a", [UUID0]), model("b")])
    assert len(errs) == 1 and "must be given on every model of a host whose models name GPUs by UUID" in errs[0]


@pytest.mark.parametrize("entry, text", [
    (model("a", [0, 1], tensor_parallel_size=3), "times the pipeline split (1) must equal the number of GPUs in gpus (2"),
    (model("a", tensor_parallel_size=2), "(a).tensor_parallel_size=2: needs gpus"),
    (model("a", [0], tensor_parallel_size=0), "must be a whole number from 1 to 64"),
    (model("a", tensor_parallel_size=10 ** 30), "must be a whole number from 1 to 64"),
    (model("a", [0, 1], extra_args=["-pp", "9" * 40]), "not a whole number from 1 to 64"),
    (model("a", [0, 1, 2], extra_args=["-pp", "2"]), "3 GPUs do not split into a pipeline of 2 stages"),
    (model("a", [0, 1], extra_args=["-pp", "two"]), "sets --pipeline-parallel-size to a value"),
])
def test_bad_parallel_settings(entry, text):
    errs = errors([entry])
    assert len(errs) == 1 and text in errs[0], errs


def test_tensor_parallel_size_1_over_two_gpus_is_a_pipeline_of_two():
    assert errors([model("a", [0, 1], tensor_parallel_size=1, extra_args=["-pp", "2"])]) == []


def test_a_bad_gpu_count_is_named():
    [err] = pl.placement_errors({"multillm_gpu_count": 0, "multillm_models": [model("a")]}, "h")
    assert err.startswith("host h: multillm_gpu_count=0: must be a whole number from 1 to 64")
    [err] = pl.placement_errors({"multillm_gpu_count": 10 ** 30, "multillm_models": [model("a")]}, "h")
    assert "must be a whole number from 1 to 64" in err
    assert pl.host_gpus({"multillm_gpu_count": 10 ** 30}) == [0]


def test_values_the_contract_checks_elsewhere_are_skipped_here():
    assert errors([model("a", util="half", weights_gib=-1), "not a dict"], multillm_gpu_memory_gib="big") == []
    assert pl.placement_errors({"multillm_models": "qwen"}, "h") == []


def test_every_message_ends_with_its_rule_id():
    ids = set(r[0] for r in pl.RULES) | {"static-sum", "weights-fit"}
    bad = [model("a", [0, 9], util=0.9, weights_gib=100, tensor_parallel_size=3, extra_args=["-pp", "x"]),
           model("b", [0], util=0.5)]
    errs = errors(bad) + pl.placement_errors({"multillm_gpu_count": "8", "multillm_models": []}, "h")
    assert len(errs) >= 5
    for err in errs:
        assert err.endswith("]") and err.rsplit(" [", 1)[1][:-1] in ids, err


def test_vram_expectations_for_a_host_with_placed_models():
    from ansible_collections.llmops.multillm.plugins.module_utils import _model_spec as ms
    models = [model("tp", [0, 1], resting_gib=60), model("a", [1], resting_gib=10), model("b", [2])]
    specs = ms.model_specs(models, {"multillm_gpu_required": True})
    out = pl.vram_expectations(specs, models, 4)
    assert out["gpus"] == {"0": 30.0, "1": 40.0, "2": None, "3": None}
    assert out["present"] == {"0": None, "1": None, "2": None, "3": None}
    assert out["containers"] == {"multillm-model-tp": {"gpus": ["0", "1"], "expected_gib": 60},
                                 "multillm-model-a": {"gpus": ["1"], "expected_gib": 10},
                                 "multillm-model-b": {"gpus": ["2"]}}


def test_vram_expectations_of_a_single_gpu_host_only_ask_that_gpu_0_exists():
    from ansible_collections.llmops.multillm.plugins.module_utils import _model_spec as ms
    models = [model("qwen"), model("ocr")]
    out = pl.vram_expectations(ms.model_specs(models, {}), models)
    assert out == {"gpus": {"0": None}, "containers": {}, "present": {"0": None}}


def test_the_contract_knows_the_placement_rules_and_reports_each_fault_once():
    assert set(r[0] for r in pl.RULES) <= set(contract.RULE_IDS)
    c = host([model("a", [0, 1], extra_args=["-tp", "2"]), model("b", [1], util=0.6)],
             multillm_resting_vram_gib=100, multillm_resting_vram_tolerance_gib=4)
    errs = contract.contract_errors(c, "hgx")
    assert [e.rsplit(" [", 1)[1] for e in errs] == ["managed-flag]", "static-sum]"], errs
    assert "on GPU 1 the models a (0.4), b (0.6) sum to 1.0" in errs[1]
