"""Fixtures for the vram_check tests: the fake libnvidia-ml.so.1 and ways to run the module.

The fake (tests/fakes/nvml/fake_nvml.c) is compiled once per session with gcc, in two builds:
``full`` (a current driver) and ``legacy`` (no v2 memory query, no v2/v3 process queries).
See tests/fakes/nvml/README.md for why a fake C library rather than Python mocks.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from vram_fakes import write_state

ROOT = pathlib.Path(__file__).resolve().parents[3]
COLLECTIONS = ROOT / "collections"
FAKE_SOURCE = ROOT / "tests" / "fakes" / "nvml" / "fake_nvml.c"
MODULE = "ansible_collections.llmops.multillm.plugins.modules.vram_check"

if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))


@pytest.fixture(scope="session")
def fake_libs(tmp_path_factory):
    """Directories holding a built libnvidia-ml.so.1: {'full': dir, 'legacy': dir, 'none': empty dir}."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    assert gcc, "gcc is needed to build the fake NVML library (tests/fakes/nvml/fake_nvml.c)"
    base = tmp_path_factory.mktemp("fake-nvml")
    dirs = {}
    for variant, flags in (("full", []), ("legacy", ["-DFAKE_LEGACY"])):
        out = base / variant
        out.mkdir()
        subprocess.run([gcc, "-shared", "-fPIC", "-O1", "-Wall", "-Werror", *flags, "-o",
                        str(out / "libnvidia-ml.so.1"), str(FAKE_SOURCE)], check=True)
        dirs[variant] = out
    dirs["none"] = base / "none"
    dirs["none"].mkdir()
    return dirs


class Runner:
    """Runs the module in a fresh interpreter, as Ansible's module runner would (JSON args, JSON out)."""

    def __init__(self, libs, tmp_path):
        self.libs = libs
        self.state = tmp_path / "nvml-state"
        self.tmp_path = tmp_path

    def env(self, lib="full", **extra):
        env = dict(os.environ)
        env.update(LD_LIBRARY_PATH=str(self.libs[lib]), FAKE_NVML_STATE=str(self.state),
                   PYTHONPATH=str(COLLECTIONS))
        env.pop("DOCKER_HOST", None)
        env.update(extra)
        return env

    def __call__(self, args=None, gpus=(), lib="full", check_mode=False, block_pynvml=False, **state):
        write_state(self.state, gpus, **state)
        module_args = dict(args or {})
        if check_mode:
            module_args["_ansible_check_mode"] = True
        payload = json.dumps({"ANSIBLE_MODULE_ARGS": module_args})
        if block_pynvml:
            # the module's interpreter cannot import pynvml, as on a host without nvidia-ml-py
            cmd = [sys.executable, "-c", "import runpy, sys; sys.modules['pynvml'] = None; "
                   "runpy.run_module(%r, run_name='__main__')" % MODULE, payload]
        else:
            cmd = [sys.executable, "-m", MODULE, payload]
        proc = subprocess.run(cmd, env=self.env(lib), capture_output=True, text=True, timeout=60)
        try:
            result = json.loads(proc.stdout)
        except ValueError:
            raise AssertionError("module printed no JSON (rc %d)\nstdout: %s\nstderr: %s"
                                 % (proc.returncode, proc.stdout, proc.stderr))
        result["_rc"] = proc.returncode
        return result


@pytest.fixture
def run_module(fake_libs, tmp_path):
    return Runner(fake_libs, tmp_path)
