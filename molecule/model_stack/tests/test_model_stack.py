"""model_stack on a systemd host with its own Docker engine and three stand-in models.

The tests run in file order: the later ones change the host (one model changed, a reboot,
a model removed, a model that never gets healthy) and each checks what it changed.
Times come from the stand-in's own log lines (`event=loading_started t=<unix time>`,
`event=healthy t=...`), so orderings are read from the models themselves.
"""

import json
import os
import re
import subprocess
import tempfile
import time

import pytest

MODELS = [("alpha", 18101, 2.0), ("beta", 18102, 3.0), ("gamma", 18103, 2.5)]
PREFIX = "multillm-model-"
HOST_CONTAINER = "multillm-model_stack"
SCENARIO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT_DIR = os.path.dirname(os.path.dirname(SCENARIO_DIR))
EVENT_RE = re.compile(r"event=(\w+) t=([0-9.]+)")


def base_models():
    return [
        {"name": "alpha", "model": "injector/alpha", "port": 18101, "gpu_memory_utilization": 0.2,
         "health_timeout_s": 30, "extra_args": ["--load-delay", "2"], "kvcached": {"limit_gib": 2}},
        {"name": "beta", "model": "injector/beta", "port": 18102, "gpu_memory_utilization": 0.2,
         "health_timeout_s": 30, "extra_args": ["--load-delay", "3"]},
        {"name": "gamma", "model": "injector/gamma", "port": 18103, "gpu_memory_utilization": 0.2,
         "health_timeout_s": 30, "extra_args": ["--load-delay", "2.5"]},
    ]


def events(host, name):
    """[(event, unix time)] of one stand-in container, oldest first (all its runs)."""
    out = host.run("docker logs %s%s 2>&1", PREFIX, name)
    assert out.rc == 0, out.stderr
    return [(m.group(1), float(m.group(2))) for m in EVENT_RE.finditer(out.stdout)]


def last(host, name, event, after=0.0):
    times = [t for e, t in events(host, name) if e == event and t > after]
    assert times, "model %s logged no %s after %s: %s" % (name, event, after, events(host, name))
    return times[-1]


def inspect(host, name):
    out = host.run("docker inspect %s%s", PREFIX, name)
    assert out.rc == 0, out.stderr
    return json.loads(out.stdout)[0]


def converge(models, check=False, **extra_vars):
    """Run the scenario's converge playbook with another model list; return (rc, output)."""
    inventory = os.environ.get("MOLECULE_INVENTORY_FILE")
    assert inventory, "MOLECULE_INVENTORY_FILE is not set: run these tests through molecule verify"
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(dict(extra_vars, multillm_models=models), f)
    env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(
        ["ansible-playbook", "-i", inventory, os.path.join(SCENARIO_DIR, "converge.yml"), "-e", "@" + f.name] + (["--check"] if check else []),
        capture_output=True, text=True, env=env, cwd=PROJECT_DIR, check=False)
    os.unlink(f.name)
    return proc.returncode, proc.stdout + proc.stderr


def wait_healthy(host, port, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if host.run("curl -fsS -o /dev/null http://127.0.0.1:%s/health", str(port)).rc == 0:
            return
        time.sleep(0.5)
    pytest.fail("127.0.0.1:%s/health did not answer 200 within %s s" % (port, timeout))


def assert_sequential(host, names, after=0.0):
    """Each model started loading only after the previous one was healthy; no overlap."""
    for prev, nxt in zip(names, names[1:]):
        healthy = last(host, prev, "healthy", after)
        started = last(host, nxt, "loading_started", after)
        assert started > healthy, (
            "%s started loading at %.3f, before %s was healthy at %.3f" % (nxt, started, prev, healthy))


def test_models_started_one_after_another_each_after_the_previous_was_healthy(host):
    assert_sequential(host, [m for m, _, _ in MODELS])
    for name, _, delay in MODELS:
        took = last(host, name, "healthy") - last(host, name, "loading_started")
        assert took >= delay - 0.05, "%s was healthy after %.2f s, its load delay is %s s" % (name, took, delay)


def started_at(host, name):
    """Unix time the container last started (Docker's RFC 3339 with nanoseconds)."""
    out = host.check_output("date -d %s +%%s.%%N", inspect(host, name)["State"]["StartedAt"])
    return float(out)


def test_next_container_starts_while_the_previous_model_loads_its_server_only_after(host):
    # The container runtime's start-up is off the critical path: beta's container was up
    # while alpha was still loading, and beta's server waited at the gate until alpha was ready.
    for prev, nxt in zip([m for m, _, _ in MODELS], [m for m, _, _ in MODELS][1:]):
        assert started_at(host, nxt) < last(host, prev, "healthy"), "%s's container started after %s was healthy" % (
            nxt, prev)
        assert last(host, nxt, "loading_started") > last(host, prev, "healthy")
        journal = host.check_output("journalctl -u %s%s.service -o cat --no-pager", PREFIX, nxt)
        assert "model=%s released" % nxt in journal
        assert host.file("/run/multillm-gate/%s/ready" % nxt).exists


def test_units_are_enabled_chained_and_active(host):
    prev = None
    for name, _, _ in MODELS:
        unit = host.service(PREFIX + name)
        assert unit.is_enabled and unit.is_running
        wants = host.check_output("systemctl show -p Wants --value %s%s.service", PREFIX, name)
        requires = host.check_output("systemctl show -p Requires --value %s%s.service", PREFIX, name)
        if prev:
            # Starting a model starts the previous one (Wants=), but not Requires= (that would
            # restart this model whenever the previous one restarts).
            assert PREFIX + prev + ".service" in wants.split()
            assert PREFIX + prev + ".service" not in requires.split()
        prev = name


def test_model_units_are_sandboxed(host):
    # The units run only the Docker client, the gate and nvidia-smi: no capability but
    # CAP_FOWNER, no namespaces, a system-call allow list (systemd-analyze: "OK" is below 4.0).
    for name, _, _ in MODELS:
        out = host.check_output("systemd-analyze security --no-pager %s%s.service", PREFIX, name)
        level = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", out).group(1))
        assert level <= 3.0, "%s: exposure %s:\n%s" % (name, level, out)
        props = host.check_output("systemctl show -p CapabilityBoundingSet -p RestrictNamespaces --value %s%s.service",
                                  PREFIX, name)
        assert props.split() == ["cap_fowner", "yes"], props


def test_docker_never_restarts_models_itself(host):
    for name, _, _ in MODELS:
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
            out = host.run("docker run --rm --network %s multillm-fault-injector:latest " + probe, network, ip, str(port))
            assert out.rc != 0 and "reached" not in out.stdout, (
                "a container on %s reached model %s at %s:%s" % (network, name, ip, port))


def test_token_only_in_root_only_env_files(host):
    for name, _, _ in MODELS:
        env_file = host.file("/etc/multillm/models/%s.env" % name)
        assert env_file.mode == 0o600 and env_file.user == "root"
        assert "HF_TOKEN=hf_molecule_secret_token_0123456789" in env_file.content_string
        unit = host.file("/etc/systemd/system/%s%s.service" % (PREFIX, name)).content_string
        assert "hf_molecule_secret" not in unit


def test_kvcached_env_gives_each_model_its_own_ipc_name(host):
    names = set()
    for name, _, _ in MODELS:
        env = dict(e.split("=", 1) for e in inspect(host, name)["Config"]["Env"])
        assert env["ENABLE_KVCACHED"] == "true" and env["KVCACHED_AUTOPATCH"] == "1"
        assert env["KVCACHED_MIN_RESERVED_PAGES"] == env["KVCACHED_MAX_RESERVED_PAGES"] == "0"
        assert env["KVCACHED_MAX_CACHED_TOKENS"] == "16"  # kvcached 0.1.5: 0 would mean unlimited
        names.add(env["KVCACHED_IPC_NAME"])
    assert names == {"multillm_alpha", "multillm_beta", "multillm_gamma"}


def test_kvctl_limit_applied_after_health(host):
    # The stand-in writes kvcached's 24-byte segment with a 1 GiB limit; the unit's
    # ExecStartPost ran `kvctl limit multillm_alpha 2G` once alpha was healthy, and read it back.
    limit = host.check_output("python3 -c \"import struct;print(struct.unpack('<qqq', "
                              "open('/dev/shm/multillm_alpha','rb').read())[0])\"")
    assert int(limit) == 2 << 30
    journal = host.check_output("journalctl -u %salpha.service -o cat --no-pager", PREFIX)
    assert "kvctl_limit_in_force pool=multillm_alpha limit_bytes=%d" % (2 << 30) in journal


def test_unit_files_put_one_flag_per_continued_line(host):
    for name, _, _ in MODELS:
        unit = host.file("/etc/systemd/system/%s%s.service" % (PREFIX, name)).content_string
        assert max(len(line) for line in unit.splitlines()) <= 120
        assert "health \\\n    --name %s \\\n" % name in unit
        # systemd reads the continued lines as one command (the gate's flags all arrive).
        post = host.check_output("systemctl show -p ExecStartPost --value %s%s.service", PREFIX, name)
        assert "--report-every 2" in post and "--url http://127.0.0.1:" in post


def test_check_mode_on_the_converged_host_changes_nothing(host):
    before = {name: inspect(host, name)["State"]["StartedAt"] for name, _, _ in MODELS}
    rc, out = converge(base_models(), check=True)
    assert rc == 0, out[-3000:]
    recap = re.search(r"multillm-model_stack\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=(\d+)", out)
    assert recap and recap.groups() == ("0", "0"), out[-3000:]
    assert before == {name: inspect(host, name)["State"]["StartedAt"] for name, _, _ in MODELS}


def test_stopping_a_model_removes_its_shm_segment(host):
    assert host.file("/dev/shm/multillm_gamma").exists
    host.run_test("systemctl stop %sgamma.service", PREFIX)
    assert not host.file("/dev/shm/multillm_gamma").exists
    assert host.service(PREFIX + "beta").is_running, "stopping gamma must not touch beta"
    host.run_test("systemctl start %sgamma.service", PREFIX)
    wait_healthy(host, 18103)


def test_changing_one_model_restarts_that_model_only(host):
    # One boot mode: the play asks systemd for every start; the unit chain starts beta behind
    # alpha's gate (alpha still ready), and alpha and gamma, unchanged, keep running.
    before = {name: inspect(host, name)["State"]["StartedAt"] for name, _, _ in MODELS}
    models = base_models()
    models[1]["env"] = {"MODEL_CHANGED": "yes"}
    rc, out = converge(models)
    assert rc == 0, out[-3000:]
    assert "Start the next model of the chain" not in out, "the play still starts models one by one"
    after = {name: inspect(host, name)["State"]["StartedAt"] for name, _, _ in MODELS}
    assert after["beta"] != before["beta"], "beta changed but was not restarted"
    assert after["alpha"] == before["alpha"], "alpha was restarted though it did not change"
    assert after["gamma"] == before["gamma"], "gamma was restarted though it did not change"
    env = dict(e.split("=", 1) for e in inspect(host, "beta")["Config"]["Env"])
    assert env["MODEL_CHANGED"] == "yes"


def test_after_a_reboot_the_models_come_up_in_order_never_together(host):
    reboot = time.time()
    subprocess.run(["docker", "kill", HOST_CONTAINER], check=True, capture_output=True)
    subprocess.run(["docker", "start", HOST_CONTAINER], check=True, capture_output=True)
    wait_healthy(host, 18103, timeout=120)
    names = [m for m, _, _ in MODELS]
    assert_sequential(host, names, after=reboot)
    spans = [(last(host, n, "loading_started", reboot), last(host, n, "healthy", reboot)) for n in names]
    for (s1, e1), (s2, _) in zip(spans, spans[1:]):
        assert s2 > e1, "two models were loading at the same time after the reboot: %s" % spans


def test_a_removed_model_goes_and_a_model_that_never_gets_healthy_stops_the_boot(host):
    # One play does both (each converge costs half a minute here): beta leaves the list,
    # and behind gamma come broken (never healthy) and late (must never start).
    models = [m for m in base_models() if m["name"] != "beta"] + [
        {"name": "broken", "model": "injector/broken", "port": 18104, "gpu_memory_utilization": 0.2,
         "health_timeout_s": 4, "extra_args": ["--load-delay", "1", "--fail-mode", "never-healthy"]},
        {"name": "late", "model": "injector/late", "port": 18105, "gpu_memory_utilization": 0.2,
         "health_timeout_s": 30, "extra_args": ["--load-delay", "1"]},
    ]
    rc, out = converge(models)

    # beta is gone: container, unit, env file; gamma now follows alpha.
    assert host.run("docker inspect %sbeta", PREFIX).rc != 0, "beta's container is still there"
    assert not host.file("/etc/systemd/system/%sbeta.service" % PREFIX).exists
    assert not host.file("/etc/multillm/models/beta.env").exists
    assert "beta" not in host.check_output("systemctl list-units --all --plain --no-legend '%s*'", PREFIX)
    unit = host.file("/etc/systemd/system/%sgamma.service" % PREFIX).content_string
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
    assert not [e for e, _ in events(host, "late") if e == "loading_started"], "late loaded behind a failed model"
    assert not host.service(PREFIX + "late").is_running
    assert not inspect(host, "late")["State"]["Running"]
    for name in ("alpha", "gamma"):
        assert host.service(PREFIX + name).is_running, "%s stopped because a later model failed" % name
