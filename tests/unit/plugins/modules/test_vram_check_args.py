"""vram_check's argument checks come before any GPU is read: nan and inf are refused."""

import pytest

from vram_fakes import Gpu

FLOAT_ARGS = ("expected_gib", "tolerance_gib", "max_gib", "settle_interval", "timeout")


@pytest.mark.parametrize("name", FLOAT_ARGS)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_float_argument_must_be_finite_before_any_gpu_is_read(run_module, name, value):
    # lib="none": no NVML library at all; the message must still be about the argument.
    result = run_module({name: value, "require_gpu": False}, lib="none")
    assert result.get("failed"), result
    assert result["msg"].startswith("%s=" % name) and "must be a finite number" in result["msg"]


def test_max_gib_nan_no_longer_passes_on_a_loaded_gpu(run_module):
    gpus = [Gpu(samples=[(61440, 500)])]
    result = run_module({"max_gib": "nan", "settle_samples": 1}, gpus=gpus)
    assert result.get("failed") and "max_gib=nan" in result["msg"], result
    # The same check with a finite limit reads the GPU and judges it.
    result = run_module({"max_gib": 10, "settle_samples": 1}, gpus=gpus)
    assert result.get("failed") and "max_gib=nan" not in result["msg"] and result["gpus"], result


@pytest.mark.parametrize("spec", [{"expected_gib": "nan"}, {"expected_gib": 10, "tolerance_gib": "inf"}])
def test_container_expectations_must_be_finite(run_module, spec):
    result = run_module({"containers": {"multillm-model-qwen": spec}, "require_gpu": False}, lib="none")
    assert result.get("failed") and "must be finite numbers" in result["msg"], result
