"""The model spec builder with plain inputs: argv, env, timeouts, order, mounts, recipes,
the kvcached pool names, the vLLM release matrix and the CPU mapping."""

import copy

import pytest

from ansible_collections.llmops.multillm.plugins.module_utils import _model_spec as ms

QWEN = {"name": "qwen2.5-14b-instruct", "model": "Qwen/Qwen2.5-14B-Instruct", "port": 8001,
        "gpu_memory_utilization": 0.5, "max_model_len": 32768, "health_timeout_s": 900}
OCR = {"name": "paddleocr-vl", "model": "PaddlePaddle/PaddleOCR-VL", "port": 8002, "gpu_memory_utilization": 0.3}
GPU = {"multillm_gpu_required": True}


def specs(models=None, **settings):
    return ms.model_specs(copy.deepcopy(models or [QWEN, OCR]), dict(GPU, **settings))


def test_specs_keep_the_list_order_and_chain_each_unit_to_the_previous():
    a, b, c = ({"name": n, "model": "m/" + n, "port": 9000 + i, "gpu_memory_utilization": 0.2}
               for i, n in enumerate(("c", "a", "b")))
    out = specs([a, b, c])
    assert [s["name"] for s in out] == ["c", "a", "b"]
    assert [s["index"] for s in out] == [0, 1, 2]
    assert [s["previous_unit"] for s in out] == ["", "multillm-model-c.service", "multillm-model-a.service"]
    assert [s["previous_gate_dir"] for s in out] == ["", "/run/multillm-gate/c", "/run/multillm-gate/a"]
    assert out[2]["gate"]["after"][2] == ["--previous-unit", "multillm-model-a.service"]
    assert out[0]["gate"]["after"] == []


def test_kvcached_argv_env_and_names():
    qwen, ocr = specs(multillm_vram_strategy="kvcached")
    assert qwen["command"] == [
        "vllm", "serve", "Qwen/Qwen2.5-14B-Instruct", "--host", "0.0.0.0", "--port", "8001",
        "--served-model-name", "qwen2.5-14b-instruct", "--gpu-memory-utilization", "0.5",
        "--max-model-len", "32768", "--no-enable-prefix-caching"]
    assert qwen["container"] == "multillm-model-qwen2.5-14b-instruct"
    assert qwen["unit"] == "multillm-model-qwen2.5-14b-instruct.service"
    assert qwen["image"] == "multillm-kvcached-vllm:kvcached-v0.1.5-vllm-v0.19.0"
    assert qwen["entrypoint"][:4] == ["python3", "-I", "-S", "-c"]
    assert qwen["entrypoint"][4].endswith("os.execvp(sys.argv[1], sys.argv[1:])")
    assert qwen["env"] == {
        "ENABLE_KVCACHED": "true", "KVCACHED_AUTOPATCH": "1", "KVCACHED_IPC_NAME": "multillm_qwen2-5-14b-instruct",
        "KVCACHED_MIN_RESERVED_PAGES": "0", "KVCACHED_MAX_RESERVED_PAGES": "0",
        "KVCACHED_MAX_CACHED_TOKENS": "16", "KVCACHED_PAGE_SIZE_MB": "2", "KVCACHED_PAGE_PREALLOC_ENABLED": "true",
        "VLLM_CACHE_ROOT": "/root/.cache/vllm", "TRITON_CACHE_DIR": "/root/.cache/vllm/triton"}
    assert all(isinstance(v, str) for s in (qwen, ocr) for v in s["env"].values())
    assert qwen["ipc_mode"] == "host" and qwen["shm_size"] is None
    assert qwen["device_requests"] == [{"driver": "nvidia", "count": -1, "capabilities": [["gpu"]]}]


def test_static_renders_the_slice_and_switches_kvcached_off():
    qwen, _ = specs(multillm_vram_strategy="static")
    assert qwen["image"] == "vllm/vllm-openai:v0.19.0"
    assert qwen["command"][qwen["command"].index("--gpu-memory-utilization") + 1] == "0.5"
    assert "--no-enable-prefix-caching" not in qwen["command"]
    assert qwen["env"] == {"ENABLE_KVCACHED": "false", "VLLM_CACHE_ROOT": "/root/.cache/vllm",
                           "TRITON_CACHE_DIR": "/root/.cache/vllm/triton"}
    assert (qwen["ipc_mode"], qwen["ipc_name"], qwen["shm_size"], qwen["kvctl_limit_gib"]) == ("private", "", "8g", 0)
    assert qwen["gate"]["shm_clean"] == [] and qwen["gate"]["kvctl_limit"] == []


def test_kvcached_016_renders_zero_as_cache_off_without_the_vllm_flag():
    qwen, _ = specs(model_stack_kvcached_version="0.1.6")
    assert "--no-enable-prefix-caching" not in qwen["command"]
    assert qwen["env"]["KVCACHED_MAX_CACHED_TOKENS"] == "0"


def test_model_env_merges_over_the_global_env_and_values_become_strings():
    m = dict(QWEN, env={"VLLM_LOGGING_LEVEL": "INFO", "FLAG": True, "N": 3})
    (qwen,) = specs([m], model_stack_env={"VLLM_LOGGING_LEVEL": "DEBUG", "G": 1.5})
    assert qwen["env"]["VLLM_LOGGING_LEVEL"] == "INFO"
    assert (qwen["env"]["FLAG"], qwen["env"]["N"], qwen["env"]["G"]) == ("true", "3", "1.5")
    assert "HF_TOKEN" not in qwen["env"]


def test_start_timeouts_cover_the_wait_behind_every_earlier_model():
    qwen, ocr = specs()
    # qwen 900 s, paddleocr-vl the default 900 s, plus settle (120 s) and 60 s per model.
    assert (qwen["start_timeout_s"], ocr["start_timeout_s"]) == (900 + 180, 900 + 900 + 2 * 180)
    assert (qwen["watch_timeout_s"], ocr["watch_timeout_s"]) == (900 + 120, 900 + 120)
    qwen, ocr = specs(multillm_gpu_required=False, model_stack_health_timeout_s=30)
    assert (qwen["start_timeout_s"], ocr["start_timeout_s"]) == (900 + 60, 900 + 30 + 120)
    assert "--settle" not in [line[0] for line in qwen["gate"]["health"]]


def test_gate_lines_are_one_flag_per_line():
    _, ocr = specs(models=[QWEN, dict(OCR, kvcached={"limit_gib": 6})])
    health = ocr["gate"]["health"]
    assert health[0] == ["/usr/local/libexec/multillm/multillm-model-wait", "health"]
    assert all(len(line) <= 2 and line[0].startswith("--") for line in health[1:])
    assert ["--previous-ready", "/run/multillm-gate/qwen2.5-14b-instruct/ready"] in health
    assert ["--settle"] in health
    # With a kvctl limit the model is ready once the limit is read back, not once healthy.
    assert not [line for line in health if line[0] == "--ready"]
    assert ocr["gate"]["kvctl_limit"] == [
        ["/usr/local/libexec/multillm/multillm-model-wait", "kvctl-limit"], ["--name", "paddleocr-vl"],
        ["--docker", "/usr/bin/docker"], ["--container", "multillm-model-paddleocr-vl"],
        ["--pool", "multillm_paddleocr-vl"], ["--gib", "6"], ["--ready", "/run/multillm-gate/paddleocr-vl/ready"]]


# Issue 15.2/15.3: the pool name is kvcached's, and the unit removes that pool only.
def test_kvcached_names_are_the_sanitised_pool_names():
    qwen, _ = specs(models=[dict(QWEN, kvcached={"limit_gib": 2}), OCR])
    # kvcached turns '.' into '-': the old spec passed multillm_qwen2.5-14b-instruct to kvctl and rm.
    assert qwen["ipc_name"] == "multillm_qwen2-5-14b-instruct"
    assert qwen["env"]["KVCACHED_IPC_NAME"] == "multillm_qwen2-5-14b-instruct"
    assert ["--pool", "multillm_qwen2-5-14b-instruct"] in qwen["gate"]["kvctl_limit"]
    assert qwen["gate"]["shm_clean"] == [
        ["/usr/local/libexec/multillm/multillm-model-wait", "shm-clean"], ["--pool", "multillm_qwen2-5-14b-instruct"]]


def test_the_cleanup_is_by_exact_pool_not_by_a_glob():
    a, b = (dict(QWEN, name=n, port=8001 + i) for i, n in enumerate(("alpha", "alpha-2")))
    sa, sb = specs([a, b])
    cmd = " ".join(" ".join(line) for line in sa["gate"]["shm_clean"])
    assert "*" not in cmd and "alpha-2" not in cmd
    assert ["--pool", "multillm_alpha"] in sa["gate"]["shm_clean"]
    assert ["--pool", "multillm_alpha-2"] in sb["gate"]["shm_clean"]


def test_private_ipc_needs_no_cleanup():
    qwen, _ = specs(model_stack_kvcached_ipc_mode="private")
    assert qwen["kvcached"] and qwen["ipc_mode"] == "private" and qwen["gate"]["shm_clean"] == []
    assert qwen["shm_size"] == "8g"


# Issue 15.12: kvcached and Model Runner V2, across the vLLM releases we support.
@pytest.mark.parametrize("vllm, strategy, expected", [
    ("0.19.0", "kvcached", None),   # the default image: V1 runner only
    ("0.21.9", "kvcached", None),
    ("0.22.0", "kvcached", "0"),    # V2 the default for Qwen3 dense models (#39337)
    ("0.25.0", "kvcached", "0"),    # ... for all dense models (#44443)
    ("0.26.0", "kvcached", "0"),    # measured: kvcached 0.1.6 refuses V2 here
    ("0.33.0", "kvcached", "0"),
    ("0.26.0", "static", None),     # without kvcached vLLM keeps its default
])
def test_v2_model_runner_is_switched_off_for_kvcached_from_0_22(vllm, strategy, expected):
    qwen, _ = specs(model_stack_vllm_version=vllm, multillm_vram_strategy=strategy)
    assert qwen["env"].get("VLLM_USE_V2_MODEL_RUNNER") == expected


def test_a_model_may_switch_the_v2_runner_back_on():
    (qwen,) = specs([dict(QWEN, env={"VLLM_USE_V2_MODEL_RUNNER": "1"})], model_stack_vllm_version="0.26.0")
    assert qwen["env"]["VLLM_USE_V2_MODEL_RUNNER"] == "1"


# Issue 15.6: a local directory of weights is mounted read-only at the same path.
def test_local_model_directory_is_mounted_read_only_at_the_same_path():
    (local,) = specs([dict(QWEN, model="/srv/models/qwen")])
    assert "/srv/models/qwen:/srv/models/qwen:ro" in local["volumes"]
    assert local["command"][2] == "/srv/models/qwen"
    (hub,) = specs([QWEN])
    assert hub["volumes"] == ["/var/lib/multillm/hf-cache:/root/.cache/huggingface",
                              "/run/multillm-gate/qwen2.5-14b-instruct:/run/multillm-gate:ro",
                              "/var/lib/multillm/vllm-cache/qwen2.5-14b-instruct:/root/.cache/vllm"]


# Issue 15.5: recipes.
RECIPE = ["--trust-remote-code", "--max-num-batched-tokens", "16384", "--no-enable-prefix-caching",
          "--mm-processor-cache-gb", "0"]


def test_paddleocr_vl_gets_vllms_recipe_by_its_model_id():
    _, ocr = specs(multillm_vram_strategy="static")
    assert ocr["recipe"] == "paddleocr-vl"
    assert ocr["command"][-len(RECIPE):] == RECIPE
    (local,) = specs([dict(OCR, model="/models/PaddleOCR-VL/")], multillm_vram_strategy="static")
    assert local["command"][-len(RECIPE):] == RECIPE


def test_the_recipe_adds_no_duplicate_of_the_kvcached_prefix_flag():
    _, ocr = specs(multillm_vram_strategy="kvcached")
    assert ocr["command"].count("--no-enable-prefix-caching") == 1


def test_a_models_own_flags_win_over_its_recipe():
    m = dict(OCR, extra_args=["--max-num-batched-tokens=8192", "--enable-prefix-caching"])
    (ocr,) = specs([m], multillm_vram_strategy="static")
    assert ocr["command"][-2:] == ["--max-num-batched-tokens=8192", "--enable-prefix-caching"]
    assert "16384" not in ocr["command"] and "--no-enable-prefix-caching" not in ocr["command"]
    assert "--trust-remote-code" in ocr["command"] and "--mm-processor-cache-gb" in ocr["command"]


def test_recipe_none_or_by_name():
    (ocr,) = specs([dict(OCR, recipe="none")], multillm_vram_strategy="static")
    assert "--trust-remote-code" not in ocr["command"] and ocr["recipe"] == "none"
    (other,) = specs([dict(QWEN, model="org/my-ocr", recipe="paddleocr-vl")], multillm_vram_strategy="static")
    assert other["command"][-len(RECIPE):] == RECIPE
    (qwen,) = specs([QWEN])
    assert qwen["recipe"] == "none"


# Issue 14: the CPU mapping.
def test_cpu_device_maps_in_one_place():
    qwen, ocr = specs(models=[dict(QWEN, cpu_kvcache_gib=2), OCR], model_stack_device="cpu",
                      multillm_vram_strategy="kvcached")
    assert qwen["command"][:9] == ["vllm", "serve", "Qwen/Qwen2.5-14B-Instruct", "--host", "0.0.0.0", "--port", "8001",
                                   "--served-model-name", "qwen2.5-14b-instruct"]
    assert "--gpu-memory-utilization" not in qwen["command"]
    assert (qwen["env"]["VLLM_CPU_KVCACHE_SPACE"], ocr["env"]["VLLM_CPU_KVCACHE_SPACE"]) == ("2", "1")
    for s in (qwen, ocr):
        assert s["device_requests"] == [] and not s["kvcached"] and s["ipc_name"] == ""
        assert s["env"]["ENABLE_KVCACHED"] == "false" and "KVCACHED_IPC_NAME" not in s["env"]
        assert s["image"] == "multillm-vllm-cpu:latest" and s["device"] == "cpu"
        assert s["gate"]["shm_clean"] == [] and s["gate"]["kvctl_limit"] == []
        assert "--no-enable-prefix-caching" not in qwen["command"]


def test_fault_injector_runs_the_fault_injector_server():
    (qwen,) = specs([dict(QWEN, extra_args=["--load-delay", "2"])], model_stack_server="fault_injector",
                    multillm_gpu_required=False)
    assert qwen["command"] == ["python3", "/usr/local/bin/fault_injector.py", "--host", "0.0.0.0", "--port", "8001",
                               "--model", "qwen2.5-14b-instruct", "--max-model-len", "32768", "--load-delay", "2"]
    assert qwen["image"] == "multillm-fault-injector:latest" and qwen["device_requests"] == []
    # The kvcached environment is the same whatever server runs (kvcached 0.1.5: 0 is unlimited).
    assert qwen["env"]["KVCACHED_MAX_CACHED_TOKENS"] == "16"


def test_ports_and_endpoints_follow_the_backend_address():
    qwen, ocr = specs()
    assert qwen["published_ports"] == ["127.0.0.1:8001:8001"]
    assert ms.model_endpoints([QWEN, OCR], GPU)[1] == {
        "name": "paddleocr-vl", "model": "PaddlePaddle/PaddleOCR-VL", "unit": "multillm-model-paddleocr-vl.service",
        "container": "multillm-model-paddleocr-vl", "host": "127.0.0.1", "port": 8002,
        "api_base": "http://127.0.0.1:8002/v1"}
    fleet = dict(GPU, multillm_backend_address="10.0.0.21", model_stack_name_prefix="llm-")
    (spec,) = ms.model_specs([QWEN], fleet)
    assert spec["published_ports"] == ["127.0.0.1:8001:8001", "10.0.0.21:8001:8001"]
    assert spec["health_url"] == "http://127.0.0.1:8001/health"
    assert ms.model_endpoints([QWEN], fleet) == [{
        "name": "qwen2.5-14b-instruct", "model": "Qwen/Qwen2.5-14B-Instruct",
        "unit": "llm-qwen2.5-14b-instruct.service", "container": "llm-qwen2.5-14b-instruct",
        "host": "10.0.0.21", "port": 8001, "api_base": "http://10.0.0.21:8001/v1"}]


def test_network_and_labels():
    qwen, _ = specs()
    assert qwen["network"] == "multillm-models"
    assert qwen["labels"] == {"io.llmops.multillm.managed": "true", "io.llmops.multillm.model": "qwen2.5-14b-instruct",
                              "io.llmops.multillm.unit": "multillm-model-qwen2.5-14b-instruct.service"}
    qwen, _ = specs(model_stack_network="")
    assert qwen["network"] is None


def test_the_filters_are_thin_wrappers():
    from ansible_collections.llmops.multillm.plugins.filter.multillm import FilterModule
    filters = FilterModule().filters()
    assert filters["model_specs"]([QWEN], GPU) == ms.model_specs([QWEN], GPU)
    assert filters["model_endpoints"]([QWEN]) == ms.model_endpoints([QWEN])
    assert filters["model_stack_errors"]({}, [QWEN], "h") == []


def test_triton_cache_lives_in_the_vllm_cache_volume_and_can_be_moved():
    # Inside the mounted VLLM_CACHE_ROOT, so a recreated container keeps vLLM's warm-up kernels.
    qwen, _ = specs(multillm_vram_strategy="static")
    assert qwen["env"]["TRITON_CACHE_DIR"].startswith(qwen["env"]["VLLM_CACHE_ROOT"] + "/")
    assert "%s:%s" % (qwen["vllm_cache_dir"], qwen["env"]["VLLM_CACHE_ROOT"]) in qwen["volumes"]
    # The host's model_stack_env and then the model's own env may move it.
    qwen, _ = specs(multillm_vram_strategy="static", model_stack_env={"TRITON_CACHE_DIR": "/srv/triton"})
    assert qwen["env"]["TRITON_CACHE_DIR"] == "/srv/triton"
    (qwen,) = specs([dict(QWEN, env={"TRITON_CACHE_DIR": "/tmp/t"})], multillm_vram_strategy="static")
    assert qwen["env"]["TRITON_CACHE_DIR"] == "/tmp/t"
