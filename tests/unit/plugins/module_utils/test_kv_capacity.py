"""KV capacity from a fake vLLM /metrics text, and the check against a model's plan."""

import pytest

from ansible_collections.llmops.multillm.plugins.module_utils import _kv_capacity as kv

# The shape vLLM's Prometheus logger gives (an info-style gauge, every CacheConfig field a label);
# the figures are the H200 run's (docs/benchmarks.md, 2026-12-04): static 3,497 blocks of 16.
STATIC_14B = "\n".join([
    "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig",
    "# TYPE vllm:cache_config_info gauge",
    'vllm:cache_config_info{block_size="16",cache_dtype="auto",calculate_kv_scales="False",'
    'cpu_offload_gb="0",enable_prefix_caching="True",engine="0",gpu_memory_utilization="0.2836",'
    'is_attention_free="False",num_cpu_blocks="None",num_gpu_blocks="3497",'
    'num_gpu_blocks_override="None",prefix_caching_hash_algo="sha256",sliding_window="None",'
    'swap_space="4",swap_space_bytes="4294967296"} 1.0',
    "# HELP vllm:num_requests_running Number of requests in model execution batches.",
    'vllm:num_requests_running{engine="0",model_name="qwen2.5-14b-instruct"} 0.0',
])
KVCACHED_14B = STATIC_14B.replace('num_gpu_blocks="3497"', 'num_gpu_blocks="3360"')
# The concurrent start of 2026-12-02: 41.21 -> 29.64 GiB, the same 28% cut in blocks.
SQUEEZED_14B = STATIC_14B.replace('num_gpu_blocks="3497"', 'num_gpu_blocks="2515"')


def test_capacity_is_blocks_times_block_size():
    assert kv.kv_capacity(STATIC_14B) == {"tokens": 55952, "blocks": 3497, "block_size": 16}


def test_other_metrics_and_comments_are_ignored():
    assert kv.cache_configs(STATIC_14B)[0]["num_gpu_blocks"] == "3497"
    assert len(kv.cache_configs(STATIC_14B)) == 1


def test_a_quoted_label_value_does_not_break_the_parse():
    text = STATIC_14B.replace('cache_dtype="auto"', 'cache_dtype="a \\"b\\" c,d=e"')
    assert kv.cache_configs(text)[0]["cache_dtype"] == 'a "b" c,d=e'
    assert kv.kv_capacity(text)["tokens"] == 55952


def test_several_engines_take_the_largest_not_the_sum():
    two = STATIC_14B + "\n" + STATIC_14B.splitlines()[2].replace('engine="0"', 'engine="1"')
    assert kv.kv_capacity(two)["tokens"] == 55952


@pytest.mark.parametrize("text, says", [
    ("", "no vllm:cache_config_info"),
    ("vllm:num_requests_running 0.0\n", "no vllm:cache_config_info"),
    (STATIC_14B.replace('num_gpu_blocks="3497"', 'num_gpu_blocks="None"'), "num_gpu_blocks='None'"),
    (STATIC_14B.replace('block_size="16"', 'block_size="x"'), "block_size='x'"),
])
def test_missing_or_unset_figures_raise_saying_what(text, says):
    with pytest.raises(ValueError, match=says.replace("(", r"\(")):
        kv.kv_capacity(text)


def test_floor_is_the_plan_less_ten_percent_rounded_up():
    assert kv.kv_floor(53760) == 48384
    assert kv.kv_floor(55953) == 50358  # 50357.7 -> 50358


def test_kvcached_accounting_passes_a_static_plan_and_a_concurrent_start_fails():
    plan = kv.kv_capacity(STATIC_14B)["tokens"]
    assert kv.kv_error("h", "qwen", 0, "u.service", kv.kv_capacity(KVCACHED_14B)["tokens"], plan) == ""
    msg = kv.kv_error("gpu1", "qwen2.5-14b-instruct", 0, "multillm-model-qwen2.5-14b-instruct.service",
                      kv.kv_capacity(SQUEEZED_14B)["tokens"], plan)
    for part in ("host gpu1", "model qwen2.5-14b-instruct", "multillm_models[0]", "40240 tokens",
                 "kv_tokens=55952", "at least 50357", "28.1% short", "systemctl restart "
                 "multillm-model-qwen2.5-14b-instruct.service", "[kv-capacity]"):
        assert part in msg


def test_exactly_at_the_floor_passes_one_below_fails():
    assert kv.kv_error("h", "m", 0, "u", 48384, 53760) == ""
    assert kv.kv_error("h", "m", 0, "u", 48383, 53760) != ""


def test_no_plan_is_never_an_error():
    assert kv.kv_error("h", "m", 0, "u", 1, None) == ""
    assert "no plan" in kv.kv_line("m", {"tokens": 16, "blocks": 1, "block_size": 16}, None)
