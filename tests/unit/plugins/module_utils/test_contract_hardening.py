"""Issue 16: the contract's character rules, flag spellings, numbers, typos, secrets, the gateway's
default port and the rules across hosts, on plain values (the adversarial set runs the playbook)."""

import math
import pathlib

import pytest
import yaml

from ansible_collections.llmops.multillm.plugins.module_utils import _contract as c

ROOT = pathlib.Path(__file__).resolve().parents[4]
MODELS = [
    {"name": "qwen", "model": "Qwen/Qwen2.5-14B-Instruct", "port": 8001, "gpu_memory_utilization": 0.5},
    {"name": "ocr", "model": "PaddlePaddle/PaddleOCR-VL", "port": 8002, "gpu_memory_utilization": 0.3},
]


def ids(errors):
    return sorted(e.rsplit("[", 1)[1].rstrip("]") for e in errors)


def errors_with(model_changes=None, **contract):
    models = [dict(MODELS[0], **(model_changes or {})), MODELS[1]]
    return c.contract_errors(dict({"multillm_models": models}, **contract), "h")


@pytest.mark.parametrize("token, flag", [
    ("--port", "--port"), ("--port=9000", "--port"), ("--served_model_name", "--served-model-name"),
    ("--served-model-name=x", "--served-model-name"), ("--max_model_len=4096", "--max-model-len"),
    ("--gpu_memory_utilization", "--gpu-memory-utilization"), ("--gpu-mem", "--gpu-memory-utilization"),
    ("--serv", "--served-model-name"), ("--model", "--model"), ("--model=other/m", "--model"),
    ("--config", "--config"), ("--no-host", "--host"), ("--host.x", "--host"),
    ("--tensor_parallel_size=2", "--tensor-parallel-size"), ("-tp", "--tensor-parallel-size"),
    ("-tp=2", "--tensor-parallel-size"), ("-tp2", "--tensor-parallel-size"),
    ("--model-impl", None), ("--max-num-seqs", None), ("--trust-remote-code", None), ("--no-enable-prefix-caching", None),
    ("--override-generation-config", None), ("vllm", None), ("-O3", None), ("--", None), ("--port-x", None),
])
def test_managed_flags_in_every_spelling_vllm_reads(token, flag):
    assert c.managed_flag(token) == flag


@pytest.mark.parametrize("name", ["KVCACHED_IPC_NAME", "KVCACHED_PAGE_SIZE_MB", "KVCACHED_ANYTHING_NEW",
                                  "ENABLE_KVCACHED", "HF_TOKEN", "VLLM_CPU_KVCACHE_SPACE"])
def test_managed_env_includes_every_kvcached_variable(name):
    assert ids(errors_with({"env": {name: "1"}})) == ["managed-env"]


@pytest.mark.parametrize("model, ok", [
    ("Qwen/Qwen2.5-14B-Instruct", True), ("gpt2", True), ("/models/qwen2-tiny", True), ("/srv/m/q2.5+ft@v2", True),
    ("/root/.cache/huggingface/x", True), ("Qwen/Qwen2.5\n", False), ("Qwen/Q\nExecStartPre=/bin/id", False),
    ("/models/../etc", False), ("/models/./x", False), ("/m/x:rw", False), ("./m", False), ("a//b", False),
    ("Qwen--Q/x", False), ("Qwen/x y", False), ("Qwen/%h", False), ("", False), ("/", False), (42, False),
])
def test_model_ids_and_paths_are_matched_whole(model, ok):
    assert (ids(errors_with({"model": model})) == []) is ok


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\x00b", "a\tb", "a\u2028b", "\n"])
def test_no_control_or_line_separator_in_extra_args_or_env(value):
    assert ids(errors_with({"extra_args": ["--x", value]})) == ["extra-args"]
    assert ids(errors_with({"env": {"VLLM_X": value}})) == ["env-form"]


def test_env_values_may_be_unicode_numbers_and_booleans():
    assert errors_with({"env": {"A": "résumé", "B": 4, "C": 0.5, "D": True, "VLLM_USE_V2_MODEL_RUNNER": "1"}}) == []
    assert ids(errors_with({"env": {"A": float("nan")}})) == ["env-form"]


@pytest.mark.parametrize("key, value, rule", [
    ("multillm_gpu_memory_gib", float("nan"), "gpu-size"), ("multillm_gpu_memory_gib", float("inf"), "gpu-size"),
    ("multillm_gpu_memory_gib", 81920, "gpu-size"),
    ("multillm_resting_vram_gib", float("nan"), "resting-target"),
    ("multillm_resting_vram_tolerance_gib", float("-inf"), "tolerance"),
    ("multillm_static_utilization_cap", float("nan"), "utilization-cap"),
])
def test_numbers_are_finite_and_plausible(key, value, rule):
    assert ids(c.contract_errors({"multillm_models": MODELS, key: value}, "h")) == [rule]


def test_a_gpu_size_in_mib_says_so():
    (msg,) = c.contract_errors({"multillm_models": MODELS, "multillm_gpu_memory_gib": 81920}, "h")
    assert "looks like MiB" in msg and "80.0" in msg


def test_a_tolerance_below_the_target_and_a_zero_target_pass():
    assert c.contract_errors({"multillm_models": MODELS, "multillm_resting_vram_gib": 58,
                              "multillm_resting_vram_tolerance_gib": 57.9}, "h") == []
    assert c.contract_errors({"multillm_models": MODELS, "multillm_resting_vram_gib": 0}, "h") == []


def test_a_tolerance_as_large_as_the_target_fails():
    assert ids(c.contract_errors({"multillm_models": MODELS, "multillm_resting_vram_gib": 58,
                                  "multillm_resting_vram_tolerance_gib": 58}, "h")) == ["tolerance"]


def test_an_unset_resting_target_is_valid_and_the_default():
    # No measured figure fits every stack (kvcached 36.36, static 65.37 GiB for the same pair):
    # unset, verify measures the total and shows it (tests/unit/roles/test_verify_vram.py).
    assert c.CONTRACT_DEFAULTS["multillm_resting_vram_gib"] is None
    assert c.contract_errors({"multillm_models": MODELS}, "h") == []
    assert c.contract_errors({"multillm_models": MODELS, "multillm_resting_vram_gib": None,
                              "multillm_resting_vram_tolerance_gib": 3}, "h") == []


def test_unknown_names_come_with_the_closest_known_one():
    (msg,) = c.contract_errors({"multillm_models": MODELS, "multillm_modles": []}, "h")
    assert "Did you mean multillm_models?" in msg and msg.endswith("[unknown-variable]")
    msg = errors_with({"gpu_memory_utilisation": 0.5})[0]
    assert "Did you mean gpu_memory_utilization?" in msg
    msg = errors_with({"kvcached": {"page_size": 2}})[0]
    assert "Did you mean page_size_mb?" in msg


@pytest.mark.parametrize("where", ["unknown", "list-env", "env", "extra-arg", "token", "key"])
def test_secrets_are_hidden_wherever_they_are_put(where):
    secret = "hf_Sentinel0123456789"
    contract = {"multillm_models": [dict(m) for m in MODELS], "multillm_hf_token": secret}
    if where == "unknown":
        contract["multillm_hf_tokn"] = secret
    elif where == "list-env":
        contract["multillm_models"][0]["env"] = ["MY_TOKEN=" + secret]
    elif where == "env":
        contract["multillm_models"][0]["env"] = {"MY_SECRET": secret + "\n"}
    elif where == "extra-arg":
        contract["multillm_models"][0]["extra_args"] = ["--api-key=" + secret + "\n"]
    elif where == "token":
        contract["multillm_hf_token"] = secret + "\nLD_PRELOAD=/x"
    else:
        contract["litellm_gateway_master_key"] = "sk-" + secret + " x"
    errors = c.contract_errors(contract, "h")
    assert errors and "<hidden>" in " ".join(errors)
    assert "Sentinel" not in " ".join(errors)


def test_the_gateway_port_counts_when_left_at_its_default():
    models = [dict(MODELS[0], port=4001), MODELS[1]]
    # A gateway host (the master key is passed on gateway hosts) without litellm_gateway_port.
    errors = c.contract_errors({"multillm_models": models, "litellm_gateway_master_key": "sk-0123456789abcdef"}, "h")
    assert ids(errors) == ["port-gateway"] and "its default" in errors[0]
    # Not a gateway host: the port is free.
    assert c.contract_errors({"multillm_models": models}, "h") == []


def test_gateway_defaults_equal_the_roles():
    defaults = yaml.safe_load((ROOT / "roles" / "litellm_gateway" / "defaults" / "main.yml").read_text())
    for key, value in c.GATEWAY_DEFAULTS.items():
        assert defaults[key] == value, key


@pytest.mark.parametrize("address, ok", [
    ("127.0.0.1", True), ("0.0.0.0", True), ("::", True), ("::1", True), ("localhost", True), ("10.0.0.5", True),
    ("gateway.example", False), ("0.0.0.0\n", False), ("256.0.0.1", False), ("", False), (None, False),
])
def test_bind_address_form(address, ok):
    assert (c.bind_address_errors(address, "h") == []) is ok


@pytest.mark.parametrize("address, ok", [
    ("10.0.0.21", True), ("0.0.0.0", False), ("255.255.255.255", False), ("224.0.0.1", False),
    ("010.0.0.1", False), ("10.0.0.1\n", False), ("gpu-b", False),
])
def test_backend_address(address, ok):
    assert (c.backend_address_problem(address) is None) is ok


def _host(address, models=None, **contract):
    return {"contract": dict({"multillm_models": models or MODELS}, **contract), "machine": {"address": address}}


def test_rules_across_hosts():
    hosts = {"a": _host("192.0.2.1", litellm_gateway_master_key="sk-0123456789abcdef"), "b": _host("192.0.2.1"), "c": _host("192.0.2.3"),
             "d": _host("192.0.2.4", [dict(MODELS[0], model="other/model"), MODELS[1]],
                        multillm_backend_address="10.0.0.4")}
    out = c.preflight_errors(hosts, ["a", "b", "c", "d"], ["a"])
    assert ids(out["a"]) == [] and ids(out["b"]) == ["same-machine"]
    assert ids(out["c"]) == ["backend-unreachable"] and ids(out["d"]) == ["name-two-models"]


def test_every_message_ends_with_a_known_rule_id():
    errors = errors_with({"model": "x\n", "port": 1, "env": ["A=1"]}, multillm_vram_strategy="x",
                         multillm_gpu_memory_gib=math.nan)
    assert errors and all(e.rsplit("[", 1)[1].rstrip("]") in c.RULE_IDS for e in errors)


def test_a_bug_in_a_check_reaches_the_user_as_a_message_with_secrets_hidden(monkeypatch):
    def broken(contract, host):
        raise ValueError("boom with %s" % contract["multillm_hf_token"])
    monkeypatch.setattr(c, "contract_errors", broken)
    out = c.preflight_errors({"h": {"contract": {"multillm_hf_token": "hf_Sentinel0123456789"}}}, ["h"], [])
    (msg,) = out["h"]
    assert "the contract check itself failed (ValueError" in msg and "Sentinel" not in msg


@pytest.mark.parametrize("contract", [
    {"multillm_hf_tokn": "plainlooking0123"}, {"multillm_huggingface_token": "plainlooking0123"},
    {"multillm_models": [dict(MODELS[0], hf_token="plainlooking0123"), MODELS[1]]},
])
def test_a_misspelt_secret_is_hidden_even_when_it_does_not_look_like_one(contract):
    errors = c.contract_errors(dict({"multillm_models": MODELS}, **contract), "h")
    assert errors and "plainlooking0123" not in " ".join(errors) and "<hidden>" in errors[0]


def test_model_stack_preflight_refuses_what_would_be_rendered_even_without_the_contract_step():
    models = [dict(MODELS[0], model="Qwen/Q\nExecStartPre=/bin/id", env={"KVCACHED_IPC_NAME": "x"}), MODELS[1]]
    errors = c.model_stack_errors({"multillm_hf_token": "hf_a\nLD_PRELOAD=/x"}, models, "h")
    assert ids(errors) == ["hf-token", "managed-env", "model-id"]
    assert c.model_stack_errors({}, MODELS, "h") == []
