"""The contract's single rules and model_stack's settings, with plain values."""

import pytest

from ansible_collections.llmops.multillm.plugins.module_utils import _contract as c

MODELS = [
    {"name": "qwen2.5-14b-instruct", "model": "Qwen/Qwen2.5-14B-Instruct", "port": 8001, "gpu_memory_utilization": 0.5},
    {"name": "paddleocr-vl", "model": "PaddlePaddle/PaddleOCR-VL", "port": 8002, "gpu_memory_utilization": 0.3},
]


# kvcached's own behaviour (utils._sanitize_segment, identical in 0.1.5 and at HEAD e8e6406,
# read 2026-12-04): letters, digits, '_' and '-' stay, everything else becomes '-', and the
# result is cut to 64 characters.
SANITISE_TABLE = [
    ("multillm_alpha", "multillm_alpha"),
    ("multillm_qwen2.5-14b-instruct", "multillm_qwen2-5-14b-instruct"),
    ("multillm_a.b.c", "multillm_a-b-c"),
    ("multillm_under_score-dash", "multillm_under_score-dash"),
    ("a/b c:d", "a-b-c-d"),
    ("x" * 70, "x" * 64),
    ("multillm_" + "m" * 63, ("multillm_" + "m" * 63)[:64]),
]


@pytest.mark.parametrize("given, pool", SANITISE_TABLE)
def test_pool_names_follow_kvcacheds_sanitiser(given, pool):
    assert c.kvcached_ipc_name(given) == pool


@pytest.mark.parametrize("version, needle", [
    ("1.83.10", None), ("1.106.12", None), ("1.83.10.post1", None), ("1.106.12.post3", None),
    ("1.82.8", "compromised"), ("1.82.7.post1", "compromised"), ("1.80.0", "older than 1.83.10"),
    ("1.83.9.post2", "older than 1.83.10"), (">=1.90", "exact release"), ("1.90", "exact release"),
    ("1.106.12\n", "exact release"), ("1.106.12.dev1", "exact release"), (1.9, "exact release"),
])
def test_one_litellm_version_rule_with_post_releases(version, needle):
    errors = c.litellm_version_errors(version, "gw")
    if needle is None:
        assert errors == []
    else:
        assert len(errors) == 1 and needle in errors[0] and errors[0].startswith("host gw: litellm_gateway_version=")


@pytest.mark.parametrize("port, ok", [(1024, True), (65535, True), (4001, True), (1023, False), (80, False),
                                      (65536, False), ("4001", False), (True, False), (None, False)])
def test_one_gateway_port_rule(port, ok):
    errors = c.gateway_port_errors(port, "gw")
    assert (errors == []) is ok
    if not ok:
        assert "must be an integer from 1024 to 65535" in errors[0]


def test_names_and_addresses_are_matched_whole_not_up_to_a_trailing_newline():
    models = [dict(MODELS[0], name="qwen\n")]
    assert any("lower-case" in e for e in c.contract_errors({"multillm_models": models}, "h"))
    errors = c.contract_errors({"multillm_models": MODELS, "multillm_backend_address": "10.0.0.1\n"}, "h")
    assert len(errors) == 1 and "IPv4" in errors[0]
    assert c.model_stack_errors({"model_stack_name_prefix": "multillm-\n"}, MODELS, "h")


def test_default_model_stack_settings_pass():
    assert c.model_stack_errors({}, MODELS, "h") == []


@pytest.mark.parametrize("key, value, needle", [
    ("model_stack_health_poll_interval_s", 0, "above 0"),
    ("model_stack_progress_every_s", 0, "1 or more"),
    ("model_stack_health_timeout_s", 0.5, "whole number"),
    ("model_stack_name_prefix", "Multillm-", "lower-case"),
    ("model_stack_server", "tgi", "must be one of vllm, fault_injector"),
    ("model_stack_device", "tpu", "must be one of gpu, cpu"),
    ("model_stack_vllm_version", "latest", "X.Y.Z"),
    ("model_stack_kvcached_version", "0.1", "X.Y.Z"),
    ("model_stack_kvcached_ipc_mode", "shareable", "host, private"),
    ("model_stack_vram_settle_samples", 0, "1 or more"),
    ("model_stack_kvcached_defaults", {"reserve": 1}, "not a known kvcached setting"),
])
def test_each_setting_rule_once_with_host_and_variable(key, value, needle):
    errors = c.model_stack_errors({key: value}, MODELS, "gpu-1")
    assert len(errors) == 1, errors
    assert errors[0].startswith("host gpu-1: %s" % key) and needle in errors[0]


@pytest.mark.parametrize("kvc, needle", [
    ({"min_reserved_pages": -1}, "min_reserved_pages=-1"),
    ({"min_reserved_pages": 3, "max_reserved_pages": 2}, "max_reserved_pages=2"),
    ({"page_size_mb": 3}, "multiple of 2"),
    ({"page_size_mb": 0}, "multiple of 2"),
    ({"max_cached_tokens": -2}, "-1 (unlimited)"),
    ({"page_prealloc": "yes"}, "must be a boolean"),
    ({"limit_gib": -1}, "limit_gib=-1"),
])
def test_kvcached_values_per_model(kvc, needle):
    models = [MODELS[0], dict(MODELS[1], kvcached=kvc)]
    errors = c.model_stack_errors({}, models, "h")
    assert len(errors) == 1 and needle in errors[0] and "multillm_models[1] (paddleocr-vl).kvcached" in errors[0]
    # Without kvcached (static, or the CPU build) the values do not matter.
    assert c.model_stack_errors({"multillm_vram_strategy": "static"}, models, "h") == []
    assert c.model_stack_errors({"model_stack_device": "cpu"}, models, "h") == []


@pytest.mark.parametrize("a, b", [
    ("qwen2.5", "qwen2-5"),          # '.' becomes '-'
    ("m" * 56 + "a", "m" * 56 + "b"),  # equal in the first 64 characters of multillm_<name>
    ("alpha", "alpha_g1"),            # alpha's extra KV group 1 is alpha_g1's pool
])
def test_models_whose_kvcached_pools_collide_are_refused(a, b):
    models = [dict(MODELS[0], name=a), dict(MODELS[1], name=b)]
    errors = c.model_stack_errors({}, models, "h")
    assert len(errors) == 1 and "collides with model 0's pool" in errors[0], errors


def test_similar_names_whose_pools_do_not_collide_pass():
    for a, b in (("alpha", "alpha-2"), ("alpha", "alpha_gamma"), ("alpha", "alpha_g1x")):
        assert c.model_stack_errors({}, [dict(MODELS[0], name=a), dict(MODELS[1], name=b)], "h") == []


def test_new_model_keys_are_checked():
    errors = c.contract_errors({"multillm_models": [dict(MODELS[0], recipe="paddle")]}, "h")
    assert len(errors) == 1 and "recipe='paddle': must be one of paddleocr-vl, none" in errors[0]
    errors = c.contract_errors({"multillm_models": [dict(MODELS[0], cpu_kvcache_gib=0)]}, "h")
    assert len(errors) == 1 and "VLLM_CPU_KVCACHE_SPACE" in errors[0]
    errors = c.contract_errors({"multillm_models": [dict(MODELS[0], env={"VLLM_CPU_KVCACHE_SPACE": "4"})]}, "h")
    assert len(errors) == 1 and "is set by model_stack" in errors[0]
    ok = [dict(MODELS[0], recipe="none", cpu_kvcache_gib=2), dict(MODELS[1], recipe="paddleocr-vl")]
    assert c.contract_errors({"multillm_models": ok}, "h") == []
