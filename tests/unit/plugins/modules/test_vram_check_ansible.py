"""vram_check as users call it: `ansible localhost -m llmops.multillm.vram_check`, and ansible-doc.

The collection resolves from the working tree (ansible.cfg's collections_path); the fake
libnvidia-ml.so.1 reaches the module through LD_LIBRARY_PATH, which the local connection passes on.
"""

import json
import os
import subprocess
import sys

import pytest

from vram_fakes import FAKE_PID, Gpu, write_state

from conftest import COLLECTIONS, ROOT


@pytest.fixture
def ansible(run_module):
    def call(args, gpus, *extra, **state):
        write_state(run_module.state, gpus, **state)
        env = run_module.env(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
                             ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
                             ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(run_module.tmp_path / "ansible-tmp"))
        proc = subprocess.run(
            ["ansible", "localhost", "-c", "local", "-i", "localhost,", "-e",
             "ansible_python_interpreter=%s" % sys.executable, "-m", "llmops.multillm.vram_check",
             "-a", json.dumps(args), *extra], env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=120)
        try:
            out = json.loads(proc.stdout)
        except ValueError:
            raise AssertionError("no JSON from ansible (rc %d): %s %s" % (proc.returncode, proc.stdout, proc.stderr))
        (task,) = out["plays"][0]["tasks"]
        return proc.returncode, task["hosts"]["localhost"]
    return call


def test_ansible_runs_the_module_and_it_passes(ansible):
    gpu = Gpu(samples=[(58 * 1024, 600)], procs=[(FAKE_PID, 58 * 1024)])
    rc, result = ansible({"expected_gib": 58, "settle_samples": 2, "settle_interval": 0.01}, [gpu])
    assert rc == 0, result
    assert result["changed"] is False and result["settled"] is True
    assert result["gpus"][0]["used_mib"] == 58 * 1024 and result["gpus"][0]["reserved_mib"] == 600
    assert "within 58.00 ± 2.00 GiB" in result["msg"]


def test_ansible_fails_the_task_with_the_breakdown(ansible):
    gpu = Gpu(samples=[(61 * 1024, 600)], procs=[(FAKE_PID, 61 * 1024)])
    rc, result = ansible({"expected_gib": 58, "settle_samples": 1}, [gpu])
    assert rc == 2 and result["failed"] is True
    assert "expected 58.00 ± 2.00 GiB (off by +3.00 GiB)" in result["msg"]
    assert "pid %d 61.00 GiB" % FAKE_PID in result["msg"]


def test_ansible_check_mode_gives_the_same_answer(ansible):
    gpu = Gpu(samples=[(20 * 1024, 600)])
    rc, result = ansible({"max_gib": 30, "settle_samples": 1}, [gpu], "--check")
    assert rc == 0 and result["changed"] is False and result["used_gib"] == 20.0


def test_ansible_without_a_loaded_driver_names_the_cause(ansible):
    rc, result = ansible({"settle_samples": 1}, [], init=9)
    assert rc == 2 and result["cause"] == "driver_not_loaded"
    assert "NVIDIA kernel driver is not loaded" in result["msg"]


def test_ansible_doc_renders_the_documentation():
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
               ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(["ansible-doc", "llmops.multillm.vram_check"], cwd=str(ROOT), capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    for text in ("Reads GPU memory through NVML", "expected_gib", "tolerance_gib", "settle_delta_mib",
                 "require_gpu", "containers", "reserved_mib", "did not settle", "EXAMPLES", "RETURN VALUES"):
        assert text in proc.stdout, text
