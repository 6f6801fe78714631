"""Issue 15 item 11 in the role: the KV check task of boot_model.yml (after each gate) and of
verify.yml, taken from the role's files as written and run against fake vLLM /metrics on
loopback: the squeezed model fails by name, a model's env (API keys) never reaches the output."""

import http.server
import json
import os
import pathlib
import subprocess
import sys
import threading

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]
TASKS = ROOT / "roles" / "model_stack" / "tasks"
sys.path.insert(0, str(ROOT / "collections"))
sys.path.insert(0, str(ROOT / "tests" / "unit" / "plugins" / "module_utils"))
from test_kv_capacity import SQUEEZED_14B, STATIC_14B  # noqa: E402  pylint: disable=wrong-import-position

SENTINEL = "sk-sentinel-a4-kv-0123456789"


@pytest.fixture
def metrics():
    pages = {"/q": SQUEEZED_14B, "/o": STATIC_14B}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = pages.get(self.path)
            self.send_response(200 if body else 404)
            self.end_headers()
            self.wfile.write((body or "").encode())

        def log_message(self, *_):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()


def kv_task(name):
    tasks = yaml.safe_load((TASKS / name).read_text())
    (task,) = [t for t in tasks if "llmops.multillm.model_kv_check" in t]
    task = dict(task)
    task.pop("when", None)
    task.pop("failed_when", None)
    task.pop("ignore_errors", None)  # verify records the failure, then fails (tests/unit/roles/test_verify_vram.py)
    return task


def specs(base):
    common = {"server": "vllm", "env": {"OPENAI_API_KEY": SENTINEL}, "image": "x", "command": ["vllm", SENTINEL]}
    return [dict(common, name="qwen2.5-14b-instruct", index=0, unit="multillm-model-qwen2.5-14b-instruct.service",
                 metrics_url=base + "/q", kv_tokens=55952),
            dict(common, name="paddleocr-vl", index=1, unit="multillm-model-paddleocr-vl.service",
                 metrics_url=base + "/o", kv_tokens=None),
            dict(common, name="injector", index=2, server="fault_injector", metrics_url=base + "/none", kv_tokens=1)]


def run(tmp_path, task, variables):
    play = [{"hosts": "all", "gather_facts": False, "vars": variables, "tasks": [task]}]
    path = tmp_path / "play.yml"
    path.write_text(yaml.safe_dump(play))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"),
               ANSIBLE_NOCOLOR="1")
    bindir = pathlib.Path(sys.executable).parent
    return subprocess.run([str(bindir / "ansible-playbook"), "-vvv", "-i", "gpu1,", "-c", "local",
                           "-e", "ansible_python_interpreter=" + sys.executable, str(path)],
                          env=env, capture_output=True, text=True, timeout=180, cwd=str(tmp_path))


def test_after_the_gate_the_squeezed_model_fails_by_name_and_no_env_is_printed(tmp_path, metrics):
    proc = run(tmp_path, kv_task("boot_model.yml"), {"__model_stack_spec_item": specs(metrics)[0]})
    out = proc.stdout + proc.stderr
    flat = " ".join(out.split())  # the YAML callback of ansible-core 2.18 folds long messages
    assert proc.returncode != 0, out
    assert "host gpu1: model qwen2.5-14b-instruct (multillm_models[0]) has a KV cache of 40240 tokens" in flat
    assert SENTINEL not in out


def test_verify_reads_every_vllm_model_and_reports_the_squeezed_one(tmp_path, metrics):
    task = kv_task("verify.yml")
    task["register"] = "kv"
    proc = run(tmp_path, task, {"__model_stack_specs": specs(metrics)})
    out = proc.stdout + proc.stderr
    flat = " ".join(out.split())  # the YAML callback of ansible-core 2.18 folds long messages
    assert proc.returncode != 0, out
    assert "model qwen2.5-14b-instruct (multillm_models[0]) has a KV cache of 40240 tokens" in flat
    assert "paddleocr-vl: 55952 KV tokens (3497 blocks x 16), no plan" in flat
    assert "injector" not in out.split("TASK [")[-1].split("PLAY RECAP")[0].replace("'injector'", "")
    assert SENTINEL not in out


def test_the_verify_summary_and_the_failure_use_the_check():
    verify = yaml.safe_load((TASKS / "verify.yml").read_text())
    record = [t for t in verify if "model_stack_verify" in json.dumps(t.get("ansible.builtin.set_fact", {}))]
    assert record and "kv_tokens" in json.dumps(record[0])
    assert any("__model_stack_verify_kv.msg" in json.dumps(t) for t in verify if "ansible.builtin.fail" in t)
