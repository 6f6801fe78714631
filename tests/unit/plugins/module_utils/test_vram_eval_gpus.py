"""vram_check's per-GPU logic with plain numbers: GPU names, per-GPU verdicts, placement."""

import pytest

from ansible_collections.llmops.multillm.plugins.module_utils import _vram_eval as ev

GIB = ev.GIB


def gpu(index, used_gib, *procs):
    return {"index": index, "uuid": "GPU-%d" % index, "used_bytes": used_gib * GIB, "total_bytes": 80 * GIB,
            "processes": [{"pid": 100 + i, "used_bytes": gib * GIB, "container": name}
                          for i, (name, gib) in enumerate(procs)]}


GPUS = [gpu(0, 50, ("a", 20), ("tp", 30)), gpu(1, 40, ("tp", 30), ("b", 10), (None, 0))]


@pytest.mark.parametrize("value, key", [(0, 0), ("3", 3), (" 7 ", 7), ("GPU-abc", "GPU-abc"), ("MIG-x", "MIG-x"),
                                        (-1, None), (True, None), ("gpu0", None), ("GPU-", None)])
def test_gpu_key(value, key):
    assert ev.gpu_key(value) == key


def test_container_gpus_sums_each_container_per_gpu():
    assert ev.container_gpus(GPUS) == {"a": {0: 20 * GIB}, "tp": {0: 30 * GIB, 1: 30 * GIB}, "b": {1: 10 * GIB}}


def test_check_gpus_judges_each_gpu_apart():
    report, problems = ev.check_gpus(GPUS, {0: (50, None, None), 1: (None, None, 39)}, 2.0)
    assert [r["ok"] for r in report] == [True, False]
    assert problems == ["GPU 1 uses 40.00 GiB, above its max_gib 39.00 GiB; on it: container b 10.00 GiB, "
                        "container tp 30.00 GiB"]
    report, problems = ev.check_gpus(GPUS, {}, 2.0)
    assert problems == [] and [r["ok"] for r in report] == [None, None]


def test_check_placement():
    assert ev.check_placement(GPUS, {"tp": [0, 1], "a": [0]}) == []
    assert ev.check_placement(GPUS, {"a": [1]}) == [
        "container a should run on GPU 1 but has no process on GPU 1 and runs on GPU 0, which is not one of its GPUs"]


def test_gpu_summary_has_one_line_per_gpu():
    report, _problems = ev.check_gpus(GPUS, {0: (50, 1.0, None)}, 2.0)
    assert ev.gpu_summary(report) == ["GPU 0 50.00 GiB, expected 50.00 ± 1.00 GiB: ok; a 20.00 GiB, tp 30.00 GiB",
                                      "GPU 1 40.00 GiB; b 10.00 GiB, tp 30.00 GiB"]
