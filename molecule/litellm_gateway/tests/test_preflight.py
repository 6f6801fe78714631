"""Bad input and a taken port stop the role in preflight, with a message naming the rule.

Each case runs the scenario's converge playbook with --tags litellm_gateway_preflight and one bad
extra variable against the converged container, and expects a failure before any change.
"""

import json
import os
import re
import subprocess

import pytest

testinfra_hosts = ["ansible://multillm-litellm_gateway"]
SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = "/etc/litellm-gateway/config.yaml"


class Result:
    def __init__(self, proc):
        self.returncode = proc.returncode
        # Whitespace-normalised: the YAML callback folds long messages over several lines.
        # The error summary goes to stderr, the task result to stdout: search both.
        self.output = " ".join((proc.stdout + "\n" + proc.stderr).split())


def run_preflight(extra):
    # The whole inventory directory, as converge gets it: the instance file, and `hosts` with gpu-b.
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    cmd = ["ansible-playbook", "-i", inventory, os.path.join(SCENARIO, "converge.yml"),
           "--tags", "litellm_gateway_preflight", "-e", json.dumps(extra)]
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    return Result(subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env))


@pytest.mark.parametrize("version", ["1.82.8", "1.82.7", "1.83.9", ">=1.83.10"])
def test_refused_releases(host, version):
    before = host.file(CONFIG).md5sum
    r = run_preflight({"litellm_gateway_version": version})
    assert r.returncode != 0
    # The role's preflight refuses it with the contract's rule (filter gateway_errors).
    assert re.search(r"litellm_gateway_version='?%s'?:? (is refused|is a compromised|is older|must be an exact)"
                     % re.escape(version), r.output), r.output[-2000:]
    assert host.file(CONFIG).md5sum == before


def test_master_key_without_sk_prefix_is_refused_and_not_printed(host):
    secret = "not-an-sk-key-0123456789abcdef"
    r = run_preflight({"litellm_gateway_master_key": secret})
    assert r.returncode != 0
    assert "litellm_gateway_master_key" in r.output
    assert secret not in r.output


def test_one_worker_with_recycling_is_refused(host):
    r = run_preflight({"litellm_gateway_num_workers": 1})
    assert r.returncode != 0
    assert "at least 2" in r.output


def test_bind_address_systemd_cannot_listen_on_is_refused(host):
    before = host.file("/etc/systemd/system/litellm-gateway.socket").md5sum
    r = run_preflight({"litellm_gateway_bind_address": "gateway.example.com"})
    assert r.returncode != 0
    # The value as the contract quotes it; a YAML result format may double the quotes.
    assert re.search(r"litellm_gateway_bind_address='{1,2}gateway\.example\.com'{1,2}:", r.output), r.output[-2000:]
    assert "resolves no host name" in r.output
    assert "[gateway-bind-address]" in r.output
    assert host.file("/etc/systemd/system/litellm-gateway.socket").md5sum == before


def test_port_taken_by_another_program_is_refused(host):
    host.run("systemd-run --unit foreign-listener python3 -m http.server 4011 --bind 127.0.0.1")
    try:
        assert host.run("for i in $(seq 50); do ss -Htln 'sport = :4011' | grep -q . && exit 0; sleep 0.1; done; exit 1").rc == 0
        r = run_preflight({"litellm_gateway_port": 4011})
        assert r.returncode != 0
        assert "litellm_gateway_port=4011: is taken" in r.output
        assert "[gateway-port-taken]" in r.output
        assert "foreign-listener.service" in r.output
    finally:
        host.run("systemctl stop foreign-listener.service")


def test_backend_without_published_endpoints_is_refused(host):
    """The gateway reads model_stack_endpoints only; a backend host that published none is named."""
    before = host.file(CONFIG).md5sum
    r = run_preflight({"litellm_gateway_backend_hosts": ["multillm-litellm_gateway", "gpu-c"]})
    assert r.returncode != 0
    assert "backend hosts gpu-c published no model_stack_endpoints" in r.output
    assert host.file(CONFIG).md5sum == before


def test_remote_backend_on_the_gateways_loopback_is_refused(host):
    """Without multillm_backend_address, gpu-b's endpoints say 127.0.0.1: the gateway would dial
    its own loopback for a model that runs on another host."""
    before = host.file(CONFIG).md5sum
    r = run_preflight({"multillm_backend_address": ""})
    assert r.returncode != 0
    assert "backend host gpu-b: model chat at http://127.0.0.1:8001/v1" in r.output
    assert "Set multillm_backend_address for gpu-b" in r.output
    assert host.file(CONFIG).md5sum == before
