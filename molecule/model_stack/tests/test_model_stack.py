"""model_stack on a systemd host with its own Docker engine and three REAL vLLM models (CPU build).

alpha and beta share GPU 0, gamma is alone on GPU 1 (multillm_gpu_count 2; the containers get
no GPU on model_stack_device: cpu). The tests run in file order: the later ones change the host
(one model changed, a reboot, a model removed, a model that never gets healthy, the kvcached
wiring) and each checks what it changed.

Orderings are read from what the real system records, never from the test's own clock:
- the gate helper's journal lines in each model's unit (`<ISO time> multillm-model-wait
  model=<name> released`: the server may start; `... healthy`: the gate saw /health 200 first);
- vLLM's own output, time-stamped by Docker (`docker logs -t`): its first line (the process
  runs: the gate let it go) and `Application startup complete` (the server is up);
- each container's State.StartedAt.
"""

import datetime
import json
import os
import re
import subprocess
import tempfile
import time

import pytest

PREFIX = "multillm-model-"
HOST_CONTAINER = "multillm-model_stack"
SCENARIO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT_DIR = os.path.dirname(os.path.dirname(SCENARIO_DIR))
IMAGE_DIR = os.environ.get("MULTILLM_IMAGE_DIR") or os.path.join(PROJECT_DIR, ".cache", "images")
FAULT_INJECTOR = "multillm-fault-injector:latest"
# A local model directory: the weights stage fetches nothing for it (the fault injector reads none).
LOCAL_MODEL = "/models/qwen2-tiny"
# name, port, GPU
MODELS = [("alpha", 18101, 0), ("beta", 18102, 0), ("gamma", 18103, 1)]
NAMES = [m for m, _, _ in MODELS]
PORTS = dict((m, p) for m, p, _ in MODELS)
GPU0_CHAIN = ["alpha", "beta"]
READY = "Application startup complete"
GATE_RE = re.compile(r"^(\S+) multillm-model-wait model=(\S+) (\w+)")
DOCKER_TS_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z (.*)$")


def base_models():
    def model(name, port, gpu):
        return {"name": name, "model": LOCAL_MODEL, "port": port, "gpus": [gpu],
                "gpu_memory_utilization": 0.3, "max_model_len": 512, "cpu_kvcache_gib": 1,
                "health_timeout_s": 240, "extra_args": ["--enforce-eager"]}
    return [model(*m) for m in MODELS]


def _unix(iso):
    return datetime.datetime.fromisoformat(iso).timestamp()


def gate_times(host, name, event, after=0.0):
    """Times of one gate event (released, healthy, ...) in the model's unit journal, oldest first."""
    out = host.check_output("journalctl -u %s%s.service -o cat --no-pager", PREFIX, name)
    times = []
    for line in out.splitlines():
        m = GATE_RE.match(line)
        if m and m.group(2) == name and m.group(3) == event and _unix(m.group(1)) > after:
            times.append(_unix(m.group(1)))
    return times


def gate_time(host, name, event, after=0.0):
    times = gate_times(host, name, event, after)
    assert times, "the gate of %s logged no %s after %s" % (name, event, after)
    return times[0]


def server_lines(host, name, after=0.0):
    """[(unix time, line)] of the container's output (every run), as Docker time-stamped them."""
    out = host.run("docker logs -t %s%s 2>&1", PREFIX, name)
    assert out.rc == 0, out.stderr
    lines = []
    for line in out.stdout.splitlines():
        m = DOCKER_TS_RE.match(line)
        if m:
            t = datetime.datetime.fromisoformat(m.group(1) + (m.group(2) or "")[:7] + "+00:00").timestamp()
            if t > after:
                lines.append((t, m.group(3)))
    return lines


def server_span(host, name, after=0.0):
    """(first output line, 'Application startup complete') of the model's first vLLM run after `after`."""
    lines = server_lines(host, name, after)
    assert lines, "%s's server wrote nothing after %s" % (name, after)
    ready = [t for t, line in lines if READY in line]
    assert ready, "%s's vLLM never logged %r after %s:\n%s" % (name, READY, after, "\n".join(l for _, l in lines[-20:]))
    return lines[0][0], ready[0]


def inspect(host, name):
    out = host.run("docker inspect %s%s", PREFIX, name)
    assert out.rc == 0, out.stderr
    return json.loads(out.stdout)[0]


def started_at(host, name):
    """Unix time the container last started (Docker's RFC 3339 with nanoseconds)."""
    return float(host.check_output("date -d %s +%%s.%%N", inspect(host, name)["State"]["StartedAt"]))


def converge(models, check=False, **extra_vars):
    """Run the scenario's converge playbook with another model list; return (rc, output)."""
    inventory = os.environ.get("MOLECULE_INVENTORY_FILE")
    assert inventory, "MOLECULE_INVENTORY_FILE is not set: run these tests through molecule verify"
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(dict(extra_vars, multillm_models=models), f)
    env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1", MULTILLM_IMAGE_DIR=IMAGE_DIR)
    proc = subprocess.run(
        ["ansible-playbook", "-i", inventory, os.path.join(SCENARIO_DIR, "converge.yml"), "-e", "@" + f.name]
        + (["--check"] if check else []),
        capture_output=True, text=True, env=env, cwd=PROJECT_DIR, check=False)
    os.unlink(f.name)
    return proc.returncode, proc.stdout + proc.stderr


def wait_healthy(host, port, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if host.run("curl -fsS -o /dev/null http://127.0.0.1:%s/health", str(port)).rc == 0:
            return
        time.sleep(1)
    pytest.fail("127.0.0.1:%s/health did not answer 200 within %s s" % (port, timeout))


def assert_boot_order(host, after=0.0):
    """Within GPU 0 strictly one after the other; across GPUs side by side."""
    spans = dict((n, server_span(host, n, after)) for n in NAMES)
    for prev, nxt in zip(GPU0_CHAIN, GPU0_CHAIN[1:]):
        # The gate released nxt only after it saw prev's /health 200 ...
        assert gate_time(host, nxt, "released", after) >= gate_time(host, prev, "healthy", after), (
            "the gate released %s before %s was healthy" % (nxt, prev))
        # ... and vLLM agrees: nxt's server wrote its first line after prev's server was up.
        assert spans[nxt][0] > spans[prev][1], (
            "%s's vLLM started at %.3f, before %s's was up at %.3f" % (nxt, spans[nxt][0], prev, spans[prev][1]))
    # The gate saw each model healthy once its server was up, never before (Docker stamps a line
    # when it reads it from the container: allow it half a second behind).
    for name in NAMES:
        assert gate_time(host, name, "healthy", after) >= spans[name][1] - 0.5, (name, spans[name])
    # GPU 1's chain (gamma) loaded while GPU 0's first model (alpha) loaded: the intervals overlap.
    (a0, a1), (g0, g1) = spans["alpha"], spans["gamma"]
    assert g0 < a1 and a0 < g1, "alpha %s and gamma %s (different GPUs) did not load side by side" % (
        spans["alpha"], spans["gamma"])
    return spans


def test_models_boot_in_order_within_a_gpu_and_side_by_side_across_gpus(host):
    assert_boot_order(host)


def test_next_container_starts_while_the_previous_model_loads_its_server_only_after(host):
    # The container runtime's start-up is off the critical path: beta's container was up
    # while alpha was still loading, and beta's server waited at the gate until alpha was ready.
    alpha_up = server_span(host, "alpha")[1]
    assert started_at(host, "beta") < alpha_up, "beta's container started after alpha was up"
    assert server_span(host, "beta")[0] > alpha_up
    journal = host.check_output("journalctl -u %sbeta.service -o cat --no-pager", PREFIX)
    assert "model=beta released" in journal
    assert host.file("/run/multillm-gate/beta/ready").exists


def test_units_are_enabled_and_chained_per_gpu(host):
    for name in NAMES:
        unit = host.service(PREFIX + name)
        assert unit.is_enabled and unit.is_running
    wants = dict((n, host.check_output("systemctl show -p Wants --value %s%s.service", PREFIX, n).split())
                 for n in NAMES)
    requires = host.check_output("systemctl show -p Requires --value %sbeta.service", PREFIX).split()
    # Starting beta starts alpha (Wants=), but not Requires= (that would restart beta whenever
    # alpha restarts). gamma (GPU 1) and alpha (first on GPU 0) wait for no model.
    assert PREFIX + "alpha.service" in wants["beta"] and PREFIX + "alpha.service" not in requires
    for name in ("alpha", "gamma"):
        assert not [u for u in wants[name] if u.startswith(PREFIX)], (name, wants[name])
    gamma = host.file("/etc/systemd/system/%sgamma.service" % PREFIX).content_string
    assert "--previous-ready" not in gamma and "ExecStartPre=" not in gamma


def test_containers_run_the_role_s_vllm_argv_and_get_no_gpu_on_the_cpu_build(host):
    # The GPU placement decides the boot chains; on model_stack_device: cpu the containers get
    # no device request at all (the specs for a GPU host carry one per GPU: test_placement.py).
    for name, port, _ in MODELS:
        c = inspect(host, name)
        assert not c["HostConfig"].get("DeviceRequests"), (name, c["HostConfig"].get("DeviceRequests"))
        assert c["Config"]["Image"] == "multillm-vllm-cpu:latest"
        assert c["Config"]["Cmd"][:8] == ["vllm", "serve", "/models/qwen2-tiny", "--host", "0.0.0.0", "--port",
                                          str(port), "--served-model-name"]
        assert "--gpu-memory-utilization" not in c["Config"]["Cmd"] and "--enforce-eager" in c["Config"]["Cmd"]
        env = dict(e.split("=", 1) for e in c["Config"]["Env"])
        assert env["VLLM_CPU_KVCACHE_SPACE"] == "1" and env["ENABLE_KVCACHED"] == "false"
        # The local model directory, read-only, at the same path.
        assert [(m["Destination"], m["RW"]) for m in c["Mounts"] if m["Source"] == "/models/qwen2-tiny"] == [
            ("/models/qwen2-tiny", False)], c["Mounts"]


def test_model_units_are_sandboxed(host):
    # The units run only the Docker client, the gate and nvidia-smi: no capability but
    # CAP_FOWNER, no namespaces, a system-call allow list (systemd-analyze: "OK" is below 4.0).
    for name in NAMES:
        out = host.check_output("systemd-analyze security --no-pager %s%s.service", PREFIX, name)
        level = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", out).group(1))
        assert level <= 3.0, "%s: exposure %s:\n%s" % (name, level, out)
        props = host.check_output("systemctl show -p CapabilityBoundingSet -p RestrictNamespaces --value %s%s.service",
                                  PREFIX, name)
        assert props.split() == ["cap_fowner", "yes"], props


def test_docker_never_restarts_models_itself(host):
    for name in NAMES:
        assert inspect(host, name)["HostConfig"]["RestartPolicy"]["Name"] == "no"


def test_ports_are_bound_on_loopback_only_and_serve_the_model(host):
    for name, port, _ in MODELS:
        bindings = inspect(host, name)["HostConfig"]["PortBindings"]
        assert bindings == {"%s/tcp" % port: [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
        listeners = host.run("ss -Hltn 'sport = :%s'" % port).stdout.split()
        assert "127.0.0.1:%s" % port in listeners
        assert "0.0.0.0:%s" % port not in listeners and "*:%s" % port not in listeners
        models = json.loads(host.check_output("curl -fsS http://127.0.0.1:%s/v1/models" % port))
        assert [m["id"] for m in models["data"]] == [name]
        # A real completion: vLLM counts the prompt's tokens and generates exactly max_tokens.
        body = json.dumps({"model": name, "messages": [{"role": "user", "content": "Say hello."}],
                           "max_tokens": 4, "ignore_eos": True})
        answer = json.loads(host.check_output(
            "curl -fsS -H 'Content-Type: application/json' -d %s http://127.0.0.1:%s/v1/chat/completions", body, str(port)))
        assert answer["model"] == name and answer["usage"]["prompt_tokens"] > 0, answer
        assert answer["usage"]["completion_tokens"] == 4, answer


def test_no_other_container_reaches_a_model_server(host):
    # The servers listen on 0.0.0.0 inside their containers; the models' network has
    # inter-container traffic off, and Docker isolates it from its default bridge.
    probe = ("python3 -c \"import sys, urllib.request; "
             "urllib.request.urlopen('http://%s:%s/health', timeout=3); print('reached')\"")
    net = inspect(host, "alpha")["NetworkSettings"]["Networks"]
    assert list(net) == ["multillm-models"], net
    options = json.loads(host.check_output("docker network inspect multillm-models"))[0]["Options"]
    assert options.get("com.docker.network.bridge.enable_icc") == "false", options
    for name, port, _ in MODELS:
        ip = inspect(host, name)["NetworkSettings"]["Networks"]["multillm-models"]["IPAddress"]
        # The host itself reaches the server (as it does on 127.0.0.1), so the probe can succeed.
        assert host.run("curl -fsS -m 3 -o /dev/null http://%s:%s/health", ip, str(port)).rc == 0
        for network in ("bridge", "multillm-models"):
            out = host.run("docker run --rm --network %s " + FAULT_INJECTOR + " " + probe, network, ip, str(port))
            assert out.rc != 0 and "reached" not in out.stdout, (
                "a container on %s reached model %s at %s:%s" % (network, name, ip, port))


def test_token_only_in_root_only_env_files(host):
    for name in NAMES:
        env_file = host.file("/etc/multillm/models/%s.env" % name)
        assert env_file.mode == 0o600 and env_file.user == "root"
        assert "HF_TOKEN=hf_molecule_secret_token_0123456789" in env_file.content_string
        unit = host.file("/etc/systemd/system/%s%s.service" % (PREFIX, name)).content_string
        assert "hf_molecule_secret" not in unit


def test_unit_files_put_one_flag_per_continued_line(host):
    for name in NAMES:
        unit = host.file("/etc/systemd/system/%s%s.service" % (PREFIX, name)).content_string
        assert max(len(line) for line in unit.splitlines()) <= 120
        assert "health \\\n    --name %s \\\n" % name in unit
        # systemd reads the continued lines as one command (the gate's flags all arrive).
        post = host.check_output("systemctl show -p ExecStartPost --value %s%s.service", PREFIX, name)
        assert "--report-every 2" in post and "--url http://127.0.0.1:" in post


def test_check_mode_on_the_converged_host_changes_nothing(host):
    before = dict((name, inspect(host, name)["State"]["StartedAt"]) for name in NAMES)
    rc, out = converge(base_models(), check=True)
    assert rc == 0, out[-3000:]
    recap = re.search(r"multillm-model_stack\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=(\d+)", out)
    assert recap and recap.groups() == ("0", "0"), out[-3000:]
    assert before == dict((name, inspect(host, name)["State"]["StartedAt"]) for name in NAMES)


def test_changing_one_model_restarts_that_model_only(host):
    # One boot mode: the play asks systemd for every start; the unit chain starts beta behind
    # alpha's gate (alpha still ready), and alpha and gamma, unchanged, keep running.
    before = dict((name, inspect(host, name)["State"]["StartedAt"]) for name in NAMES)
    models = base_models()
    models[1]["env"] = {"MODEL_CHANGED": "yes"}
    rc, out = converge(models)
    assert rc == 0, out[-3000:]
    assert "Start the next model of the chain" not in out, "the play still starts models one by one"
    after = dict((name, inspect(host, name)["State"]["StartedAt"]) for name in NAMES)
    assert after["beta"] != before["beta"], "beta changed but was not restarted"
    assert after["alpha"] == before["alpha"], "alpha was restarted though it did not change"
    assert after["gamma"] == before["gamma"], "gamma was restarted though it did not change"
    env = dict(e.split("=", 1) for e in inspect(host, "beta")["Config"]["Env"])
    assert env["MODEL_CHANGED"] == "yes"
    wait_healthy(host, PORTS["beta"])


def test_after_a_reboot_the_models_come_up_in_order_within_a_gpu_side_by_side_across(host):
    reboot = time.time()
    subprocess.run(["docker", "kill", HOST_CONTAINER], check=True, capture_output=True)
    subprocess.run(["docker", "start", HOST_CONTAINER], check=True, capture_output=True)
    for name in ("gamma", "beta"):
        wait_healthy(host, PORTS[name])
    assert_boot_order(host, after=reboot)


def test_a_removed_model_goes_and_a_model_that_never_gets_healthy_stops_the_boot(host):
    # One play does both: beta leaves the list, and on GPU 0 behind alpha come broken (the fault
    # injector under vLLM's own argv, never healthy) and late (must never start).
    models = [m for m in base_models() if m["name"] != "beta"] + [
        {"name": "broken", "model": LOCAL_MODEL, "image": FAULT_INJECTOR, "port": 18104, "gpus": [0],
         "gpu_memory_utilization": 0.2, "health_timeout_s": 4,
         "extra_args": ["--load-delay", "1", "--fail-mode", "never-healthy"]},
        {"name": "late", "model": LOCAL_MODEL, "image": FAULT_INJECTOR, "port": 18105, "gpus": [0],
         "gpu_memory_utilization": 0.2, "health_timeout_s": 30, "extra_args": ["--load-delay", "1"]},
    ]
    before = dict((name, inspect(host, name)["State"]["StartedAt"]) for name in ("alpha", "gamma"))
    rc, out = converge(models)

    # alpha and gamma did not change: removing and adding other models left them running.
    assert before == dict((name, inspect(host, name)["State"]["StartedAt"]) for name in ("alpha", "gamma")), (
        "removing beta and adding models restarted alpha or gamma")
    # beta is gone: container, unit, env file; broken now follows alpha on GPU 0.
    assert host.run("docker inspect %sbeta", PREFIX).rc != 0, "beta's container is still there"
    assert not host.file("/etc/systemd/system/%sbeta.service" % PREFIX).exists
    assert not host.file("/etc/multillm/models/beta.env").exists
    assert "beta" not in host.check_output("systemctl list-units --all --plain --no-legend '%s*'", PREFIX)
    unit = host.file("/etc/systemd/system/%sbroken.service" % PREFIX).content_string
    assert "Wants=docker.service network-online.target %salpha.service" % PREFIX in unit
    assert "--previous-ready /run/multillm-gate/alpha/ready" in unit

    # broken failed the play, with its log; late was never started; the others still serve.
    assert rc != 0, "the play succeeded although broken never answered /health 200:\n" + out[-3000:]
    assert "model broken (multillm_models[2]" in out, out[-3000:]
    assert "did not answer http://127.0.0.1:18104/health with 200 within health_timeout_s=4" in out
    assert "Not started after it: late" in out
    assert "fault-injector model=broken event=loading_stuck" in out, "the failure does not show the model's log"
    assert "hf_molecule_secret" not in out, "the token leaked into the play output"
    # late's container may have started behind broken's (the gate), but its server never ran.
    assert "event=loading_started" not in host.run("docker logs %slate 2>&1", PREFIX).stdout, "late loaded"
    assert not host.service(PREFIX + "late").is_running
    assert not inspect(host, "late")["State"]["Running"]
    for name in ("alpha", "gamma"):
        assert host.service(PREFIX + name).is_running, "%s stopped because a later model failed" % name


def kvcached_models():
    """The fault injector under vLLM's argv on a kvcached GPU host without a GPU: vLLM's CPU
    build cannot run kvcached (no CUDA), and kvcached needs a GPU; the fault injector writes
    kvcached's 24-byte /dev/shm segment and its image has a kvctl that reads and rewrites it."""
    models = base_models()
    for m in models:
        m.update(image=FAULT_INJECTOR, extra_args=["--load-delay", "1"],
                 health_timeout_s=30)
    models[0]["kvcached"] = {"limit_gib": 2}
    return models


def test_kvcached_wiring_ipc_names_kvctl_limit_and_shm_cleanup(host):
    # The kvcached strategy on a GPU host (no GPU request: multillm_gpu_required is false): each
    # model its own IPC name, `kvctl limit` once healthy (read back), the segment removed when
    # the model stops. Only the kvcached units' wiring is tested here, with the fault injector.
    rc, out = converge(kvcached_models(), model_stack_device="gpu", multillm_vram_strategy="kvcached")
    assert rc == 0, out[-3000:]
    for name in ("broken", "late"):
        assert host.run("docker inspect %s%s", PREFIX, name).rc != 0, "%s is still there" % name
    names = set()
    for name in NAMES:
        env = dict(e.split("=", 1) for e in inspect(host, name)["Config"]["Env"])
        assert env["ENABLE_KVCACHED"] == "true" and env["KVCACHED_AUTOPATCH"] == "1"
        assert env["KVCACHED_MIN_RESERVED_PAGES"] == env["KVCACHED_MAX_RESERVED_PAGES"] == "0"
        assert env["KVCACHED_MAX_CACHED_TOKENS"] == "16"  # kvcached 0.1.5: 0 would mean unlimited
        assert inspect(host, name)["HostConfig"]["IpcMode"] == "host"
        names.add(env["KVCACHED_IPC_NAME"])
    assert names == {"multillm_alpha", "multillm_beta", "multillm_gamma"}

    # The fault injector wrote the segment with a 1 GiB limit; the unit's ExecStartPost ran
    # `kvctl limit multillm_alpha 2G` once alpha was healthy, and read it back.
    limit = host.check_output("python3 -c \"import struct;print(struct.unpack('<qqq', "
                              "open('/dev/shm/multillm_alpha','rb').read())[0])\"")
    assert int(limit) == 2 << 30
    journal = host.check_output("journalctl -u %salpha.service -o cat --no-pager", PREFIX)
    assert "kvctl_limit_in_force pool=multillm_alpha limit_bytes=%d" % (2 << 30) in journal

    # Stopping a model removes its segment (kvcached leaves it behind) and touches no other model.
    assert host.file("/dev/shm/multillm_gamma").exists
    host.run_test("systemctl stop %sgamma.service", PREFIX)
    assert not host.file("/dev/shm/multillm_gamma").exists
    assert host.service(PREFIX + "beta").is_running, "stopping gamma must not touch beta"
