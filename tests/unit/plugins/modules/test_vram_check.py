"""vram_check end to end at the NVML boundary.

Each test writes what the fake GPUs report, then runs the module in a fresh interpreter with the
real nvidia-ml-py binding loading the fake libnvidia-ml.so.1 through LD_LIBRARY_PATH (JSON
arguments in, JSON result out, exit code 1 on failure), as Ansible's module runner does.
"""

import ctypes.util

import pytest

from vram_fakes import FAKE_PID, Gpu

FAST = {"settle_interval": 0.01, "settle_samples": 1}


def ok(result):
    assert result["_rc"] == 0 and not result.get("failed"), result.get("msg")
    assert result["changed"] is False
    return result


def failed(result):
    assert result["_rc"] == 1 and result["failed"] is True, result
    assert result["changed"] is False
    return result


# -- what is read --------------------------------------------------------------------------------

def test_used_is_the_v2_figure_and_reserved_is_reported_apart(run_module):
    gpu = Gpu(samples=[(10240, 614)], procs=[(FAKE_PID, 10240)])
    result = ok(run_module(FAST, [gpu]))
    (g,) = result["gpus"]
    assert (g["used_mib"], g["reserved_mib"], g["total_mib"]) == (10240, 614, 81559)
    assert g["free_mib"] == 81559 - 10240 - 614
    assert g["name"] == "NVIDIA H100 80GB HBM3" and g["uuid"].startswith("GPU-")
    assert g["processes"] == [{"pid": FAKE_PID, "used_mib": 10240, "command": None}]
    assert g["unattributed_mib"] == 0
    assert result["used_gib"] == 10.0 and result["used_mib"] == 10240
    assert (result["memory_api"], result["process_api"]) == ("v2", "v3")
    assert result["driver_version"] == "580.159.04"
    assert result["settled"] is True and len(result["samples"]) == 1
    assert result["notes"] == []
    assert "10.00 GiB on GPU 0" in result["msg"] and "no settling asked" in result["msg"]


def test_memory_no_process_accounts_for_is_reported_as_unattributed(run_module):
    gpu = Gpu(samples=[(12000, 600)], procs=[(FAKE_PID, 10000), (FAKE_PID + 1, 1500)])
    (g,) = ok(run_module(FAST, [gpu]))["gpus"]
    assert g["unattributed_mib"] == 500


def test_process_usage_the_driver_cannot_tell_is_null(run_module):
    gpu = Gpu(samples=[(2048, 0)], procs=[(FAKE_PID, None)])
    (g,) = ok(run_module(FAST, [gpu]))["gpus"]
    assert g["processes"][0]["used_mib"] is None
    assert g["unattributed_mib"] == 2048


def test_check_mode_reads_the_same_and_changes_nothing(run_module):
    gpu = Gpu(samples=[(20480, 600)], procs=[(FAKE_PID, 20480)])
    normal = ok(run_module(dict(FAST, expected_gib=20), [gpu]))
    checked = ok(run_module(dict(FAST, expected_gib=20), [gpu], check_mode=True))
    assert checked["gpus"] == normal["gpus"] and checked["used_gib"] == normal["used_gib"] == 20.0
    # a check that fails, fails in check mode too
    failed(run_module(dict(FAST, expected_gib=40), [gpu], check_mode=True))


# -- settling ------------------------------------------------------------------------------------

def test_settles_once_the_last_samples_stay_within_the_delta(run_module):
    ramp = [(1000, 0), (5000, 0), (20000, 0), (20100, 0), (20150, 0), (30000, 0)]
    result = ok(run_module({"settle_interval": 0.01, "settle_samples": 3, "settle_delta_mib": 256,
                            "timeout": 10}, [Gpu(samples=ramp)]))
    assert result["settled"] is True
    assert [s["used_mib"] for s in result["samples"]] == [1000, 5000, 20000, 20100, 20150]
    assert result["gpus"][0]["used_mib"] == 20150  # figures of the last sample, not the first
    assert "settled after 5 samples" in result["msg"]


@pytest.mark.parametrize("spread, settles", [(256, True), (257, False)])
def test_a_spread_equal_to_the_delta_counts_as_settled(run_module, spread, settles):
    samples = [(1000, 0), (1000 + spread, 0)]
    result = run_module({"settle_interval": 0.01, "settle_samples": 2, "settle_delta_mib": 256,
                         "timeout": 0.05}, [Gpu(samples=samples)], cycle=True)
    assert result["settled"] is settles
    if not settles:
        failed(result)


def test_did_not_settle_fails_after_the_timeout_with_the_samples(run_module):
    swinging = [(1000, 0), (3000, 0)]
    result = failed(run_module({"settle_interval": 0.02, "settle_samples": 3, "settle_delta_mib": 256,
                                "timeout": 0.3}, [Gpu(samples=swinging, procs=[(FAKE_PID, 3000)])], cycle=True))
    assert result["settled"] is False
    assert "did not settle within 0.3 s" in result["msg"]
    assert "GPU 0 spread 2000 MiB" in result["msg"]
    assert "t=0.0s 1000 MiB" in result["msg"] and "3000 MiB" in result["msg"]
    assert "pid %d 2.93 GiB" % FAKE_PID in result["msg"]  # the breakdown comes along
    taken = result["samples"]
    assert 5 <= len(taken) <= 16  # about 0.3 s / 0.02 s, never past the deadline
    assert taken[-1]["elapsed_s"] <= 0.3
    assert {s["used_mib"] for s in taken} == {1000, 3000}


def test_a_long_wait_keeps_the_last_hundred_samples(run_module):
    result = failed(run_module({"settle_interval": 0, "settle_samples": 2, "timeout": 0.3},
                               [Gpu(samples=[(1000, 0), (2000, 0)])], cycle=True))
    assert len(result["samples"]) == 100
    assert "earlier samples left out" in result["msg"]
    assert result["samples"][-1]["elapsed_s"] > result["samples"][0]["elapsed_s"]


def test_a_timeout_of_zero_takes_one_sample_and_cannot_settle_on_several(run_module):
    result = failed(run_module({"settle_samples": 2, "timeout": 0}, [Gpu(samples=[(100, 0)])]))
    assert len(result["samples"]) == 1 and "did not settle" in result["msg"]


def test_each_gpu_must_settle_even_when_the_sum_is_steady(run_module):
    # one GPU fills while the other drains: the sum never moves, the GPUs do
    up = Gpu(samples=[(1000, 0), (2000, 0)])
    down = Gpu(samples=[(2000, 0), (1000, 0)])
    result = failed(run_module({"settle_interval": 0.01, "settle_samples": 2, "timeout": 0.1},
                               [up, down], cycle=True))
    assert {s["used_mib"] for s in result["samples"]} == {3000}
    assert "GPU 0 spread 1000 MiB, GPU 1 spread 1000 MiB" in result["msg"]


# -- expectations ---------------------------------------------------------------------------------

@pytest.mark.parametrize("used_mib, passes", [
    (21 * 1024, True),        # expected + tolerance exactly
    (21 * 1024 + 1, False),   # 1 MiB above
    (19 * 1024, True),        # expected - tolerance exactly
    (19 * 1024 - 1, False),   # 1 MiB below
])
def test_tolerance_edges_are_inclusive(run_module, used_mib, passes):
    result = run_module(dict(FAST, expected_gib=20, tolerance_gib=1), [Gpu(samples=[(used_mib, 500)])])
    if passes:
        assert "within 20.00 ± 1.00 GiB" in ok(result)["msg"]
    else:
        assert "expected 20.00 ± 1.00 GiB" in failed(result)["msg"]


def test_reserved_memory_does_not_count_towards_used(run_module):
    # 20 GiB used + 1 GiB reserved: v1 would read 21 GiB and fail a 20 ± 0.5 check
    ok(run_module(dict(FAST, expected_gib=20, tolerance_gib=0.5), [Gpu(samples=[(20480, 1024)])]))


def test_default_tolerance_is_two_gib(run_module):
    ok(run_module(dict(FAST, expected_gib=58), [Gpu(samples=[(60 * 1024, 0)])]))
    failed(run_module(dict(FAST, expected_gib=58), [Gpu(samples=[(60 * 1024 + 1, 0)])]))


@pytest.mark.parametrize("used_mib, passes", [(40 * 1024, True), (40 * 1024 + 1, False)])
def test_max_gib_is_a_ceiling(run_module, used_mib, passes):
    result = run_module(dict(FAST, max_gib=40), [Gpu(samples=[(used_mib, 0)])])
    if passes:
        ok(result)
    else:
        assert "above max_gib 40.00 GiB" in failed(result)["msg"]


def test_failure_message_gives_measured_expected_and_per_process_breakdown(run_module):
    gpu = Gpu(samples=[(61 * 1024, 600)], procs=[(FAKE_PID, 30 * 1024), (FAKE_PID + 1, 28 * 1024)])
    result = failed(run_module(dict(FAST, expected_gib=58, tolerance_gib=1), [gpu]))
    msg = result["msg"]
    assert "used VRAM is 61.00 GiB, expected 58.00 ± 1.00 GiB (off by +3.00 GiB)" in msg
    assert "GPU 0 (NVIDIA H100 80GB HBM3): used 61.00 GiB, reserved 0.59 GiB" in msg
    assert "pid %d 30.00 GiB, pid %d 28.00 GiB" % (FAKE_PID, FAKE_PID + 1) in msg
    assert "not attributed to a listed process 3.00 GiB" in msg
    assert result["gpus"][0]["processes"]  # the structured breakdown is returned too


# -- several GPUs -----------------------------------------------------------------------------------

def two_gpus():
    return [Gpu(samples=[(30 * 1024, 600)], procs=[(FAKE_PID, 30 * 1024)]),
            Gpu(name="NVIDIA H100 PCIe", samples=[(10 * 1024, 600)], procs=[(FAKE_PID + 1, 10 * 1024)])]


def test_used_is_summed_over_all_gpus_by_default(run_module):
    result = ok(run_module(dict(FAST, expected_gib=40, tolerance_gib=0), two_gpus()))
    assert [g["index"] for g in result["gpus"]] == [0, 1]
    assert result["gpus"][1]["name"] == "NVIDIA H100 PCIe"
    assert result["samples"][0]["per_gpu_mib"] == [30720, 10240]
    assert "on GPUs 0, 1" in result["msg"]


def test_devices_selects_gpus(run_module):
    result = ok(run_module(dict(FAST, devices=[1], expected_gib=10, tolerance_gib=0), two_gpus()))
    assert [g["index"] for g in result["gpus"]] == [1] and result["used_gib"] == 10.0


def test_a_device_index_the_host_lacks_is_named(run_module):
    result = failed(run_module(dict(FAST, devices=[0, 2]), two_gpus()))
    assert result["msg"] == ("devices=[0, 2]: GPU 2 not present; this host has 2 GPU(s), indexes 0 to 1")


# -- older drivers --------------------------------------------------------------------------------

def test_a_driver_without_the_v2_queries_falls_back_to_v1_and_says_so(run_module):
    gpu = Gpu(samples=[(10240, 614)], procs=[(FAKE_PID, 10240)])
    result = ok(run_module(FAST, [gpu], lib="legacy"))
    (g,) = result["gpus"]
    assert g["used_mib"] == 10240 + 614  # v1 counts the reserved memory as used
    assert g["reserved_mib"] is None
    assert (result["memory_api"], result["process_api"]) == ("v1", "v1")
    assert g["processes"] == [{"pid": FAKE_PID, "used_mib": 10240, "command": None}]
    assert any("no v2 memory query" in n and "Function Not Found" in n for n in result["notes"])
    assert any("v1 process query" in n for n in result["notes"])


def test_a_v2_query_that_is_not_supported_also_falls_back(run_module):
    result = ok(run_module(FAST, [Gpu(samples=[(100, 10)])],
                           fail={"nvmlDeviceGetMemoryInfo_v2": 3}))  # NVML_ERROR_NOT_SUPPORTED
    assert result["memory_api"] == "v1" and result["gpus"][0]["used_mib"] == 110
    assert any("Not Supported" in n for n in result["notes"])


def test_process_query_falls_back_from_v3_to_v2(run_module):
    result = ok(run_module(FAST, [Gpu(samples=[(100, 0)], procs=[(FAKE_PID, 100)])],
                           fail={"nvmlDeviceGetComputeRunningProcesses_v3": 13}))
    assert result["process_api"] == "v2" and result["gpus"][0]["processes"][0]["used_mib"] == 100


def test_a_failing_query_on_a_working_library_is_reported(run_module):
    result = failed(run_module(FAST, [Gpu(samples=[(100, 0)])],
                               fail={"nvmlDeviceGetMemoryInfo_v2": 15}))  # NVML_ERROR_GPU_IS_LOST
    assert result["cause"] == "nvml_error"
    assert result["msg"] == "NVML query failed: nvmlDeviceGetMemoryInfo_v2: GPU is lost, NVML error 15"


# -- no GPU: each cause named ---------------------------------------------------------------------

CAUSES = [
    # (state, expected cause, words the message must carry)
    (dict(init=9), "driver_not_loaded", "kernel driver is not loaded"),
    (dict(init=18), "driver_mismatch", "reboot the host"),
    (dict(init=4), "no_permission", "become: true"),
    (dict(), "no_device", "reports no GPU"),
]


@pytest.mark.parametrize("state, cause, words", CAUSES, ids=[c[1] for c in CAUSES])
def test_each_cause_fails_by_name_when_a_gpu_is_required(run_module, state, cause, words):
    result = failed(run_module(FAST, [], **state))
    assert result["cause"] == cause and words in result["msg"]
    assert result["gpus"] == [] and result["settled"] is False


@pytest.mark.parametrize("state, cause, words", CAUSES, ids=[c[1] for c in CAUSES])
def test_each_cause_is_reported_without_failing_when_no_gpu_is_required(run_module, state, cause, words):
    result = ok(run_module(dict(FAST, require_gpu=False, expected_gib=58), [], **state))
    assert result["cause"] == cause and words in result["msg"] and "require_gpu=false" in result["msg"]
    assert result["gpus"] == [] and result["used_gib"] == 0.0


def test_no_library_is_named(run_module):
    if ctypes.util.find_library("nvidia-ml"):
        pytest.skip("this machine has a real libnvidia-ml, which the loader finds without LD_LIBRARY_PATH")
    result = failed(run_module(FAST, [], lib="none"))
    assert result["cause"] == "no_library"
    assert "libnvidia-ml.so.1 cannot be loaded" in result["msg"] and "NVML error 12" in result["msg"]
    assert ok(run_module(dict(FAST, require_gpu=False), [], lib="none"))["cause"] == "no_library"


def test_a_missing_python_binding_is_named(run_module):
    result = failed(run_module(FAST, [Gpu()], block_pynvml=True))
    assert result["cause"] == "no_python_binding"
    assert "Failed to import the required Python library (nvidia-ml-py)" in result["msg"]
    assert ok(run_module(dict(FAST, require_gpu=False), [Gpu()], block_pynvml=True))["cause"] == "no_python_binding"


# -- bad input fails before anything is read --------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    ({"tolerance_gib": -1}, "tolerance_gib=-1.0: must be 0 or more"),
    ({"settle_samples": 0}, "settle_samples=0: must be 1 or more"),
    ({"max_gib": 0}, "max_gib=0.0: must be more than 0"),
    ({"devices": [0, 0]}, "devices=[0, 0]: GPU indexes must be distinct"),
    ({"containers": {"qwen": {"expected": 3}}}, "containers['qwen']={'expected': 3}: give a number of GiB"),
    ({"containers": {"qwen": {"expected_gib": "x"}}}, "must be numbers"),
])
def test_bad_input_names_option_value_and_rule(run_module, args, message):
    # init=9 would fail differently: the input check comes first
    result = failed(run_module(args, [], init=9))
    assert message in result["msg"] and "cause" not in result
