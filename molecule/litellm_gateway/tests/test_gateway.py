"""Behaviour of llmops.multillm.litellm_gateway on a converged systemd container.

The gateway fronts fault-injecting model servers (images/fault-injector/fault_injector.py): "chat" on this host
and on the imaginary host gpu-b (127.0.0.2 in the container), "ocr" on this host, and
"broken", which converge marked as failed its health gate. Clients run on the Molecule host
(the team venv's official `openai` package) and reach the container on its bridge address.

Tests run in file order: read-only checks first, then the ones that kill processes, then
the recycling load test.
"""

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

import openai
import pytest
import yaml

SERVICE = "litellm-gateway"
UNIT = SERVICE + ".service"
SOCKET = SERVICE + ".socket"
PORT = 4001
KEY = "sk-molecule-test-key-0123456789"
USER = "litellm"
CONFIG_DIR = "/etc/litellm-gateway"
DRAIN = "/usr/local/sbin/multillm-gateway-drain"
CONTAINER = "multillm-litellm_gateway"
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
LOADGEN = os.path.join(REPO, "benchmarks", "gateway_overhead", "loadgen.py")
# Model names (served by the fault-injecting backends as model_stack serves them: --served-model-name <name>)
# and the repositories they stand for.
BACKENDS = {"chat": "test/chat-model", "ocr": "test/ocr-model"}
# gpu-b is an inventory-only host (never connected to): test the container alone.
testinfra_hosts = ["ansible://multillm-litellm_gateway"]


@pytest.fixture(scope="module")
def address():
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", CONTAINER],
        check=True, capture_output=True, text=True,
    ).stdout.split()
    assert out, "the test container has no bridge address"
    return out[0]


@pytest.fixture(scope="module")
def client(address):
    # No retries: a failure must show, not be retried away.
    return openai.OpenAI(base_url="http://%s:%d/v1" % (address, PORT), api_key=KEY, max_retries=0, timeout=30)


def main_pid(host):
    return int(host.check_output("systemctl show -p MainPID --value %s", UNIT))


def worker_pids(host, parent):
    out = host.run("pgrep -P %s", str(parent)).stdout.split()
    return sorted(int(p) for p in out)


def unit_prop(host, unit, prop):
    return host.check_output("systemctl show -p %s --value %s", prop, unit)


LOAD_CONNECTIONS = 4
# Connection closed or reset before any answer: what a worker does to a connection it accepted in
# the moment before it acted on SIGTERM. Anything else (a refusal, an HTTP error) is not that race.
CLOSED_BEFORE_ANSWER = {"ConnectionResetError", "StaleConnection", "IncompleteReadError", "BrokenPipeError"}


def load_during(host, address, fault, seconds=30, fault_at=5):
    """Closed-loop load on 4 keep-alive connections for `seconds`; `fault()` runs after `fault_at` s.

    loadgen has no request timeout: a request that waits in the socket's backlog while the
    gateway restarts is answered late, not failed. A request whose reused keep-alive connection
    broke before any answer is resent once on a new connection and counted apart
    (stale_retries), as HTTP clients do; every other error counts as failed. Also returns how
    many completions the "chat" backends (both hosts) answered meanwhile.
    """
    before = sum(backend_chat_count(host, ip) for ip in ("127.0.0.1", "127.0.0.2"))
    proc = subprocess.Popen(
        [sys.executable, LOADGEN, "--url", "http://%s:%d/v1/chat/completions" % (address, PORT),
         "--model", "chat", "--key", KEY, "--connections", str(LOAD_CONNECTIONS), "--duration", str(seconds),
         "--warmup", "0",
         "--retry-stale"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(fault_at)
        fault()
        out, err = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    result = json.loads(out)
    result["backend_answered"] = sum(backend_chat_count(host, ip) for ip in ("127.0.0.1", "127.0.0.2")) - before
    return result


def assert_no_request_lost(result):
    """Nothing refused, and nothing that reached a model lost: a request may fail only by racing a
    worker's shutdown (at most one per connection), and then it never reached a model (the
    backends answered exactly the successes), so a client's resend is safe."""
    assert set(result["errors"]) <= CLOSED_BEFORE_ANSWER, result["errors"]
    assert result["failed"] <= LOAD_CONNECTIONS, result
    assert result["backend_answered"] == result["ok"], result
    assert result["ok"] > 0


def wait_ready(address, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen("http://%s:%d/health/readiness" % (address, PORT), timeout=5) as r:
                if r.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    return False


# --- the service -------------------------------------------------------------------------

def test_unit_is_active_and_enabled(host):
    svc = host.service(SERVICE)
    assert svc.is_running
    assert svc.is_enabled
    sock = host.service(SOCKET)
    assert sock.is_running and sock.is_enabled
    assert unit_prop(host, SOCKET, "Triggers") == UNIT
    assert SOCKET in unit_prop(host, UNIT, "Requires").split()


def test_main_process_and_workers_run_as_the_service_user(host):
    pid = main_pid(host)
    assert pid > 0
    assert host.check_output("ps -o user= -p %s", str(pid)).strip() == USER
    workers = worker_pids(host, pid)
    # 2 vCPUs in CI: the default is one worker per vCPU, at least 2.
    assert len(workers) >= 2
    for w in workers:
        assert host.check_output("ps -o user= -p %s", str(w)).strip() == USER


def test_files_and_modes(host):
    d = host.file(CONFIG_DIR)
    assert d.is_directory and d.user == "root" and d.group == USER and d.mode == 0o750
    cfg = host.file(CONFIG_DIR + "/config.yaml")
    assert cfg.user == "root" and cfg.group == USER and cfg.mode == 0o640
    secrets = host.file(CONFIG_DIR + "/secrets.env")
    assert secrets.user == USER and secrets.mode == 0o600
    assert KEY in secrets.content_string
    # The key lives in the secrets file only.
    assert KEY not in cfg.content_string
    assert KEY not in host.file("/etc/systemd/system/" + UNIT).content_string
    venv = host.file("/opt/litellm-gateway/venv")
    assert venv.user == "root" and not venv.mode & 0o022
    # The service user cannot change the code it runs.
    assert host.run("runuser -u %s -- test -w /opt/litellm-gateway/venv/bin/litellm", USER).rc != 0
    assert host.check_output("/opt/litellm-gateway/venv/bin/pip show litellm | sed -n 's/^Version: //p'") == "1.106.12"
    # The drain helper is root's: the service user may neither run nor change it.
    for path, mode in ((DRAIN, 0o750), ("/opt/litellm-gateway/multillm_gateway_drain.py", 0o644)):
        f = host.file(path)
        assert (f.user, f.group, f.mode) == ("root", "root", mode), path


def test_environment_of_the_running_process(host):
    env = host.check_output("tr '\\0' '\\n' < /proc/%s/environ" % main_pid(host)).splitlines()
    assert "LITELLM_MODE=PRODUCTION" in env
    assert "LITELLM_LOCAL_MODEL_COST_MAP=True" in env
    assert "MAX_REQUESTS_BEFORE_RESTART=200" in env
    assert "MAX_REQUESTS_BEFORE_RESTART_JITTER=50" in env
    assert "PYTHON_GC_THRESHOLD=7000,10,10" in env
    # systemd handed the socket to Gunicorn's arbiter (socket activation).
    assert "LISTEN_FDS=1" in env


def test_workers_apply_the_gc_threshold(address):
    """LiteLLM reads PYTHON_GC_THRESHOLD at import; its debug endpoint reports what the answering
    worker's collector uses."""
    req = urllib.request.Request("http://%s:%d/debug/memory/details" % (address, PORT),
                                 headers={"Authorization": "Bearer " + KEY})
    with urllib.request.urlopen(req, timeout=30) as r:
        thresholds = json.load(r)["garbage_collector"]["thresholds"]
    assert [thresholds["generation_%d" % g] for g in range(3)] == [7000, 10, 10]


def test_config_holds_only_healthy_models_grouped_by_name(host):
    cfg = yaml.safe_load(host.file(CONFIG_DIR + "/config.yaml").content_string)
    deployments = {}
    for entry in cfg["model_list"]:
        deployments.setdefault(entry["model_name"], []).append(entry["litellm_params"])
    assert set(deployments) == {"chat", "ocr"}, "broken failed its gate and must not be served"
    assert sorted(p["api_base"] for p in deployments["chat"]) == [
        "http://127.0.0.1:8001/v1", "http://127.0.0.2:8001/v1"]
    assert [p["api_base"] for p in deployments["ocr"]] == ["http://127.0.0.1:8002/v1"]
    assert all(p["model"] == "hosted_vllm/chat" for p in deployments["chat"])
    assert cfg["general_settings"]["master_key"] == "os.environ/LITELLM_MASTER_KEY"
    assert cfg["general_settings"]["background_health_checks"] is False
    assert cfg["litellm_settings"]["request_timeout"] == 600


def test_port_is_held_by_the_socket_unit_as_configured(host):
    assert host.socket("tcp://0.0.0.0:%d" % PORT).is_listening
    assert unit_prop(host, SOCKET, "Listen") == "0.0.0.0:%d (Stream)" % PORT
    # The container's root lacks CAP_SYS_PTRACE, so ss cannot name the process; it names the
    # cgroup the socket was created in: systemd created it for the socket unit, and Gunicorn
    # bound nothing of its own.
    lines = host.check_output("ss -Htlne 'sport = :%s'" % PORT).splitlines()
    assert len(lines) == 1, lines
    assert re.search(r"cgroup:\S*/%s\b" % re.escape(SOCKET), lines[0]), lines[0]
    assert not host.socket("tcp://0.0.0.0:4000").is_listening


def test_unit_orders_after_the_model_units(host):
    wants = host.check_output("systemctl show -p Wants --value %s", UNIT).split()
    after = host.check_output("systemctl show -p After --value %s", UNIT).split()
    for name in ("chat", "ocr", "broken"):
        assert "multillm-model-%s.service" % name in wants
        assert "multillm-model-%s.service" % name in after


def test_unit_is_hardened(host):
    props = dict(line.split("=", 1) for line in host.check_output(
        "systemctl show -p Restart -p NoNewPrivileges -p ProtectSystem -p ProtectHome -p PrivateTmp "
        "-p CapabilityBoundingSet -p TimeoutStopUSec -p User -p KillMode %s", UNIT).splitlines())
    assert props["Restart"] == "always"
    assert props["NoNewPrivileges"] == "yes"
    assert props["ProtectSystem"] == "strict"
    assert props["ProtectHome"] == "yes"
    assert props["PrivateTmp"] == "yes"
    assert props["CapabilityBoundingSet"] == ""
    assert props["User"] == USER
    # Every worker gets SIGTERM and finishes its requests, also when the arbiter dies.
    assert props["KillMode"] == "control-group"
    # Longer than Gunicorn's 30 s graceful timeout.
    assert props["TimeoutStopUSec"] == "45s"


def test_systemd_security_exposure_is_at_most_4(host):
    out = host.check_output("systemd-analyze security --no-pager %s", UNIT)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
    assert m, out[-500:]
    print("systemd-analyze security exposure:", m.group(1))
    assert float(m.group(1)) <= 4.0


# --- clients -----------------------------------------------------------------------------

@pytest.mark.parametrize("model", sorted(BACKENDS))
def test_openai_chat_completion_through_the_gateway(client, model):
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello gateway"}],
                                       max_tokens=32)
    text = r.choices[0].message.content
    assert text and "hello" in text.lower()
    assert r.choices[0].finish_reason in ("stop", "length")


@pytest.mark.parametrize("model", sorted(BACKENDS))
def test_openai_streamed_completion_through_the_gateway(client, model):
    plain = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "stream me"}],
                                           max_tokens=32).choices[0].message.content
    chunks = []
    for event in client.chat.completions.create(model=model, messages=[{"role": "user", "content": "stream me"}],
                                                max_tokens=32, stream=True):
        if event.choices and event.choices[0].delta.content:
            chunks.append(event.choices[0].delta.content)
    assert len(chunks) > 1, "the answer arrived in one piece: not streamed"
    assert "".join(chunks).strip() == plain.strip()


def test_wrong_key_is_refused(address):
    """Without a database LiteLLM cannot look up virtual keys: a key that is not the master key
    is refused with 400 "No connected db" (LiteLLM's behaviour, documented in the README)."""
    bad = openai.OpenAI(base_url="http://%s:%d/v1" % (address, PORT), api_key="sk-not-the-key-000000",
                        max_retries=0, timeout=30)
    with pytest.raises(openai.APIStatusError) as exc:
        bad.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    assert exc.value.status_code in (400, 401)


def test_missing_key_is_refused_with_401(address):
    req = urllib.request.Request(
        "http://%s:%d/v1/chat/completions" % (address, PORT), method="POST",
        data=json.dumps({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}).encode(),
        headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=30)
    assert exc.value.code == 401


def backend_chat_count(host, ip):
    metrics = host.check_output("curl -sf http://%s:8001/metrics", ip)
    m = re.search(r'fault_injector_requests_total\{path="/v1/chat/completions",status="200"\} (\d+)', metrics)
    return int(m.group(1)) if m else 0


def test_same_model_on_two_hosts_is_load_balanced(host, client):
    before = {ip: backend_chat_count(host, ip) for ip in ("127.0.0.1", "127.0.0.2")}
    for _ in range(40):
        client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "spread"}], max_tokens=4)
    after = {ip: backend_chat_count(host, ip) for ip in ("127.0.0.1", "127.0.0.2")}
    served = {ip: after[ip] - before[ip] for ip in after}
    assert sum(served.values()) == 40
    # simple-shuffle: with 40 requests each backend gets some (chance of a miss: 2 * 0.5**40).
    assert all(n > 0 for n in served.values()), served


def drain_command(host, *args):
    return json.loads(host.check_output(" ".join((DRAIN,) + args)))


def deployments_of(host):
    entries = yaml.safe_load(host.file(CONFIG_DIR + "/config.yaml").content_string)["model_list"]
    return sorted((e["model_name"], e["litellm_params"]["api_base"], e["model_info"]["multillm_host"]) for e in entries)


def test_drain_and_restore_under_load_reload_and_lose_no_request(host, address):
    """The drain command the role installs (a wrapper around files/multillm_gateway_drain.py) takes
    gpu-b's deployment out of config.yaml and reloads Gunicorn, waiting for every old worker to
    leave; restore puts it back. Neither restarts the arbiter, no new request reaches gpu-b while
    it is drained, and the load on "chat" loses no request meanwhile."""
    pid = main_pid(host)
    before = deployments_of(host)
    seen = {}

    def fault():
        seen["drain"] = drain_command(host, "drain", "gpu-b")
        seen["during"] = deployments_of(host)
        seen["list"] = drain_command(host, "list")
        gpu_b = backend_chat_count(host, "127.0.0.2")
        time.sleep(3)
        seen["gpu_b_while_drained"] = backend_chat_count(host, "127.0.0.2") - gpu_b
        seen["restore"] = drain_command(host, "restore", "gpu-b")

    result = load_during(host, address, fault, seconds=20, fault_at=4)
    assert_no_request_lost(result)
    assert seen["drain"]["changed"] is True and seen["drain"]["deployments"] == 1, seen["drain"]
    assert seen["drain"]["msg"].startswith("reloaded"), seen["drain"]
    assert seen["during"] == [d for d in before if d[2] != "gpu-b"] and len(seen["during"]) < len(before)
    assert seen["list"] == {"changed": False, "drained": ["gpu-b"]}
    assert seen["gpu_b_while_drained"] == 0
    assert seen["restore"]["changed"] is True and seen["restore"]["deployments"] == 1, seen["restore"]
    assert deployments_of(host) == before
    assert drain_command(host, "list")["drained"] == []
    assert drain_command(host, "restore", "gpu-b")["changed"] is False
    assert main_pid(host) == pid, "a drain reloads the gateway, never restarts it"
    config = host.file(CONFIG_DIR + "/config.yaml")
    assert (config.user, config.group, config.mode) == ("root", USER, 0o640)


# --- faults ------------------------------------------------------------------------------

def test_killed_worker_is_replaced(host, client, address):
    pid = main_pid(host)
    before = worker_pids(host, pid)
    victim = before[0]
    host.run("kill -KILL %s", str(victim))
    deadline = time.time() + 90
    now = before
    while time.time() < deadline:
        now = worker_pids(host, pid)
        if len(now) == len(before) and victim not in now:
            break
        time.sleep(0.5)
    assert victim not in now and len(now) == len(before), (before, now)
    assert main_pid(host) == pid, "killing a worker must not restart the service"
    assert wait_ready(address)
    r = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "after"}], max_tokens=4)
    assert r.choices[0].message.content


def test_killed_main_process_under_load_refuses_none_and_loses_none_that_reached_a_model(host, client, address):
    """SIGKILL to the Gunicorn arbiter while 4 connections send requests.

    systemd sends SIGTERM to the orphaned workers (KillMode=control-group), which finish the
    requests they hold, and restarts the service after RestartSec; the socket stays open in
    systemd meanwhile, so the requests sent during the outage wait in its backlog and are
    answered by the new workers. Before the socket unit every such request was refused.
    """
    pid = main_pid(host)
    restarts = int(unit_prop(host, UNIT, "NRestarts"))
    socket_since = unit_prop(host, SOCKET, "ActiveEnterTimestampMonotonic")
    result = load_during(host, address, lambda: host.run("kill -KILL %s", str(pid)))
    print("load across the arbiter kill:", result)
    assert main_pid(host) != pid
    assert int(unit_prop(host, UNIT, "NRestarts")) == restarts + 1
    assert unit_prop(host, SOCKET, "ActiveEnterTimestampMonotonic") == socket_since, "the socket was closed"
    assert_no_request_lost(result)
    r = client.chat.completions.create(model="ocr", messages=[{"role": "user", "content": "back"}], max_tokens=4)
    assert r.choices[0].message.content


def test_restart_under_load_refuses_none_and_loses_none_that_reached_a_model(host, address):
    """`systemctl restart` (what the role does for a new release, secret or unit) under load:
    the old workers finish their requests, the new ones take over the same socket."""
    pid = main_pid(host)
    socket_since = unit_prop(host, SOCKET, "ActiveEnterTimestampMonotonic")
    result = load_during(host, address, lambda: host.run_expect([0], "systemctl restart %s", UNIT))
    print("load across a restart:", result)
    assert main_pid(host) != pid
    assert unit_prop(host, SOCKET, "ActiveEnterTimestampMonotonic") == socket_since, "the socket was closed"
    assert_no_request_lost(result)


def test_recycling_under_load_fails_no_request(host, address):
    """2,000 requests on 8 keep-alive connections, workers recycled every 200-250 requests.

    A recycling worker closes its idle keep-alive connections; a request sent on one at that
    instant is reset before any byte of an answer. loadgen resends such a request once on a new
    connection (as HTTP clients and the OpenAI SDKs do) and counts it apart: every other error,
    including a second failure, counts as failed.
    """
    pid = main_pid(host)
    since = host.check_output("date '+%Y-%m-%d %H:%M:%S'")
    time.sleep(1)
    run = subprocess.run(
        [sys.executable, LOADGEN, "--url", "http://%s:%d/v1/chat/completions" % (address, PORT),
         "--model", "chat", "--key", KEY, "--connections", "8", "--requests", "2000", "--warmup", "0",
         "--retry-stale"],
        check=True, capture_output=True, text=True, timeout=400)
    result = json.loads(run.stdout)
    print("recycling load:", result)
    booted = host.check_output(
        "journalctl -u %s --since %s --no-pager -o cat | grep -c 'Booting worker' || true", UNIT, since)
    print("workers booted during the load:", booted)
    assert main_pid(host) == pid, "the service restarted instead of recycling workers"
    assert int(booted) >= 5, "expected several recycles (200-250 requests per worker)"
    assert result["failed"] == 0, result["errors"]
    assert result["ok"] == 2000
