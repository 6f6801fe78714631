"""The pure rules of vram_check: settling, tolerances, messages."""

import pytest

from ansible_collections.llmops.multillm.plugins.module_utils import _vram_eval as ev

MIB = ev.MIB
GIB = ev.GIB


def test_settled_needs_enough_samples():
    assert not ev.settled([[GIB]], samples=2, delta_mib=256)
    assert ev.settled([[GIB], [GIB]], samples=2, delta_mib=256)


def test_settled_looks_at_the_last_window_only():
    history = [[0], [10 * GIB], [10 * GIB + 100 * MIB], [10 * GIB + 200 * MIB]]
    assert ev.settled(history, samples=3, delta_mib=200)
    assert not ev.settled(history, samples=3, delta_mib=199)
    assert not ev.settled(history, samples=4, delta_mib=256)


def test_settled_judges_each_gpu_apart():
    history = [[GIB, 2 * GIB], [2 * GIB, GIB]]  # the sum is steady, the GPUs are not
    assert not ev.settled(history, samples=2, delta_mib=256)


@pytest.mark.parametrize("measured, ok", [
    (58 * GIB, True), (60 * GIB, True), (56 * GIB, True), (60 * GIB + 1, False), (56 * GIB - 1, False)])
def test_within_includes_the_edges_to_the_byte(measured, ok):
    assert ev.within(measured, 58, 2) is ok


def test_check_total_states_measured_expected_and_the_gap():
    assert ev.check_total(58 * GIB, expected_gib=58, tolerance_gib=2) == []
    (problem,) = ev.check_total(55 * GIB, expected_gib=58, tolerance_gib=2)
    assert problem == "used VRAM is 55.00 GiB, expected 58.00 ± 2.00 GiB (off by -3.00 GiB)"
    problems = ev.check_total(90 * GIB, expected_gib=58, tolerance_gib=2, max_gib=80)
    assert problems[1] == "used VRAM is 90.00 GiB, above max_gib 80.00 GiB by 10.00 GiB"


def test_container_matches_by_name_or_id_prefix():
    proc = {"container": "qwen", "container_id": "ab" * 32}
    assert ev.container_matches("qwen", proc)
    assert ev.container_matches("ab" * 6, proc)
    assert not ev.container_matches("ab" * 3, proc)  # too short to be an id
    assert not ev.container_matches("qwen", {"container": None})


def test_sample_line_keeps_the_last_samples():
    samples = [{"elapsed_s": i, "per_gpu_mib": [i, 2 * i]} for i in range(30)]
    text = ev.sample_line(samples, limit=3)
    assert text == "(27 earlier samples left out) t=27.0s 27/54 MiB, t=28.0s 28/56 MiB, t=29.0s 29/58 MiB"


def test_mib_and_gib_conversions():
    assert ev.to_mib(MIB - 1) == 0 and ev.to_mib(None) is None
    assert ev.to_gib(int(1.5 * GIB)) == 1.5 and ev.fmt_gib(GIB // 2) == "0.50 GiB"
