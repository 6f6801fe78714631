"""vram_check's per-container view, run in this interpreter through the module's main().

These tests need a /proc tree of their own (which cgroup each GPU process sits in), so they run
the module in-process with the real binding pointed at the fake libnvidia-ml.so.1 (preloaded
with ctypes, as LD_LIBRARY_PATH cannot change after start-up) and PROC_ROOT pointed at a
temporary tree; the Docker Engine API is the stand-in from the module_utils tests.
"""

import ctypes
import json

import pytest

import pynvml
try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19, down to the floor in meta/runtime.yml (make floor)
    import contextlib

    from ansible.module_utils import basic
    from ansible.module_utils.common.text.converters import to_bytes

    @contextlib.contextmanager
    def patch_module_args(args):
        saved = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = saved

from ansible_collections.llmops.multillm.plugins.module_utils import _vram_containers
from ansible_collections.llmops.multillm.plugins.modules import vram_check

from vram_fakes import FAKE_PID, FakeDockerApi, Gpu, write_state

QWEN = "1" * 64
OCR = "2" * 64
GIB_MIB = 1024


@pytest.fixture
def host(fake_libs, tmp_path, monkeypatch):
    """A host with one GPU: qwen (40 GiB), paddleocr-vl (16 GiB) and a bare process (1 GiB)."""
    lib = ctypes.CDLL(str(fake_libs["full"] / "libnvidia-ml.so.1"))
    monkeypatch.setattr(pynvml, "nvmlLib", lib)
    monkeypatch.setattr(pynvml, "_nvmlGetFunctionPointer_cache", {})
    state = tmp_path / "state"
    monkeypatch.setenv("FAKE_NVML_STATE", str(state))
    write_state(state, [Gpu(samples=[(57 * GIB_MIB, 600)],
                            procs=[(FAKE_PID, 40 * GIB_MIB), (FAKE_PID + 1, 16 * GIB_MIB), (FAKE_PID + 2, GIB_MIB)])])
    proc = tmp_path / "proc"
    for pid, cgroup, comm in ((FAKE_PID, "0::/system.slice/docker-%s.scope" % QWEN, "vllm"),
                              (FAKE_PID + 1, "12:memory:/docker/%s" % OCR, "vllm"),
                              (FAKE_PID + 2, "0::/user.slice/user-0.slice/session-3.scope", "python3")):
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "cgroup").write_text(cgroup + "\n")
        (proc / str(pid) / "comm").write_text(comm + "\n")
    monkeypatch.setattr(_vram_containers, "PROC_ROOT", str(proc))
    return tmp_path


def run(args, capsys):
    with patch_module_args(dict({"settle_samples": 1}, **args)):
        with pytest.raises(SystemExit) as exited:
            vram_check.main()
    result = json.loads(capsys.readouterr().out)
    result["_rc"] = exited.value.code
    return result


@pytest.fixture
def docker(host):
    with FakeDockerApi(str(host / "docker.sock"), {QWEN: "qwen2.5-14b", OCR: "paddleocr-vl"}):
        yield "unix://%s" % (host / "docker.sock")


def test_processes_carry_their_container_names(docker, capsys):
    result = run({"docker_host": docker}, capsys)
    assert result["_rc"] == 0, result["msg"]
    procs = {p["pid"]: p for p in result["gpus"][0]["processes"]}
    assert procs[FAKE_PID]["container"] == "qwen2.5-14b" and procs[FAKE_PID]["container_id"] == QWEN
    assert procs[FAKE_PID + 1]["container"] == "paddleocr-vl"
    assert "container" not in procs[FAKE_PID + 2] and procs[FAKE_PID + 2]["command"] == "python3"
    assert result["containers"]["qwen2.5-14b"]["used_gib"] == 40.0
    assert result["containers"]["paddleocr-vl"]["pids"] == [FAKE_PID + 1]
    assert result["notes"] == []


def test_container_expectations_met(docker, capsys):
    result = run({"docker_host": docker, "expected_gib": 57, "tolerance_gib": 1,
                  "containers": {"qwen2.5-14b": {"expected_gib": 40, "tolerance_gib": 0.5},
                                 "paddleocr-vl": 16}}, capsys)
    assert result["_rc"] == 0, result["msg"]
    assert result["containers"]["qwen2.5-14b"]["ok"] is True
    assert result["containers"]["paddleocr-vl"]["tolerance_gib"] == 1.0  # the module's tolerance_gib
    assert "2 container expectations met" in result["msg"]


def test_the_container_that_is_off_is_named(docker, capsys):
    result = run({"docker_host": docker, "expected_gib": 57,
                  "containers": {"qwen2.5-14b": 40, "paddleocr-vl": {"expected_gib": 14, "tolerance_gib": 1}}}, capsys)
    assert result["_rc"] == 1
    msg = result["msg"]
    # the total is within 57 ± 2, but one model is not where it should be
    assert "used VRAM is" not in msg
    assert "container paddleocr-vl uses 16.00 GiB, expected 14.00 ± 1.00 GiB (off by +2.00 GiB)" in msg
    assert "qwen2.5-14b uses" not in msg
    assert "pid %d [container qwen2.5-14b] 40.00 GiB" % FAKE_PID in msg
    assert "pid %d (python3) 1.00 GiB" % (FAKE_PID + 2) in msg
    assert result["containers"]["paddleocr-vl"]["ok"] is False
    assert result["containers"]["qwen2.5-14b"]["ok"] is True


def test_an_expected_container_without_a_gpu_process_fails(docker, capsys):
    result = run({"docker_host": docker, "containers": {"whisper": 5}}, capsys)
    assert result["_rc"] == 1
    assert "container whisper has no process on the selected GPUs, expected 5.00 ± 2.00 GiB" in result["msg"]
    assert result["containers"]["whisper"]["used_gib"] == 0.0


def test_an_expected_container_of_about_zero_may_be_absent(docker, capsys):
    assert run({"docker_host": docker, "containers": {"whisper": {"expected_gib": 0, "tolerance_gib": 0}}},
               capsys)["_rc"] == 0


def test_without_the_docker_socket_short_ids_stand_in_and_ids_still_match(host, capsys):
    result = run({"docker_host": "unix://%s/none.sock" % host,
                  "containers": {QWEN[:12]: 40, OCR: {"expected_gib": 16, "tolerance_gib": 0}}}, capsys)
    assert result["_rc"] == 0, result["msg"]
    procs = {p["pid"]: p for p in result["gpus"][0]["processes"]}
    assert procs[FAKE_PID]["container"] == QWEN[:12]
    assert any("cannot ask the Docker daemon" in note for note in result["notes"])
    assert set(result["containers"]) == {QWEN[:12], OCR[:12]}


def test_docker_host_comes_from_the_environment(host, capsys, monkeypatch):
    with FakeDockerApi(str(host / "env.sock"), {QWEN: "from-env"}):
        monkeypatch.setenv("DOCKER_HOST", "unix://%s" % (host / "env.sock"))
        result = run({}, capsys)
    assert result["gpus"][0]["processes"][0]["container"] == "from-env"
