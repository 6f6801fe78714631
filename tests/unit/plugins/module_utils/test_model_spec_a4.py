"""Issue 20 item 4 and issue 15 item 11 in the spec: the per-model vLLM cache volume and what
the KV check after the gate reads."""

from ansible_collections.llmops.multillm.plugins.module_utils import _model_spec as ms

QWEN = {"name": "qwen2.5-14b-instruct", "model": "Qwen/Qwen2.5-14B-Instruct", "port": 8001,
        "gpu_memory_utilization": 0.5, "kv_tokens": 53760}
OCR = {"name": "paddleocr-vl", "model": "PaddlePaddle/PaddleOCR-VL", "port": 8002, "gpu_memory_utilization": 0.3}


def test_each_model_gets_its_own_vllm_cache_folder_mounted_where_vllm_cache_root_points():
    for strategy in ("kvcached", "static"):
        qwen, ocr = ms.model_specs([QWEN, OCR], {"multillm_vram_strategy": strategy})
        for spec in (qwen, ocr):
            folder = "/var/lib/multillm/vllm-cache/" + spec["name"]
            assert spec["vllm_cache_dir"] == folder
            assert folder + ":" + spec["env"]["VLLM_CACHE_ROOT"] in spec["volumes"]
            assert spec["env"]["VLLM_CACHE_ROOT"] == "/root/.cache/vllm"
        assert qwen["vllm_cache_dir"] != ocr["vllm_cache_dir"]


def test_a_models_own_vllm_cache_root_cannot_point_away_from_the_volume():
    (qwen,) = ms.model_specs([dict(QWEN, env={"VLLM_CACHE_ROOT": "/tmp/elsewhere"})])
    assert qwen["env"]["VLLM_CACHE_ROOT"] == "/root/.cache/vllm"


def test_the_cpu_build_keeps_its_cache_too():
    (qwen,) = ms.model_specs([QWEN], {"model_stack_device": "cpu"})
    assert "/var/lib/multillm/vllm-cache/qwen2.5-14b-instruct:/root/.cache/vllm" in qwen["volumes"]


def test_the_fault_injector_gets_no_vllm_cache():
    (qwen,) = ms.model_specs([QWEN], {"model_stack_server": "fault_injector"})
    assert qwen["vllm_cache_dir"] == "" and "VLLM_CACHE_ROOT" not in qwen["env"]
    assert not [v for v in qwen["volumes"] if "vllm-cache" in v]


def test_the_kv_check_reads_the_models_metrics_against_its_plan():
    qwen, ocr = ms.model_specs([QWEN, OCR])
    assert (qwen["metrics_url"], qwen["kv_tokens"]) == ("http://127.0.0.1:8001/metrics", 53760)
    assert (ocr["metrics_url"], ocr["kv_tokens"]) == ("http://127.0.0.1:8002/metrics", None)


# The contract knows kv_tokens (preflight refuses an unknown key) and holds it to a whole number.
def test_the_contract_accepts_a_kv_plan_and_refuses_a_bad_one():
    from ansible_collections.llmops.multillm.plugins.module_utils import _contract as c
    assert c.contract_errors({"multillm_models": [QWEN, OCR]}, "h") == []
    for bad in (0, -5, 1.5, "many", c.KV_TOKENS_MAX + 1):
        errors = c.contract_errors({"multillm_models": [dict(QWEN, kv_tokens=bad), OCR]}, "h")
        assert len(errors) == 1 and ".kv_tokens=" in errors[0] and "[whole-number]" in errors[0], errors
