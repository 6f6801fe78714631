"""The fault injector (images/fault-injector) under vLLM's own command line, as model_stack renders
it for model_stack_server: vllm, so one model entry with its image injects a fault on a vLLM host."""

import importlib.util
import pathlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = pathlib.Path(__file__).resolve()
IMAGE_DIR = HERE.parents[3] / "images" / "fault-injector"
spec = importlib.util.spec_from_file_location("fault_injector", IMAGE_DIR / "fault_injector.py")
fi = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fi)


def test_vllm_serve_argv_maps_the_served_name_and_ignores_vllm_s_own_flags():
    args = fi.parse_args(["serve", "/models/qwen2-tiny", "--host", "0.0.0.0", "--port", "8001",
                          "--served-model-name", "broken", "--gpu-memory-utilization", "0.3", "--enforce-eager",
                          "--max-model-len", "512", "--fail-mode", "never-healthy", "--load-delay", "1"])
    assert (args.model, args.host, args.port, args.max_model_len) == ("broken", "0.0.0.0", 8001, 512)
    assert (args.fail_mode, args.load_delay) == ("never-healthy", 1.0)
    assert args.ignored == ["--gpu-memory-utilization", "0.3", "--enforce-eager"]


def test_the_equals_form_of_the_served_name_and_the_own_cli_stay_strict():
    assert fi.parse_args(["serve", "m", "--served-model-name=x"]).model == "x"
    own = fi.parse_args(["--model", "y", "--port", "9"])
    assert (own.model, own.port, own.ignored) == ("y", 9, [])
    try:
        fi.parse_args(["--model", "y", "--enforce-eager"])
    except SystemExit as exc:
        assert exc.code == 2  # its own command line still refuses unknown flags
    else:
        raise AssertionError("an unknown flag was accepted outside `serve`")


def test_the_image_s_vllm_command_runs_the_injector_never_healthy():
    wrapper = (IMAGE_DIR / "vllm").read_text()
    assert wrapper.startswith("#!/bin/sh\n") and 'exec python3 /usr/local/bin/fault_injector.py "$@"' in wrapper
    assert "vllm" in (IMAGE_DIR / "Dockerfile").read_text().split("COPY", 1)[1].splitlines()[0]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, str(IMAGE_DIR / "fault_injector.py"), "serve", "injector/broken",
                             "--host", "127.0.0.1", "--port", str(port), "--served-model-name", "broken",
                             "--enforce-eager", "--load-delay", "0.2", "--fail-mode", "never-healthy"],
                            stderr=subprocess.PIPE, text=True)

    def health():
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/health" % port, timeout=1) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return None

    try:
        deadline = time.time() + 10
        while health() is None and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # past the load delay: still not healthy
        assert health() == 503
    finally:
        proc.terminate()
        err = proc.communicate(timeout=10)[1]
    assert "fault-injector model=broken event=loading_stuck" in err
    assert "ignored=--enforce-eager" in err
