"""The contract validator: each rule, the messages, and that good input passes."""

import copy

import pytest

from ansible_collections.llmops.multillm.plugins.filter.multillm import FilterModule
from ansible_collections.llmops.multillm.plugins.module_utils._contract import contract_errors

check = FilterModule().filters()["multillm_contract_errors"]

GOOD = {
    "multillm_vram_strategy": "static",
    "multillm_gpu_memory_gib": 79.6,
    "multillm_resting_vram_gib": 58,
    "multillm_resting_vram_tolerance_gib": 4,
    "multillm_models": [
        {"name": "qwen2.5-14b-instruct", "model": "Qwen/Qwen2.5-14B-Instruct", "port": 8001,
         "gpu_memory_utilization": 0.5, "weights_gib": 27.5},
        {"name": "paddleocr-vl", "model": "PaddlePaddle/PaddleOCR-VL", "port": 8002,
         "gpu_memory_utilization": 0.3},
    ],
    "litellm_gateway_port": 4001,
    "litellm_gateway_version": "1.106.12",
    "litellm_gateway_master_key": "sk-0123456789abcdef",
}


def with_(path, value):
    c = copy.deepcopy(GOOD)
    target = c
    keys = path.split(".")
    for k in keys[:-1]:
        target = target[int(k)] if isinstance(target, list) else target[k]
    last = keys[-1]
    if isinstance(target, list):
        target[int(last)] = value
    elif value is KeyError:
        del target[last]
    else:
        target[last] = value
    return c


def test_good_contract_has_no_error():
    assert check(GOOD, "h1") == []


def test_kvcached_allows_fractions_above_the_static_cap():
    c = with_("multillm_vram_strategy", "kvcached")
    c["multillm_models"][1]["gpu_memory_utilization"] = 0.9
    assert check(c, "h1") == []


@pytest.mark.parametrize(
    "path,value,needle",
    [
        ("multillm_vram_strategy", "elastic", "must be one of kvcached, static"),
        ("multillm_gpu_memory_gib", 0, "must be a number above 0"),
        ("multillm_resting_vram_gib", 90, "must not exceed multillm_gpu_memory_gib"),
        ("multillm_resting_vram_gib", -1, "0 or more"),
        ("multillm_resting_vram_tolerance_gib", -0.5, "0 or more"),
        ("multillm_static_utilization_cap", 1.5, "at most 1"),
        ("multillm_gpu_required", "yes", "must be a boolean"),
        ("multillm_models", [], "at least one model"),
        ("multillm_models", {"a": 1}, "must be a list"),
        ("multillm_models.0", "qwen", "must be a dictionary"),
        ("multillm_models.0.name", "Qwen 14B", "lower-case letters"),
        ("multillm_models.0.name", "paddleocr-vl", "must be unique"),
        ("multillm_models.0.name", KeyError, ".name=None: is required"),
        ("multillm_models.0.model", "", "non-empty repository id"),
        ("multillm_models.0.port", 80, "from 1024 to 65535"),
        ("multillm_models.0.port", "8001", "from 1024 to 65535"),
        ("multillm_models.0.port", 8002, "must be unique"),
        ("multillm_models.0.port", 4001, "must differ from litellm_gateway_port"),
        ("multillm_models.0.gpu_memory_utilization", 0, "at most 0.95"),
        ("multillm_models.0.gpu_memory_utilization", 0.7, "sum to at most"),
        ("multillm_models.0.weights_gib", 45.0, "must fit in the model's slice"),
        ("multillm_models.0.max_model_len", -5, "positive integer"),
        ("multillm_models.0.health_timeout_s", 0, "positive integer"),
        ("multillm_models.0.extra_args", ["--port=9000"], "which model_stack renders"),
        ("multillm_models.0.extra_args", "--foo", "list of strings"),
        ("multillm_models.0.env", {"KVCACHED_IPC_NAME": "x"}, "is set by model_stack"),
        ("multillm_models.0.kvcached", {"reserve": 1}, "not a known kvcached setting"),
        ("multillm_models.0.image", "vllm openai", "without spaces"),
        ("multillm_models.0.gpu", 1, "not a known field"),
        ("litellm_gateway_port", 99999, "from 1024 to 65535"),
        ("multillm_backend_address", "gpu-b.example", "IPv4 address"),
        ("multillm_backend_address", "10.0.0.256", "IPv4 address"),
        ("litellm_gateway_master_key", "0123456789abcdefghij", "starts with 'sk-'"),
        ("litellm_gateway_master_key", "sk-short", "at least 16"),
        ("litellm_gateway_master_key", "", "is required on the gateway host"),
        ("litellm_gateway_version", "1.82.8", "compromised"),
        ("litellm_gateway_version", "1.80.0", "older than 1.83.10"),
        ("litellm_gateway_version", ">=1.90", "exact release"),
    ],
)
def test_each_rule_is_reported_once_with_host_variable_and_value(path, value, needle):
    errors = check(with_(path, value), "gpu-7")
    assert len(errors) == 1, errors
    message = errors[0]
    assert message.startswith("host gpu-7: ")
    assert needle in message
    # The message names the variable it is about.
    variable = path.split(".")[0]
    assert variable in message


def test_all_broken_rules_are_reported_together():
    c = with_("multillm_vram_strategy", "elastic")
    c["multillm_models"][1]["port"] = 8001
    c["multillm_models"][1]["name"] = "BAD NAME"
    errors = check(c, "h")
    assert len(errors) == 3
    assert any("must be unique" in e for e in errors)
    assert any("lower-case" in e for e in errors)


def test_master_key_is_never_echoed():
    secret = "not-a-valid-key-but-a-secret-anyway"
    errors = check(with_("litellm_gateway_master_key", secret), "h")
    assert errors and secret not in " ".join(errors)
    assert "<hidden>" in errors[0]


def test_hf_token_in_env_is_hidden():
    errors = check(with_("multillm_models.0.env", {"HF_TOKEN": "hf_supersecret"}), "h")
    assert errors and "hf_supersecret" not in errors[0]


def test_weights_rule_uses_the_slice_and_the_gpu_size():
    # 0.5 x 79.6 = 39.8 GiB: 39 GiB of weights fits (just), 39.8 does not.
    assert check(with_("multillm_models.0.weights_gib", 39.0), "h") == []
    assert len(check(with_("multillm_models.0.weights_gib", 39.8), "h")) == 1


def test_static_sum_edge_is_inclusive():
    c = copy.deepcopy(GOOD)
    c["multillm_models"][0]["gpu_memory_utilization"] = 0.65
    c["multillm_models"][1]["gpu_memory_utilization"] = 0.30
    assert check(c, "h") == []  # 0.95 exactly
    c["multillm_models"][1]["gpu_memory_utilization"] = 0.31
    assert "sum to at most" in check(c, "h")[0]


def test_gateway_keys_are_checked_only_when_present():
    c = {k: v for k, v in GOOD.items() if not k.startswith("litellm_gateway")}
    assert check(c, "h") == []


def test_filter_is_registered():
    assert check is contract_errors


def test_a_backend_address_is_accepted():
    assert check(with_("multillm_backend_address", "10.0.0.21"), "h") == []
