"""vram_check on a host with several GPUs: expectations per GPU index or UUID, containers held
to their GPUs, a GPU the inventory names but the host lacks, and the per-GPU summary.

The fake libnvidia-ml.so.1 reports three GPUs; the /proc tree and the Docker API stand-in
(as in test_vram_check_containers.py) put three containers on them:
GPU 0: a (20 GiB) and tp (30 GiB); GPU 1: tp (30 GiB) and b (10 GiB); GPU 2: nothing.
"""

import ctypes
import json

import pytest

import pynvml

from ansible_collections.llmops.multillm.plugins.module_utils import _vram_containers
from ansible_collections.llmops.multillm.plugins.modules import vram_check

from test_vram_check_containers import patch_module_args
from vram_fakes import FAKE_PID, FakeDockerApi, Gpu, write_state

A, B, TP = "a" * 64, "b" * 64, "c" * 64
GIB_MIB = 1024
UUIDS = ["GPU-00000000-0000-0000-0000-00000000000%d" % i for i in range(3)]


@pytest.fixture
def host(fake_libs, tmp_path, monkeypatch):
    lib = ctypes.CDLL(str(fake_libs["full"] / "libnvidia-ml.so.1"))
    monkeypatch.setattr(pynvml, "nvmlLib", lib)
    monkeypatch.setattr(pynvml, "_nvmlGetFunctionPointer_cache", {})
    state = tmp_path / "state"
    monkeypatch.setenv("FAKE_NVML_STATE", str(state))
    # tp is one container with a worker process per GPU, as vLLM runs tensor parallelism.
    write_state(state, [
        Gpu(samples=[(50 * GIB_MIB, 600)], procs=[(FAKE_PID, 20 * GIB_MIB), (FAKE_PID + 2, 30 * GIB_MIB)]),
        Gpu(samples=[(40 * GIB_MIB, 600)], procs=[(FAKE_PID + 3, 30 * GIB_MIB), (FAKE_PID + 1, 10 * GIB_MIB)]),
        Gpu(samples=[(0, 600)]),
    ])
    proc = tmp_path / "proc"
    for pid, cid in ((FAKE_PID, A), (FAKE_PID + 1, B), (FAKE_PID + 2, TP), (FAKE_PID + 3, TP)):
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "cgroup").write_text("0::/system.slice/docker-%s.scope\n" % cid)
        (proc / str(pid) / "comm").write_text("vllm\n")
    monkeypatch.setattr(_vram_containers, "PROC_ROOT", str(proc))
    with FakeDockerApi(str(tmp_path / "docker.sock"), {A: "a", B: "b", TP: "tp"}):
        yield "unix://%s" % (tmp_path / "docker.sock")


def run(host, args, capsys):
    with patch_module_args(dict({"settle_samples": 1, "docker_host": host}, **args)):
        with pytest.raises(SystemExit) as exited:
            vram_check.main()
    result = json.loads(capsys.readouterr().out)
    result["_rc"] = exited.value.code
    return result


def ok(result):
    assert result["_rc"] == 0, result["msg"]
    return result


def failed(result):
    assert result["_rc"] == 1 and result["failed"], result
    return result


def test_each_gpu_is_held_to_its_own_expectation(host, capsys):
    result = ok(run(host, {"gpus": {"0": 50, "1": {"expected_gib": 40, "tolerance_gib": 0.5}, "2": {"max_gib": 1}}},
                    capsys))
    report = dict((g["index"], g) for g in result["gpu_report"])
    assert report[0]["containers"] == {"a": 20.0, "tp": 30.0} and report[0]["ok"] is True
    assert (report[1]["expected_gib"], report[1]["tolerance_gib"], report[1]["used_gib"]) == (40.0, 0.5, 40.0)
    assert report[2]["containers"] == {} and report[2]["max_gib"] == 1.0 and report[2]["ok"] is True
    assert "3 GPU expectations met" in result["msg"]
    # the summary shows each GPU
    assert result["gpu_summary"] == [
        "GPU 0 50.00 GiB, expected 50.00 ± 2.00 GiB: ok; a 20.00 GiB, tp 30.00 GiB",
        "GPU 1 40.00 GiB, expected 40.00 ± 0.50 GiB: ok; b 10.00 GiB, tp 30.00 GiB",
        "GPU 2 0.00 GiB, max 1.00 GiB: ok; no container"]
    assert "Per GPU: GPU 0 50.00 GiB" in result["msg"]


def test_a_gpu_off_its_expectation_is_named_with_what_is_on_it(host, capsys):
    result = failed(run(host, {"gpus": {"0": 50, "1": 30}}, capsys))
    assert "GPU 1 uses 40.00 GiB, expected 30.00 ± 2.00 GiB (off by +10.00 GiB); on it: container b 10.00 GiB, " \
           "container tp 30.00 GiB" in result["msg"]
    assert "GPU 0 uses" not in result["msg"]


def test_a_gpu_named_by_uuid_is_found_by_its_uuid(host, capsys):
    result = ok(run(host, {"gpus": {UUIDS[1]: 40}, "devices": [0]}, capsys))
    assert [g["index"] for g in result["gpus"]] == [0, 1]   # named GPUs are checked beyond devices


def test_a_gpu_the_inventory_names_but_the_host_lacks_is_named(host, capsys):
    result = failed(run(host, {"gpus": {"3": None}}, capsys))
    assert result["msg"].startswith("GPU 3 not present: this host has 3 GPU(s), indexes 0 to 2")
    result = failed(run(host, {"containers": {"tp": {"gpus": [0, 5]}}}, capsys))
    assert result["msg"].startswith("GPU 5 not present")
    result = failed(run(host, {"gpus": {"GPU-99999999-0000-0000-0000-000000000000": 1}}, capsys))
    assert "GPU GPU-99999999-0000-0000-0000-000000000000 not present" in result["msg"]
    assert UUIDS[2] in result["msg"]    # the UUIDs the host has


def test_containers_on_their_gpus_pass_and_report_where_they_run(host, capsys):
    result = ok(run(host, {"containers": {"tp": {"gpus": [0, 1], "expected_gib": 60}, "a": {"gpus": [UUIDS[0]]},
                                          "b": {"gpus": ["1"]}}}, capsys))
    assert result["containers"]["tp"]["gpus"] == [0, 1] and result["containers"]["tp"]["used_gib"] == 60.0
    assert result["containers"]["a"]["gpus"] == [0]
    assert "1 container expectation met" in result["msg"] and "3 containers on their GPUs" in result["msg"]


def test_a_container_off_its_gpus_is_named_with_the_gpu(host, capsys):
    result = failed(run(host, {"containers": {"tp": {"gpus": [0, 2]}, "b": {"gpus": [2]}}}, capsys))
    assert "container tp should run on GPU 0, GPU 2 but has no process on GPU 2 and runs on GPU 1, which is not " \
           "one of its GPUs" in result["msg"]
    assert "container b should run on GPU 2 but has no process on GPU 2 and runs on GPU 1" in result["msg"]


def test_a_container_with_no_process_at_all_is_named(host, capsys):
    result = failed(run(host, {"containers": {"gone": {"gpus": [1]}}}, capsys))
    assert "container gone should run on GPU 1 but has no process on GPU 1" in result["msg"]


@pytest.mark.parametrize("args, text", [
    ({"gpus": {"first": 1}}, "gpus['first']=1: name GPUs by index (0, 1, ...) or UUID (GPU-...), each once"),
    ({"gpus": {"0": "lots"}}, "give a number of GiB, null, or a dictionary"),
    ({"gpus": {"0": {"expected_gib": "lots"}}}, "must be numbers"),
    ({"gpus": {"0": {"expected": 1}}}, "a dictionary with any of expected_gib, tolerance_gib and max_gib"),
    ({"gpus": {"0": -1}}, "must be finite, 0 or more"),
    ({"gpus": {"0": {"max_gib": "nan"}}}, "must be finite, 0 or more"),
    ({"gpus": {"0": {"expected_gib": "inf"}}}, "must be finite, 0 or more"),
    ({"containers": {"tp": {"gpus": []}}}, "gpus must be a non-empty list"),
    ({"containers": {"tp": {"gpus": [0, 0]}}}, "each once"),
])
def test_bad_per_gpu_input_is_named(host, capsys, args, text):
    result = failed(run(host, args, capsys))
    assert text in result["msg"], result["msg"]
