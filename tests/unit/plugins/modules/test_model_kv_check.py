"""model_kv_check run as Ansible runs it, against fake vLLM /metrics on loopback."""

import http.server
import pathlib
import sys
import threading

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "module_utils"))

from module_process import run_module  # noqa: E402  pylint: disable=wrong-import-position
from test_kv_capacity import KVCACHED_14B, SQUEEZED_14B, STATIC_14B  # noqa: E402  pylint: disable=wrong-import-position


@pytest.fixture
def metrics():
    """A loopback server: metrics['/a'] = text serves it at /a; other paths answer 404."""
    pages = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = pages.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            self.wfile.write((body or "").encode())

        def log_message(self, *_):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    pages["base"] = "http://127.0.0.1:%d" % server.server_address[1]
    yield pages
    server.shutdown()


def run(args):
    return run_module("model_kv_check", args)


def model(pages, name, path, text, kv_tokens=None, index=0):
    if text is not None:
        pages[path] = text
    return {"name": name, "index": index, "unit": "multillm-model-%s.service" % name,
            "metrics_url": pages["base"] + path, "kv_tokens": kv_tokens}


def test_reports_capacity_and_passes_within_the_plan(metrics):
    r = run({"host": "gpu1", "models": [model(metrics, "qwen", "/q", KVCACHED_14B, 55952),
                                        model(metrics, "ocr", "/o", STATIC_14B, None, 1)]})
    assert r["_rc"] == 0 and not r.get("failed") and r["changed"] is False
    assert r["models"]["qwen"] == {"kv_tokens": 53760, "blocks": 3360, "block_size": 16,
                                   "planned": 55952, "floor": 50357}
    assert r["models"]["ocr"]["planned"] is None
    assert r["summary"][0].startswith("qwen: 53760 KV tokens (3360 blocks x 16), plan 55952")


def test_fails_naming_the_squeezed_model_only(metrics):
    r = run({"host": "gpu1", "models": [model(metrics, "qwen", "/q", SQUEEZED_14B, 55952),
                                        model(metrics, "ocr", "/o", STATIC_14B, 55952, 1)]})
    assert r["failed"] and r["_rc"] != 0
    assert "host gpu1: model qwen (multillm_models[0]) has a KV cache of 40240 tokens" in r["msg"]
    assert "model ocr" not in r["msg"]
    assert r["models"]["qwen"]["kv_tokens"] == 40240  # the figures come back with the failure


def test_a_server_without_the_metric_fails_naming_it(metrics):
    r = run({"host": "gpu1", "models": [model(metrics, "injector", "/s", "up 1\n", 1000),
                                        model(metrics, "gone", "/missing", None, 1000, 1)]})
    assert r["failed"]
    assert "model injector (multillm_models[0]): its KV capacity could not be read" in r["msg"]
    assert "no vllm:cache_config_info" in r["msg"]
    assert "model gone (multillm_models[1])" in r["msg"] and "404" in r["msg"]


def test_tolerance_zero_holds_the_plan_exactly(metrics):
    r = run({"host": "h", "tolerance_pct": 0, "models": [model(metrics, "qwen", "/q", KVCACHED_14B, 53761)]})
    assert r["failed"] and "53760 tokens" in r["msg"]


@pytest.mark.parametrize("args, says", [
    ({"tolerance_pct": float("nan")}, "tolerance_pct"),
    ({"tolerance_pct": 100}, "tolerance_pct"),
    ({"models_kv": 0}, "kv_tokens=0"),
])
def test_bad_arguments_fail_before_any_read(metrics, args, says):
    kv = args.pop("models_kv", None)
    r = run(dict(args, models=[{"name": "m", "metrics_url": "http://127.0.0.1:9/metrics",
                                "kv_tokens": 1000 if kv is None else kv}]))
    assert r["failed"] and says in r["msg"] and "could not be read" not in r["msg"]


def test_without_a_plan_an_unreadable_capacity_is_shown_not_failed(metrics):
    r = run({"host": "h", "models": [model(metrics, "cpu", "/c", "up 1\n", None),
                                     model(metrics, "qwen", "/q", STATIC_14B, 53760, 1)]})
    assert r["_rc"] == 0 and not r.get("failed"), r
    assert r["models"]["cpu"]["kv_tokens"] is None and "no vllm:cache_config_info" in r["models"]["cpu"]["error"]
    assert r["summary"][0].startswith("cpu: KV capacity not readable")
