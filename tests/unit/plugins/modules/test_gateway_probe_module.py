"""gateway_probe run as Ansible runs it (a module process with ANSIBLE_MODULE_ARGS), against the
fake OpenAI server of test_gateway_probe: the key stays out of every result, failures name the
model, check mode probes the same."""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "module_utils"))

from module_process import run_module  # noqa: E402  pylint: disable=wrong-import-position
from test_gateway_probe import KEY, FakeGateway  # noqa: E402  pylint: disable=wrong-import-position


@pytest.fixture
def gateway():
    fake = FakeGateway()
    yield fake
    fake.close()


def run(args, check_mode=False):
    return run_module("gateway_probe", args, check_mode)


@pytest.mark.parametrize("check_mode", [False, True])
def test_every_model_served_passes_and_changes_nothing(gateway, check_mode):
    r = run({"url": gateway.url, "api_key": KEY}, check_mode)
    assert r["_rc"] == 0 and not r.get("failed"), r
    assert r["changed"] is False
    assert r["status"] == {"chat": 200, "ocr": 200} and r["problems"] == []
    assert [ln.split(":")[0] for ln in r["lines"]] == ["chat", "ocr"]
    assert r["models"]["ocr"]["stream"]["done"] is True
    assert len(gateway.requests) == 4  # check mode probes the same: nothing on the gateway changes
    assert KEY not in r["_raw"]


def test_a_failing_model_fails_with_its_name_and_keeps_the_results(gateway):
    gateway.faults["ocr"] = {"zero-completion", "stream-no-done"}
    r = run({"url": gateway.url, "api_key": KEY, "max_tokens": 4})
    assert r["failed"] is True and r["_rc"] == 1
    assert r["msg"] == ("gateway %s: model ocr: the completion reports completion_tokens=0, not a count > 0"
                        " | model ocr: the streamed completion ended without data: [DONE] after 6 chunks" % gateway.url)
    assert r["status"] == {"chat": 200, "ocr": 200}
    assert r["lines"][0].startswith("chat: ok") and r["lines"][1].startswith("ocr: FAILED")
    assert all(q["max_tokens"] == 4 for q in gateway.requests)
    assert KEY not in r["_raw"]


def test_the_master_key_is_masked_even_where_the_gateway_echoes_it(gateway):
    wrong = "sk-" + "w" * 24
    r = run({"url": gateway.url, "api_key": wrong})
    assert r["failed"] is True
    assert "HTTP 401: Authentication Error" in r["msg"]
    assert wrong not in r["_raw"]
    assert r["invocation"]["module_args"]["api_key"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


@pytest.mark.parametrize("args, message", [
    ({"max_tokens": 0}, "max_tokens=0 and timeout=120 must both be at least 1"),
    ({"timeout": 0}, "max_tokens=16 and timeout=0 must both be at least 1"),
    ({"url": "127.0.0.1:4001"}, "url='127.0.0.1:4001' must start with http:// or https://"),
])
def test_bad_input_is_refused_before_any_request(gateway, args, message):
    r = run(dict({"url": gateway.url, "api_key": KEY}, **args))
    assert r["failed"] is True and message in r["msg"]
    assert gateway.requests == []


def test_missing_key_is_refused():
    r = run({"url": "http://127.0.0.1:9"})
    assert r["failed"] is True and "api_key" in r["msg"]
