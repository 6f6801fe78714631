"""_gateway_probe against a fake OpenAI server on loopback (http.server): real HTTP, real SSE."""

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.llmops.multillm.plugins.module_utils._gateway_probe import (
    error_text,
    probe_gateway,
    redact,
    usage_problems,
)

KEY = "sk-unit-probe-key-0123456789"
GOOD_USAGE = {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}


class FakeGateway:
    """An OpenAI-compatible server. faults[model] is a set of what that model does wrong:
    no-usage, zero-completion, bad-total (the plain completion); http-500 (both requests);
    stream-500, stream-no-done, stream-no-usage, stream-no-content, stream-hang (the streamed one)."""

    def __init__(self, models=("chat", "ocr")):
        self.models = list(models)
        self.faults = {}
        self.requests = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_):
                pass

            def send(self, status, obj):
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def authorized(self):
                sent = self.headers.get("Authorization", "")
                if sent == "Bearer " + KEY:
                    return True
                # As LiteLLM answers a wrong key: it quotes (part of) what it received.
                self.send(401, {"error": {"message": "Authentication Error, Invalid proxy server token passed. "
                                                     "Received API Key = %s" % sent[7:], "code": "401"}})
                return False

            def do_GET(self):  # noqa: N802
                if self.authorized():
                    self.send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in fake.models]})

            def do_POST(self):  # noqa: N802
                if not self.authorized():
                    return
                req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(req)
                faults = fake.faults.get(req["model"], set())
                streamed = bool(req.get("stream"))
                if "http-500" in faults or (streamed and "stream-500" in faults):
                    self.send(500, {"error": {"message": "litellm.InternalServerError: backend %s is down" % req["model"]}})
                    return
                if streamed:
                    self.stream(req, faults)
                    return
                usage = dict(GOOD_USAGE)
                if "zero-completion" in faults:
                    usage.update(completion_tokens=0, total_tokens=4)
                if "bad-total" in faults:
                    usage["total_tokens"] = 99
                body = {"object": "chat.completion", "model": req["model"],
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok ok ok"}}]}
                if "no-usage" not in faults:
                    body["usage"] = usage
                self.send(200, body)

            def stream(self, req, faults):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()

                def chunk(data):
                    payload = b"data: " + data + b"\n\n"
                    self.wfile.write(b"%X\r\n%s\r\n" % (len(payload), payload))
                    self.wfile.flush()

                def event(choices, usage=None):
                    body = {"object": "chat.completion.chunk", "model": req["model"], "choices": choices}
                    if usage is not None or req.get("stream_options", {}).get("include_usage"):
                        body["usage"] = usage  # null until the last chunk, as vLLM sends it
                    chunk(json.dumps(body).encode())

                event([{"index": 0, "delta": {"role": "assistant", "content": ""}}])
                if "stream-no-content" not in faults:
                    for word in ("ok", " ok", " ok"):
                        event([{"index": 0, "delta": {"content": word}}])
                if "stream-hang" in faults:
                    time.sleep(3)
                    return
                event([{"index": 0, "delta": {}, "finish_reason": "stop"}])
                if "stream-no-usage" not in faults and req.get("stream_options", {}).get("include_usage"):
                    event([], GOOD_USAGE)
                if "stream-no-done" not in faults:
                    chunk(b"[DONE]")
                self.wfile.write(b"0\r\n\r\n")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway():
    fake = FakeGateway()
    yield fake
    fake.close()


def test_good_answers_pass_with_figures_per_model(gateway):
    r = probe_gateway(gateway.url + "/", KEY)
    assert r["problems"] == []
    assert r["status"] == {"chat": 200, "ocr": 200}
    assert sorted(r["models"]) == ["chat", "ocr"]
    comp, stream = r["models"]["chat"]["completion"], r["models"]["chat"]["stream"]
    assert (comp["prompt_tokens"], comp["completion_tokens"], comp["total_tokens"]) == (4, 3, 7)
    assert comp["latency_s"] >= 0
    assert (stream["content_chunks"], stream["chunks"], stream["done"]) == (3, 6, True)
    assert stream["first_content_s"] <= stream["latency_s"]
    assert stream["total_tokens"] == 7
    assert r["lines"][0].startswith("chat: ok | completion 200 in ")
    assert "stream 200: 3 content chunks of 6" in r["lines"][0] and r["lines"][0].endswith("4+3=7 tokens, [DONE]")
    assert all("  " not in line for line in r["lines"])
    # What was asked: one plain and one streamed request per model, the streamed one with usage.
    plain = [q for q in gateway.requests if not q.get("stream")]
    streamed = [q for q in gateway.requests if q.get("stream")]
    assert sorted(q["model"] for q in plain) == sorted(q["model"] for q in streamed) == ["chat", "ocr"]
    assert all(q["stream_options"] == {"include_usage": True} for q in streamed)
    assert all(q["max_tokens"] == 16 for q in gateway.requests)


def test_named_models_only_and_one_not_listed(gateway):
    r = probe_gateway(gateway.url, KEY, models=["ocr", "qwen"])
    assert list(r["models"]) == ["ocr"]
    assert r["problems"] == ["model qwen: the gateway does not list it (it lists: chat, ocr)"]
    assert r["status"] == {"ocr": 200, "qwen": 404}


@pytest.mark.parametrize("fault, expected", [
    ("no-usage", "model ocr: the completion carries no usage figures"),
    ("zero-completion", "model ocr: the completion reports completion_tokens=0, not a count > 0"),
    ("bad-total", "model ocr: the completion reports total_tokens=99, not prompt + completion tokens = 7"),
    ("stream-no-done", "model ocr: the streamed completion ended without data: [DONE] after 6 chunks"),
    ("stream-no-usage", "model ocr: the streamed completion carries no usage figures "
                        "(asked for with stream_options.include_usage)"),
    ("stream-no-content", "model ocr: the streamed completion yielded no content delta in 3 chunks"),
])
def test_each_shortfall_names_the_model_and_what_was_wrong(gateway, fault, expected):
    gateway.faults["ocr"] = {fault}
    r = probe_gateway(gateway.url, KEY)
    assert r["problems"] == [expected]
    assert r["models"]["chat"]["problems"] == []
    assert r["status"] == {"chat": 200, "ocr": 200}
    line = [ln for ln in r["lines"] if ln.startswith("ocr:")][0]
    assert line.startswith("ocr: FAILED | ")


def test_http_500_shows_the_status_and_the_gateway_s_message(gateway):
    gateway.faults["chat"] = {"http-500"}
    r = probe_gateway(gateway.url, KEY)
    assert r["status"] == {"chat": 500, "ocr": 200}
    assert "model chat: the completion: HTTP 500: litellm.InternalServerError: backend chat is down" in r["problems"]
    assert "model chat: the streamed completion: HTTP 500: litellm.InternalServerError: backend chat is down" in r["problems"]
    assert r["lines"][0].startswith("chat: FAILED | completion 500 in n/a, tokens n/a | stream 500: 0 content chunks")


def test_a_stream_failing_alone_gives_its_status(gateway):
    gateway.faults["chat"] = {"stream-500"}
    r = probe_gateway(gateway.url, KEY)
    assert r["status"]["chat"] == 500
    assert r["problems"] == ["model chat: the streamed completion: HTTP 500: litellm.InternalServerError: backend chat is down"]


def test_wrong_key_401_is_named_and_the_key_never_shows(gateway):
    wrong = "sk-wrong-key-abcdef"
    r = probe_gateway(gateway.url, wrong)
    assert r["models"] == {} and r["status"] == {}
    (problem,) = r["problems"]
    assert problem.startswith("the gateway's model list (GET %s/v1/models): HTTP 401: Authentication Error" % gateway.url)
    assert problem.endswith("Received API Key = <redacted>")
    assert wrong not in json.dumps(r)


def test_connection_refused_is_named_with_the_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = "http://127.0.0.1:%d" % port
    r = probe_gateway(url, KEY)
    (problem,) = r["problems"]
    assert problem.startswith("the gateway's model list (GET %s/v1/models): no answer from %s/v1/models:" % (url, url))
    assert "refused" in problem.lower()


def test_a_stream_that_stalls_past_the_timeout_is_named(gateway):
    gateway.faults["chat"] = {"stream-hang"}
    r = probe_gateway(gateway.url, KEY, models=["chat"], timeout=1)
    problems = r["problems"]
    assert problems[0].startswith("model chat: the streamed completion broke off after 4 chunks:")
    assert "model chat: the streamed completion ended without data: [DONE] after 4 chunks" in problems
    assert r["models"]["chat"]["stream"]["content_chunks"] == 3


def test_an_empty_model_list_is_a_problem(gateway):
    gateway.models = []
    assert probe_gateway(gateway.url, KEY)["problems"] == ["the gateway at %s lists no model" % gateway.url]


@pytest.mark.parametrize("usage, problems", [
    (GOOD_USAGE, []),
    (None, ["x carries no usage figures"]),
    ({"prompt_tokens": True, "completion_tokens": 2, "total_tokens": 3},
     ["x reports prompt_tokens=true, not a count > 0"]),
    ({"prompt_tokens": 2, "completion_tokens": "3", "total_tokens": 5},
     ['x reports completion_tokens="3", not a count > 0']),
    ({"prompt_tokens": 2, "completion_tokens": 3},
     ["x reports total_tokens=null, not prompt + completion tokens = 5"]),
])
def test_usage_problems(usage, problems):
    assert usage_problems(usage, "x") == problems


def test_error_text_reads_openai_errors_and_redacts_keys():
    assert error_text(b'{"error": {"message": "bad  model\\n name"}}', KEY) == "bad model name"
    assert error_text('{"detail": "Not Found"}', KEY) == "Not Found"
    assert error_text(b"", KEY) == "(empty body)"
    assert error_text("x" * 500, KEY).endswith("...") and len(error_text("x" * 500, KEY)) == 303
    assert redact("Bearer %s and api_key: abc" % KEY, KEY) == "Bearer <redacted> and api_key: <redacted>"
    assert redact("sent %s" % KEY, KEY) == "sent <key>"
