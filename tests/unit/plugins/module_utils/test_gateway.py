"""The gateway's on-host rules (plugins/module_utils/_gateway.py, filter gateway_errors) on plain values:
each rule refuses its bad value with its id, the messages are the contract's format, the key never prints."""

import base64
import copy
import re

import pytest

from ansible_collections.llmops.multillm.plugins.filter.multillm import FilterModule
from ansible_collections.llmops.multillm.plugins.module_utils import _contract, _gateway

KEY = "sk-gateway-unit-test-key-0001"
SOCKET_ACTIVE = ["ActiveState=active", "Listen=[::]:4001 (Stream)"]
SOCKET_INACTIVE = ["ActiveState=inactive"]
GOOD = {
    "litellm_gateway_version": "1.106.12",
    "litellm_gateway_master_key": KEY,
    "litellm_gateway_port": 4001,
    "litellm_gateway_bind_address": "0.0.0.0",
    "litellm_gateway_num_workers": "2",
    "litellm_gateway_max_requests_before_restart": 10000,
    "litellm_gateway_max_requests_before_restart_jitter": 1000,
    "litellm_gateway_gc_threshold": [7000, 10, 10],
    "litellm_gateway_extra_env": {},
    "litellm_gateway_user": "litellm",
    "service_mgr": "systemd",
    "backends": ["gw"],
    "unpublished": [],
    "deployments": [{"name": "chat", "host": "127.0.0.1", "port": 8001, "api_base": "http://127.0.0.1:8001/v1",
                     "backend": "gw"}],
    "drain_dir": "/etc/litellm-gateway/drained",
    "listeners": [{"address": "*", "port": 4001, "pid": 1, "name": "systemd", "user": "root"}],
    "socket_show": SOCKET_ACTIVE,
    "service_show": ["ActiveState=active"],
    "service_name": "litellm-gateway.service",
    "socket_unit": "litellm-gateway.socket",
    "cgroups": [],
}


def errors(**changes):
    g = copy.deepcopy(GOOD)
    g.update(changes)
    return FilterModule().filters()["gateway_errors"](g, "gw")


def rule_ids(messages):
    return [m.rsplit("[", 1)[1].rstrip("]") for m in messages]


def test_good_settings_and_host_pass():
    assert errors() == []


@pytest.mark.parametrize("changes, rule, text", [
    ({"litellm_gateway_version": "1.82.8"}, "litellm-version", "litellm_gateway_version='1.82.8': is a compromised"),
    ({"litellm_gateway_version": "1.83.9"}, "litellm-version", "is older than 1.83.10"),
    ({"litellm_gateway_version": ">=1.83.10"}, "litellm-version", "must be an exact release"),
    ({"litellm_gateway_port": 80}, "gateway-port", "litellm_gateway_port=80: must be an integer from 1024"),
    ({"litellm_gateway_port": "http"}, "gateway-port", "litellm_gateway_port='http'"),
    ({"litellm_gateway_bind_address": "gateway.example.com"}, "gateway-bind-address",
     "litellm_gateway_bind_address='gateway.example.com': must be an IPv4 or IPv6 address literal"),
    ({"service_mgr": "sysvinit"}, "gateway-systemd", "ansible_facts.service_mgr='sysvinit': must be systemd"),
    ({"litellm_gateway_num_workers": 1}, "gateway-workers", "must be at least 2 while workers recycle"),
    ({"litellm_gateway_num_workers": 0, "litellm_gateway_max_requests_before_restart": 0}, "gateway-workers",
     "litellm_gateway_num_workers=0: must be a whole number, 1 or more"),
    ({"litellm_gateway_num_workers": "many"}, "gateway-workers", "litellm_gateway_num_workers='many'"),
    ({"litellm_gateway_max_requests_before_restart": -1}, "gateway-workers",
     "litellm_gateway_max_requests_before_restart=-1: must be a whole number, 0 or more"),
    ({"litellm_gateway_max_requests_before_restart_jitter": "x"}, "gateway-workers",
     "litellm_gateway_max_requests_before_restart_jitter='x'"),
    ({"litellm_gateway_gc_threshold": [7000, 0, 10]}, "gateway-gc-threshold", "0 would turn the collector off"),
    ({"litellm_gateway_gc_threshold": [7000, 10]}, "gateway-gc-threshold", "litellm_gateway_gc_threshold=[7000, 10]"),
    ({"litellm_gateway_extra_env": {"BAD NAME": "1"}}, "env-form", "litellm_gateway_extra_env.BAD NAME"),
    ({"unpublished": ["gpu-c"], "backends": ["gw", "gpu-c"]}, "gateway-endpoints",
     "backend hosts gpu-c published no model_stack_endpoints"),
    ({"deployments": []}, "gateway-models", "the gateway would serve no model"),
    ({"deployments": [{"name": "chat", "host": "127.0.0.1", "port": 4001, "api_base": "x", "backend": "gw"}]},
     "port-gateway", "model_stack_endpoints (chat).port=4001: is the gateway's port"),
])
def test_each_rule_refuses_its_bad_value(changes, rule, text):
    messages = errors(**changes)
    assert rule_ids(messages) == [rule], messages
    assert text in messages[0]
    assert messages[0].startswith("host gw: ")


def test_one_worker_without_recycling_and_an_empty_gc_threshold_pass():
    assert errors(litellm_gateway_num_workers=1, litellm_gateway_max_requests_before_restart=0,
                  litellm_gateway_gc_threshold=[]) == []


def test_numbers_given_as_strings_on_the_command_line_pass():
    assert errors(litellm_gateway_port="4001", litellm_gateway_num_workers="4",
                  litellm_gateway_gc_threshold=["700", "10", "10"]) == []


def test_a_remote_backend_on_the_gateways_loopback_names_host_model_and_fix():
    remote = {"name": "chat", "host": "127.0.0.1", "port": 8001, "api_base": "http://127.0.0.1:8001/v1",
              "backend": "gpu-b"}
    messages = errors(deployments=GOOD["deployments"] + [remote])
    assert rule_ids(messages) == ["backend-unreachable"]
    assert "backend host gpu-b: model chat at http://127.0.0.1:8001/v1" in messages[0]
    assert "Set multillm_backend_address for gpu-b" in messages[0]


def test_every_broken_rule_comes_at_once():
    messages = errors(litellm_gateway_version="1.82.7", litellm_gateway_port=70000, service_mgr="openrc",
                      deployments=[])
    assert sorted(rule_ids(messages)) == ["gateway-models", "gateway-port", "gateway-systemd", "litellm-version"]


@pytest.mark.parametrize("key", ["", "not-an-sk-key-0123456789", "sk-short", "sk-has space-0123456789"])
def test_a_bad_master_key_is_refused_and_never_printed(key):
    messages = errors(litellm_gateway_master_key=key)
    assert rule_ids(messages) == ["master-key"]
    if key:
        assert key not in " ".join(messages)


def test_the_master_key_never_prints_in_any_message():
    messages = errors(litellm_gateway_version=KEY, litellm_gateway_extra_env={"X": KEY, "LITELLM_MASTER_KEY": KEY},
                      litellm_gateway_bind_address=KEY, service_mgr=KEY)
    assert len(messages) >= 4
    assert KEY not in " ".join(messages)
    assert KEY[3:] not in " ".join(messages)


def test_a_bug_in_the_check_is_a_message_with_the_key_hidden(monkeypatch):
    def broken(g, r):
        raise ValueError("boom near %s" % KEY)
    monkeypatch.setattr(_gateway, "_settings_errors", broken)
    messages = errors()
    assert rule_ids(messages) == ["internal"]
    assert "ValueError" in messages[0] and KEY not in messages[0]


# --- the port: the gateway's own socket or service, or another program ---------------------------

def slurp(pid, text):
    return {"item": {"pid": pid}, "content": base64.b64encode(text.encode()).decode()}


def test_the_gateways_socket_on_a_dual_stack_address_is_its_own():
    assert _gateway.foreign_listeners(GOOD["listeners"], 4001, SOCKET_ACTIVE, ["ActiveState=active"], "litellm") == []


def test_a_service_that_bound_the_port_itself_is_the_gateway_only_as_the_service_user():
    mine = {"address": "0.0.0.0", "port": 4001, "pid": 42, "name": "gunicorn", "user": "litellm"}
    other = dict(mine, user="www-data", pid=43)
    found = _gateway.foreign_listeners([mine, other], "4001", SOCKET_INACTIVE, ["ActiveState=active"], "litellm")
    assert found == [other]
    assert _gateway.foreign_listeners([mine], 4001, SOCKET_INACTIVE, ["ActiveState=inactive"], "litellm") == [mine]


def test_another_port_or_a_stopped_socket_is_not_the_gateways_concern_or_claim():
    elsewhere = {"address": "127.0.0.1", "port": 8001, "pid": 9, "name": "python3", "user": "root"}
    assert _gateway.foreign_listeners([elsewhere], 4001, SOCKET_ACTIVE, [], "litellm") == []
    # systemd's listener while the socket unit is stopped: foreign (another unit holds it).
    assert FilterModule().filters()["gateway_foreign_listeners"](GOOD["listeners"], 4001, SOCKET_INACTIVE, [], "litellm") \
        == GOOD["listeners"]


def test_a_taken_port_names_the_program_and_its_unit():
    taken = {"address": "127.0.0.1", "port": 4011, "pid": 77, "name": "python3", "user": "root"}
    hidden = {"address": "::", "port": 4011, "pid": 0, "name": "", "user": ""}
    messages = errors(litellm_gateway_port=4011, listeners=[taken, hidden], socket_show=SOCKET_INACTIVE,
                      cgroups=[slurp(77, "0::/system.slice/foreign-listener.service\n")])
    assert rule_ids(messages) == ["gateway-port-taken"]
    assert re.search(r"litellm_gateway_port=4011: is taken: 127\.0\.0\.1:4011 \(pid 77 python3, user root, "
                     r"cgroup /system\.slice/foreign-listener\.service\); \[::\]:4011 \(process hidden from this user\)",
                     messages[0]), messages[0]
    assert "litellm-gateway.service or litellm-gateway.socket" in messages[0]


def test_the_rule_ids_are_documented_beside_the_contracts():
    assert not set(_gateway.RULE_IDS) & set(_contract.RULE_IDS)
    messages = [m for changes in ({"service_mgr": "x"}, {"litellm_gateway_num_workers": 0},
                                  {"litellm_gateway_gc_threshold": 1}, {"unpublished": ["b"]}, {"deployments": []})
                for m in errors(**changes)]
    assert set(rule_ids(messages)) <= set(_gateway.RULE_IDS) | set(_contract.RULE_IDS)
