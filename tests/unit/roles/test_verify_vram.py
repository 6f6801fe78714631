"""model_stack's verify entry point as playbooks/verify.yml runs it (include_role, tasks_from
verify), on a host with two fake GPUs (issue 15 item 1, issue 17 item 4):

* vram_check runs under the interpreter that has the NVML binding (nvidia_driver_nvml_python,
  else ansible_local.multillm_nvml.python), not the host's own, which has none;
* each GPU and each model placed on it is checked (vram_placement's gpus and containers), a
  model on the wrong GPU fails naming it, and the summary's per-GPU lines come back;
* what each model showed is recorded in model_stack_verify before the host fails;
* a model whose KV capacity is below its kv_tokens plan fails the host.

The GPU host is localhost: its "own" interpreter is this test's Python with pynvml blocked; the
"NVML venv" interpreter is this test's Python with the fake libnvidia-ml.so.1 (tests/fakes/nvml)
and a /proc tree and Docker API stand-in that put each model's process in its container.
"""

import http.server
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import threading

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "collections"))
sys.path.insert(0, str(ROOT / "tests" / "unit" / "plugins"))
sys.path.insert(0, str(ROOT / "tests" / "unit" / "plugins" / "module_utils"))
from vram_fakes import FAKE_PID, FakeDockerApi, Gpu, write_state  # noqa: E402  pylint: disable=wrong-import-position
from test_kv_capacity import SQUEEZED_14B, STATIC_14B  # noqa: E402  pylint: disable=wrong-import-position

GIB_MIB = 1024
CID_A, CID_B = "a" * 64, "b" * 64

# Imported by the module's interpreter at start: the NVML venv stand-in points the module's
# /proc reader at the test's tree; the host's own interpreter cannot import pynvml.
SITE_FAKE_PROC = '''
import os, sys
class _ProcRoot(object):
    def find_spec(self, name, path=None, target=None):
        if not name.endswith(".module_utils._vram_containers"):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        run = spec.loader.exec_module
        def exec_module(module):
            run(module)
            module.PROC_ROOT = os.environ["FAKE_PROC_ROOT"]
        spec.loader.exec_module = exec_module
        return spec
sys.meta_path.insert(0, _ProcRoot())
'''
SITE_NO_PYNVML = 'import sys\nsys.modules["pynvml"] = None\n'


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def fake_lib(tmp_path_factory):
    gcc = shutil.which("gcc") or shutil.which("cc")
    assert gcc, "gcc is needed to build the fake NVML library (tests/fakes/nvml/fake_nvml.c)"
    out = tmp_path_factory.mktemp("fake-nvml")
    subprocess.run([gcc, "-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-o", str(out / "libnvidia-ml.so.1"),
                    str(ROOT / "tests" / "fakes" / "nvml" / "fake_nvml.c")], check=True)
    return out


@pytest.fixture
def servers():
    """A stand-in for each model's server: /health 200 and /metrics (vLLM's KV figures)."""
    started = []

    def start(metrics):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                body = {"/health": "", "/metrics": metrics}.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.end_headers()
                self.wfile.write((body or "").encode())

            def log_message(self, *_):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return server.server_address[1]

    yield start
    for server in started:
        server.shutdown()


@pytest.fixture
def host(tmp_path, fake_lib, servers):
    """Two GPUs: model a's process on GPU 0 (20 GiB), model b's on GPU `b_on` (10 GiB)."""

    def make(b_on=1, b_metrics=STATIC_14B):
        state = tmp_path / "nvml-state"
        gpus = [Gpu(samples=[(20.5 * GIB_MIB, 600)], procs=[(FAKE_PID, 20 * GIB_MIB)]),
                Gpu(samples=[(0.5 * GIB_MIB, 600)])]
        gpus[b_on].samples = [(gpus[b_on].samples[0][0] + 10 * GIB_MIB, 600)]
        gpus[b_on].procs.append((FAKE_PID + 1, 10 * GIB_MIB))
        write_state(state, gpus)
        proc = tmp_path / "proc"
        for pid, cid in ((FAKE_PID, CID_A), (FAKE_PID + 1, CID_B)):
            (proc / str(pid)).mkdir(parents=True, exist_ok=True)
            (proc / str(pid) / "cgroup").write_text("0::/system.slice/docker-%s.scope\n" % cid)
            (proc / str(pid) / "comm").write_text("vllm\n")
        interpreters = {}
        for name, site, extra in (("nvml-venv", SITE_FAKE_PROC, ""), ("host-own", SITE_NO_PYNVML, "")):
            site_dir = tmp_path / ("site-" + name)
            site_dir.mkdir(exist_ok=True)
            (site_dir / "sitecustomize.py").write_text(site)
            script = tmp_path / ("python-" + name)
            script.write_text("#!/bin/sh\nexport LD_LIBRARY_PATH=%s FAKE_NVML_STATE=%s FAKE_PROC_ROOT=%s "
                              "DOCKER_HOST=unix://%s PYTHONPATH=%s\nexec %s \"$@\"\n%s" % (
                                  fake_lib, state, proc, tmp_path / "docker.sock", site_dir, sys.executable, extra))
            script.chmod(0o755)
            interpreters[name] = str(script)
        models = [
            {"name": "a", "model": "org/a", "port": servers(""), "gpu_memory_utilization": 0.5, "gpus": [0],
             "resting_gib": 20},
            {"name": "b", "model": "org/b", "port": servers(b_metrics), "gpu_memory_utilization": 0.5, "gpus": [1],
             "resting_gib": 10, "kv_tokens": 55952},
        ]
        return interpreters, models

    with FakeDockerApi(str(tmp_path / "docker.sock"), {CID_A: "multillm-model-a", CID_B: "multillm-model-b"}):
        yield make


PLAY = """
- hosts: multillm_gpu_hosts
  gather_facts: false
  tasks:
    - name: Check the models of the host
      block:
        - ansible.builtin.include_role:
            name: llmops.multillm.model_stack
            tasks_from: verify
            public: true
      always:
        - ansible.builtin.debug:
            msg: "RECORDED {{ model_stack_verify | default({}) | to_json }}"
        - ansible.builtin.debug:
            msg: "GPU_SUMMARY {{ __model_stack_verify_vram.gpu_summary | default([]) | to_json }}"
"""


def run_verify(tmp_path, interpreters, models, host_vars, playbook=None):
    inventory = {"all": {"children": {"multillm_gpu_hosts": {"hosts": {"gpu1": dict({
        "ansible_connection": "local",
        "ansible_python_interpreter": interpreters["host-own"],
        "multillm_gpu_required": True,
        "multillm_gpu_count": 2,
        "multillm_resting_vram_gib": 31,
        "multillm_resting_vram_tolerance_gib": 3,
        "multillm_models": models,
        "model_stack_vram_settle_samples": 1,
    }, **host_vars)}}}}}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    if playbook is None:
        playbook = "play.yml"
        (tmp_path / playbook).write_text(PLAY)
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"),
               ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_CALLBACK_RESULT_FORMAT="json", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"))
    for name in ("DOCKER_HOST", "LD_LIBRARY_PATH", "FAKE_NVML_STATE"):
        env.pop(name, None)
    bindir = pathlib.Path(sys.executable).parent
    proc = subprocess.run([str(bindir / "ansible-playbook"), "-i", str(tmp_path / "inventory.yml"), str(tmp_path / playbook)],
                          env=env, capture_output=True, text=True, timeout=240, cwd=str(tmp_path))
    out = proc.stdout + proc.stderr
    return proc.returncode, out, " ".join(out.split())


def marked(out, mark):
    """The JSON a debug task printed after `mark` (results as JSON, one line per key)."""
    (line,) = [l for l in out.splitlines() if l.strip().startswith('"msg": "%s ' % mark)]
    return json.loads(json.loads(line.strip()[len('"msg": '):])[len(mark) + 1:])


def test_vram_check_runs_with_the_interpreter_nvidia_driver_published(tmp_path, host):
    interpreters, models = host()
    rc, out, flat = run_verify(tmp_path, interpreters, models, {"nvidia_driver_nvml_python": interpreters["nvml-venv"]})
    assert rc == 0, out
    summary = marked(out, "GPU_SUMMARY")
    assert summary == ["GPU 0 20.50 GiB, expected 20.00 ± 3.00 GiB: ok; multillm-model-a 20.00 GiB",
                       "GPU 1 10.50 GiB, expected 10.00 ± 3.00 GiB: ok; multillm-model-b 10.00 GiB"], out
    assert marked(out, "RECORDED")["b"]["resting_gib"] == 10.0


def test_a_later_run_finds_the_interpreter_in_the_local_fact(tmp_path, host):
    interpreters, models = host()
    local = {"multillm_nvml": {"python": interpreters["nvml-venv"], "nvidia_ml_py": "13.615.71"}}
    rc, out, flat = run_verify(tmp_path, interpreters, models, {"ansible_local": local})
    assert rc == 0, out
    assert len(marked(out, "GPU_SUMMARY")) == 2


def test_without_the_binding_the_hosts_own_interpreter_names_the_cause(tmp_path, host):
    interpreters, models = host()
    rc, out, flat = run_verify(tmp_path, interpreters, models, {})
    assert rc != 0, out
    assert "nvidia-ml-py" in flat and "Fail when the resting VRAM of a GPU, a model or the host is off" in flat, out
    # recorded before the host failed: health and KV of each model
    recorded = marked(out, "RECORDED")
    assert recorded["a"]["health"] == 200 and recorded["b"]["kv_tokens"] == 55952, out


def test_a_model_on_the_wrong_gpu_fails_naming_the_gpu_and_is_recorded_first(tmp_path, host):
    interpreters, models = host(b_on=0)
    rc, out, flat = run_verify(tmp_path, interpreters, models, {"nvidia_driver_nvml_python": interpreters["nvml-venv"]})
    assert rc != 0, out
    assert "container multillm-model-b should run on GPU 1 but has no process on GPU 1" in flat, out
    assert "GPU 1 uses 0.50 GiB, expected 10.00 ± 3.00 GiB" in flat, out
    assert marked(out, "GPU_SUMMARY")[1].startswith("GPU 1 0.50 GiB, expected 10.00 ± 3.00 GiB: OFF"), out
    assert marked(out, "RECORDED")["b"]["health"] == 200


def test_a_model_below_its_kv_plan_fails_the_host(tmp_path, host):
    interpreters, models = host(b_metrics=SQUEEZED_14B)
    rc, out, flat = run_verify(tmp_path, interpreters, models, {"nvidia_driver_nvml_python": interpreters["nvml-venv"]})
    assert rc != 0, out
    assert "model b (multillm_models[1]) has a KV cache of 40240 tokens" in flat, out
    assert marked(out, "RECORDED")["b"]["kv_tokens"] == 40240


def test_preflight_checks_the_placed_gpus_with_the_nvml_interpreter(tmp_path, host):
    """model_stack's preflight GPU check (its task as written, after the interpreter is chosen):
    a model placed on GPU 2 of a host whose NVML shows two GPUs fails naming GPU 2."""
    interpreters, models = host()
    models[1]["gpus"] = [2]
    tasks = yaml.safe_load((ROOT / "roles" / "model_stack" / "tasks" / "preflight.yml").read_text())
    (check,) = [dict(t) for t in tasks if "llmops.multillm.vram_check" in t]
    check.pop("when")
    specs = [{"name": m["name"], "container": "multillm-model-" + m["name"], "gpus": m["gpus"]} for m in models]
    play = [{"hosts": "multillm_gpu_hosts", "gather_facts": False, "vars": {"__model_stack_specs": specs},
             "tasks": [{"ansible.builtin.include_tasks": {
                 "file": str(ROOT / "roles" / "model_stack" / "tasks" / "nvml_python.yml")}}, check]}]
    (tmp_path / "preflight.yml").write_text(yaml.safe_dump(play))
    rc, out, flat = run_verify(tmp_path, interpreters, models, {"nvidia_driver_nvml_python": interpreters["nvml-venv"],
                                                                "multillm_gpu_count": 3}, "preflight.yml")
    assert rc != 0, out
    assert "GPU 2" in flat and "nvidia-ml-py" not in flat, out
    models[1]["gpus"] = [1]
    specs[1]["gpus"] = [1]
    play[0]["vars"]["__model_stack_specs"] = specs
    (tmp_path / "preflight.yml").write_text(yaml.safe_dump(play))
    rc, out, flat = run_verify(tmp_path, interpreters, models, {"nvidia_driver_nvml_python": interpreters["nvml-venv"]},
                               "preflight.yml")
    assert rc == 0, out


def test_without_a_resting_target_the_total_is_shown_not_checked_and_each_gpu_still_is(tmp_path, host):
    interpreters, models = host(b_on=0)
    nvml = {"nvidia_driver_nvml_python": interpreters["nvml-venv"]}
    rc, out, flat = run_verify(tmp_path, interpreters, models, dict(nvml, multillm_resting_vram_gib=None))
    assert rc != 0, out  # model b on GPU 0 instead of 1: the per-GPU checks hold without a total
    assert "container multillm-model-b should run on GPU 1" in flat and "expected 31.00" not in flat, out
    interpreters, models = host()
    rc, out, flat = run_verify(tmp_path, interpreters, models, dict(nvml, multillm_resting_vram_gib=None))
    assert rc == 0, out
    assert "host gpu1: resting VRAM 31.0 GiB in all, not checked: multillm_resting_vram_gib is not set" in flat, out
