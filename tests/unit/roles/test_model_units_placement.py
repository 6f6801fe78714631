"""model_stack's unit template rendered (Ansible's templating) from the specs of a host with
several GPUs, and the rendered gate commands run: the chains per GPU keep their order, chains on
different GPUs overlap, and a model spanning GPUs waits for every chain it touches.

This stands in for a Molecule run of the same (issue 17, item 7): the model_stack scenario's time
budget has no room for a second boot, and what differs on several GPUs is the units' text and
the gate, both exercised here. A reboot starts every enabled unit at once with every gate shut
(the gate files live in each unit's RuntimeDirectory), which is how the boot below starts.
"""

import os
import pathlib
import re
import subprocess
import sys
import textwrap
import threading

import pytest

from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

try:  # ansible-core >= 2.19 templates only trusted strings
    from ansible.template import trust_as_template
except ImportError:  # the floor of meta/runtime.yml
    def trust_as_template(text):
        return text

ROOT = pathlib.Path(__file__).resolve().parents[3]
if str(ROOT / "collections") not in sys.path:
    sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.llmops.multillm.plugins.module_utils import _model_spec as ms  # noqa: E402
TEMPLATE = ROOT / "roles" / "model_stack" / "templates" / "model.service.j2"
HELPER = ROOT / "roles" / "model_stack" / "files" / "multillm-model-wait"


def model(name, gpus=None, port=0):
    m = {"name": name, "model": "org/" + name, "port": port or 8001, "gpu_memory_utilization": 0.3}
    if gpus is not None:
        m["gpus"] = gpus
    return m


def render(specs):
    templar = Templar(loader=DataLoader())
    units = {}
    for spec in specs:
        templar.available_variables = {
            "item": spec, "__model_stack_specs": specs, "model_stack_docker_cli": "/usr/bin/docker",
            "model_stack_stop_timeout_s": 30, "model_stack_restart_sec": 10, "ansible_managed": "managed"}
        # as the template action does (escape_backslashes=False)
        units[spec["name"]] = templar.template(trust_as_template(TEMPLATE.read_text()), escape_backslashes=False)
    return units


def directive(unit, key):
    """Every value of `key=` in the unit, continuation lines joined."""
    text = unit.replace("\\\n", " ")
    return [re.sub(r"\s+", " ", v).strip() for v in re.findall(r"^%s=(.*)$" % key, text, re.M)]


HGX = [model("a0", [0], 8101), model("b0", [1], 8102), model("a1", [0], 8103), model("tp", [0, 1], 8104)]


def test_each_unit_wants_every_model_it_boots_behind():
    units = render(ms.model_specs(HGX, {"multillm_gpu_required": True}))
    assert directive(units["a0"], "Wants") == ["docker.service network-online.target"]
    assert directive(units["b0"], "Wants") == ["docker.service network-online.target"]
    assert directive(units["a1"], "Wants") == ["docker.service network-online.target multillm-model-a0.service"]
    assert directive(units["tp"], "Wants") == [
        "docker.service network-online.target multillm-model-b0.service multillm-model-a1.service"]


def test_the_gate_lines_of_a_spanning_model_name_each_chain():
    tp = render(ms.model_specs(HGX, {"multillm_gpu_required": True}))["tp"]
    [after] = [v for v in directive(tp, "ExecStartPre") if " after " in v]
    assert "--previous-unit multillm-model-b0.service --previous-release /run/multillm-gate/b0/release " \
           "--previous-unit multillm-model-a1.service --previous-release /run/multillm-gate/a1/release" in after
    [health] = [v for v in directive(tp, "ExecStartPost") if " health " in v]
    assert "--previous-unit multillm-model-b0.service --previous-ready /run/multillm-gate/b0/ready" in health
    assert health.endswith("--settle-gpus 0,1")


def test_a_single_gpu_list_renders_the_one_chain_of_before():
    units = render(ms.model_specs([model("q", port=8001), model("o", port=8002)], {"multillm_gpu_required": True}))
    assert directive(units["o"], "Wants") == ["docker.service network-online.target multillm-model-q.service"]
    assert "--settle-gpus" not in units["o"] and "device_ids" not in units["o"]
    assert len(directive(units["q"], "ExecStartPre")) == len(directive(units["o"], "ExecStartPre")) - 1


# --- the rendered gates, run -----------------------------------------------------------------

SERVER = textwrap.dedent("""\
    import http.server, sys, time
    start = time.monotonic()
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if time.monotonic() - start >= float(sys.argv[2]) else 503)
            self.end_headers()
        def log_message(self, *a):
            pass
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
    """)


@pytest.fixture
def stubs(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("systemctl", "#!/bin/sh\n[ \"$1\" = show ] && printf 'ActiveState=activating\\n'\nexit 0\n"),
                       ("nvidia-smi", "#!/bin/sh\nprintf '0, GPU-0, 100\\n1, GPU-1, 100\\n'\n")):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return dict(os.environ, PATH="%s:%s" % (bin_dir, os.environ["PATH"]))


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def boot(specs, delays, gate_root, environ):
    """Start every unit at once; each runs its rendered after, its gated server, its health."""
    procs, errors = [], []

    def unit(spec, delay):
        try:
            run_unit(spec, delay)
        except Exception as exc:  # a thread's exception would otherwise only be printed
            errors.append("%s: %r" % (spec["name"], exc))

    def run_unit(spec, delay):
        def sub(tokens):
            out = [t.replace("/run/multillm-gate", str(gate_root)) for t in tokens]
            # the role installs the helper executable; the checkout's copy is run by the interpreter
            return [sys.executable] + out if out[0] == str(HELPER) else out

        gate = pathlib.Path(sub([spec["gate_dir"]])[0])
        gate.mkdir(parents=True)
        for lines in ([spec["gate"]["after"]] if spec["gate"]["after"] else []):
            if subprocess.run(sub([t for ln in lines for t in ln]), env=environ, capture_output=True,
                              check=False).returncode:
                errors.append(spec["name"])
                return
        script = ms.GATE_SCRIPT.replace('"/run/multillm-gate/release"', repr(str(gate / "release")))
        procs.append(subprocess.Popen([sys.executable, "-c", script, sys.executable, "-c", SERVER,
                                       str(spec["port"]), str(delay)]))
        proc = subprocess.run(sub([t for ln in spec["gate"]["health"] for t in ln]), env=environ,
                              capture_output=True, text=True, check=False)
        if proc.returncode:
            errors.append(spec["name"] + proc.stdout)

    threads = [threading.Thread(target=unit, args=(s, delays[s["name"]])) for s in specs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for p in procs:
        p.kill()
        p.wait()
    assert not errors, errors
    return dict((s["name"], tuple((gate_root / s["name"] / f).stat().st_mtime for f in ("release", "ready")))
                for s in specs)


def test_the_rendered_gates_boot_each_gpu_in_order_and_the_gpus_side_by_side(tmp_path, stubs):
    models = [dict(m, port=free_port()) for m in HGX]
    specs = ms.model_specs(models, {"multillm_gpu_required": True, "model_stack_helper_path": str(HELPER),
                                    "model_stack_health_poll_interval_s": 0.02,
                                    "model_stack_vram_settle_interval_s": 0.02, "model_stack_vram_settle_samples": 2})
    # b0 loads longest: tp must wait for it although a1, its other predecessor, is ready long before
    t = boot(specs, {"a0": 0.6, "b0": 2.0, "a1": 0.3, "tp": 0.2}, tmp_path / "gate", stubs)
    released, ready = dict((k, v[0]) for k, v in t.items()), dict((k, v[1]) for k, v in t.items())
    assert released["b0"] < ready["a0"], "GPU 1's chain waited for GPU 0's"
    assert released["a1"] >= ready["a0"], "a1 loaded while a0 was loading on the same GPU"
    assert released["tp"] >= max(ready["a1"], ready["b0"]), "tp loaded before both of its chains were ready"
