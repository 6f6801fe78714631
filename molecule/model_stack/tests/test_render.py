"""The real vLLM command and environment, rendered by the role's own spec task file on the
control node, so the role's variables reach the spec builder (its logic is unit-tested in
tests/unit/plugins/module_utils/test_model_spec.py). Uses the reference models of
inventories/h100 in both strategies."""

import json
import os
import subprocess
import sys
import tempfile

SCENARIO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT_DIR = os.path.dirname(os.path.dirname(SCENARIO_DIR))

MODELS = [
    {"name": "qwen2.5-14b-instruct", "model": "Qwen/Qwen2.5-14B-Instruct", "port": 8001,
     "gpu_memory_utilization": 0.5, "max_model_len": 32768, "health_timeout_s": 900},
    {"name": "paddleocr-vl", "model": "PaddlePaddle/PaddleOCR-VL", "port": 8002, "gpu_memory_utilization": 0.3,
     "max_model_len": 16384, "extra_args": ["--trust-remote-code", "--max-num-batched-tokens=16384"],
     "env": {"VLLM_LOGGING_LEVEL": "INFO"}, "kvcached": {"limit_gib": 6, "max_cached_tokens": 1024}},
]


def render(**extra):
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "vars.json"), "w") as f:
            json.dump(dict({"multillm_models": MODELS, "multillm_gpu_required": True, "model_stack_server": "vllm",
                            "multillm_hf_token": "hf_render_secret_0123456789"}, **extra), f)
        out = os.path.join(tmp, "specs.json")
        proc = subprocess.run(
            ["ansible-playbook", "-i", "localhost,", os.path.join(SCENARIO_DIR, "render.yml"),
             "-e", "@" + os.path.join(tmp, "vars.json"), "-e", "render_out=" + out,
             "-e", "ansible_python_interpreter=" + sys.executable],
            capture_output=True, text=True, cwd=PROJECT_DIR, check=False,
            env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(PROJECT_DIR, "ansible.cfg")))
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        assert "hf_render_secret" not in proc.stdout + proc.stderr
        with open(out) as f:
            return {s["name"]: s for s in json.load(f)}


def test_kvcached_renders_the_full_vllm_serve_command_and_unique_kvcached_env():
    specs = render(multillm_vram_strategy="kvcached")
    qwen, ocr = specs["qwen2.5-14b-instruct"], specs["paddleocr-vl"]
    # The default is the local build from kvcached's own Dockerfile (no upstream tag is proven to exist).
    assert qwen["image"] == "multillm-kvcached-vllm:kvcached-v0.1.5-vllm-v0.19.0"
    # The container runs the server behind the gate: python3 waits for the release file, then
    # executes the command, which is the whole vllm serve argv.
    assert qwen["entrypoint"][0] == "python3" and "/run/multillm-gate/release" in qwen["entrypoint"][-1]
    assert qwen["entrypoint"][-1].rstrip().endswith("os.execvp(sys.argv[1], sys.argv[1:])")
    assert qwen["command"] == [
        "vllm", "serve", "Qwen/Qwen2.5-14B-Instruct", "--host", "0.0.0.0", "--port", "8001",
        "--served-model-name", "qwen2.5-14b-instruct", "--gpu-memory-utilization", "0.5",
        "--max-model-len", "32768", "--no-enable-prefix-caching"]
    # PaddleOCR-VL's recipe, less the flags the model sets itself, then the model's own arguments.
    assert ocr["command"][-5:] == ["--no-enable-prefix-caching", "--mm-processor-cache-gb", "0",
                                   "--trust-remote-code", "--max-num-batched-tokens=16384"]
    assert ocr["recipe"] == "paddleocr-vl"
    assert ocr["env"]["KVCACHED_MAX_CACHED_TOKENS"] == "1024"
    assert ocr["env"]["VLLM_LOGGING_LEVEL"] == "INFO"
    for spec in (qwen, ocr):
        env = spec["env"]
        assert env["ENABLE_KVCACHED"] == "true" and env["KVCACHED_AUTOPATCH"] == "1"
        assert env["KVCACHED_MIN_RESERVED_PAGES"] == env["KVCACHED_MAX_RESERVED_PAGES"] == "0"
        assert "HF_TOKEN" not in env, "the token must reach the container through the env file only"
        assert spec["ipc_mode"] == "host"
    # kvcached's own name for the pool ('.' becomes '-'), the one kvctl and the cleanup use.
    assert (qwen["env"]["KVCACHED_IPC_NAME"], qwen["ipc_name"]) == ("multillm_qwen2-5-14b-instruct",) * 2
    assert (qwen["previous_unit"], ocr["previous_unit"]) == ("", "multillm-model-qwen2.5-14b-instruct.service")
    assert (qwen["kvctl_limit_gib"], ocr["kvctl_limit_gib"]) == (0, 6)
    assert (qwen["gate_dir"], ocr["previous_gate_dir"]) == ("/run/multillm-gate/qwen2.5-14b-instruct",) * 2
    assert ocr["gate_dir"] == "/run/multillm-gate/paddleocr-vl" and qwen["previous_gate_dir"] == ""
    # systemd's start timeout of a later model covers the wait behind the earlier ones:
    # qwen 900 s, paddleocr-vl the default 900 s, plus settle (120 s) and 60 s per model.
    assert (qwen["start_timeout_s"], ocr["start_timeout_s"]) == (900 + 180, 900 + 900 + 2 * 180)


def test_static_renders_the_slice_and_switches_kvcached_off():
    specs = render(multillm_vram_strategy="static")
    qwen = specs["qwen2.5-14b-instruct"]
    assert qwen["image"] == "vllm/vllm-openai:v0.19.0"
    assert qwen["command"][qwen["command"].index("--gpu-memory-utilization") + 1] == "0.5"
    assert "--no-enable-prefix-caching" not in qwen["command"]
    # vLLM's compile cache lives on the host volume of this model (a warm restart).
    assert qwen["env"] == {"ENABLE_KVCACHED": "false", "VLLM_CACHE_ROOT": "/root/.cache/vllm",
                           "TRITON_CACHE_DIR": "/root/.cache/vllm/triton"}
    assert qwen["ipc_mode"] == "private" and qwen["ipc_name"] == ""


def test_kvcached_016_renders_zero_as_cache_off_without_the_vllm_flag():
    specs = render(multillm_vram_strategy="kvcached", model_stack_kvcached_version="0.1.6")
    qwen = specs["qwen2.5-14b-instruct"]
    assert "--no-enable-prefix-caching" not in qwen["command"]
    assert qwen["env"]["KVCACHED_MAX_CACHED_TOKENS"] == "0"
