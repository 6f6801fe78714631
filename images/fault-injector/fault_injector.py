#!/usr/bin/env python3
"""FAULT INJECTOR: an OpenAI-compatible HTTP server with NO model behind it.

Real serving is tested with real vLLM (images/vllm). This server exists where a fault
has to be injected, which a real model server cannot be made to do on demand: a model
that never turns healthy, hangs, crashes while loading or after, or answers errors
(Molecule model_stack's failure test, the litellm_gateway scenario's backends, the
benchmarks of the gate and the gateway). From the outside it behaves like a vLLM server
(``/health``, ``/v1/models``, ``/v1/chat/completions`` with and without streaming,
``/metrics``) and answers with a deterministic echo of the last user message. It is not
an LLM.

Load behaviour: the port is open at once; ``/health`` answers 503 while "loading"
and 200 after ``--load-delay`` seconds. Failure modes (``--fail-mode``) simulate a
model that never gets healthy, crashes while loading, crashes when loading ends,
dies some time after being healthy, or answers completions with errors.

Every event is logged to stderr as one line:
``<ISO-8601 UTC time> fault-injector model=<name> event=<event> t=<unix time> ...``
so tests can order "loading_started" and "healthy" across several servers.

Python 3 standard library only. CLI (kept stable, other roles rely on it):
``python3 fault_injector.py --host 127.0.0.1 --port 8001 --model NAME [--load-delay S]
[--fail-mode never-healthy]``

It also answers to vLLM's own command line, as model_stack renders it for vLLM
(``vllm serve MODEL --host H --port P --served-model-name NAME ...``; the image has a
``vllm`` command that runs this file): the served name becomes ``--model``, flags this
server knows (``--max-model-len``, ``--load-delay``, ``--fail-mode``...) apply, the others
(``--gpu-memory-utilization``, ``--enforce-eager``...) are logged and ignored. So one
model entry with ``image: multillm-fault-injector:latest`` and ``extra_args: [--fail-mode,
never-healthy]`` injects a fault into a host whose other models run real vLLM.
"""

import argparse
import datetime
import json
import os
import signal
import struct
import sys
import threading
import time
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAIL_MODES = (
    "none",  # healthy after the load delay, serves forever
    "never-healthy",  # /health stays 503 forever
    "crash-during-load",  # exits 1 halfway through the load delay
    "crash-after-load",  # exits 1 when loading ends, never healthy (like a failed KV allocation)
    "die-after-healthy",  # healthy, then exits 1 after --fail-after seconds
    "error-responses",  # healthy, but completions answer 500
)
MAX_BODY = 8 * 1024 * 1024
NOTE = "fault injector (no model loaded): deterministic echo"


def log(model, event, **fields):
    now = time.time()
    stamp = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).isoformat(timespec="microseconds")
    extra = "".join(f" {k}={v}" for k, v in fields.items())
    sys.stderr.write(f"{stamp} fault-injector model={model} event={event} t={now:.6f}{extra}\n")
    sys.stderr.flush()


class State:
    """What the server knows about itself; shared by all request threads."""

    def __init__(self, args):
        self.args = args
        self.started = time.time()
        self.healthy = False
        self.lock = threading.Lock()
        self.requests = {}
        self.tokens_out = 0

    def count(self, path, status):
        with self.lock:
            key = (path, int(status))
            self.requests[key] = self.requests.get(key, 0) + 1


def kvcached_segment(model):
    """Mimic kvcached's 24-byte /dev/shm/<KVCACHED_IPC_NAME> segment (int64 limit, used,
    prealloc) when the container asks for kvcached. Like kvcached on vLLM (its issue #477)
    the segment is NOT removed on exit: whoever stops the container must clean it up."""
    if os.environ.get("ENABLE_KVCACHED", "").lower() not in ("1", "true", "yes"):
        return
    ipc = os.environ.get("KVCACHED_IPC_NAME") or f"kvcached_vLLM_{os.getpgid(0)}"
    limit = int(float(os.environ.get("FAULT_INJECTOR_KV_LIMIT_GIB", "1")) * (1 << 30))
    try:
        with open(os.path.join("/dev/shm", ipc), "wb") as f:
            f.write(struct.pack("<qqq", limit, 0, 0))
        log(model, "kvcached_segment", path=f"/dev/shm/{ipc}")
    except OSError as exc:
        log(model, "kvcached_segment_failed", error=str(exc).replace(" ", "_"))


def loader(state):
    """Simulate loading, then turn healthy (or fail as --fail-mode says)."""
    args = state.args
    log(args.model, "loading_started", load_delay=args.load_delay, fail_mode=args.fail_mode, port=args.port)
    kvcached_segment(args.model)
    if args.fail_mode == "crash-during-load":
        time.sleep(args.load_delay / 2)
        log(args.model, "crashed", reason="crash-during-load")
        os._exit(1)
    time.sleep(args.load_delay)
    if args.fail_mode == "never-healthy":
        log(args.model, "loading_stuck", reason="never-healthy")
        return
    if args.fail_mode == "crash-after-load":
        log(args.model, "crashed", reason="crash-after-load")
        os._exit(1)
    state.healthy = True
    log(args.model, "healthy", after_s=f"{time.time() - state.started:.3f}")
    if args.fail_mode == "die-after-healthy":
        time.sleep(args.fail_after)
        log(args.model, "crashed", reason="die-after-healthy")
        os._exit(1)


def words(text):
    return text.split()


def message_text(content):
    """OpenAI message content is a string or a list of parts; keep the text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def reply_for(model, messages, max_tokens):
    last_user = ""
    prompt_words = 0
    for m in messages:
        if not isinstance(m, dict):
            continue
        text = message_text(m.get("content"))
        prompt_words += len(words(text))
        if m.get("role") == "user":
            last_user = text
    out = f"[fault-injector {model}] {last_user}".split()
    finish = "stop"
    if max_tokens is not None and len(out) > max_tokens:
        out, finish = out[:max_tokens], "length"
    return out, prompt_words, finish


class Handler(BaseHTTPRequestHandler):
    # Headers and body go out in separate writes: without TCP_NODELAY each answer on a kept-open
    # connection waits ~40 ms for the peer's delayed ACK (Nagle), which a real vLLM does not do.
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    server_version = "multillm-fault-injector/1"
    state = None  # set in main()

    def log_message(self, fmt, *args):  # quiet access log; events are logged by log()
        if self.state.args.access_log:
            log(self.state.args.model, "request", line=(fmt % args).replace(" ", "_"))

    # --- helpers -------------------------------------------------------------
    def send_json(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.state.count(self.path.split("?")[0], status)

    def send_error_json(self, status, message, err_type="invalid_request_error"):
        self.send_json(status, {"error": {"message": message, "type": err_type, "param": None, "code": int(status)}})

    def read_json(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError(f"request body of {length} bytes is larger than {MAX_BODY}")
        raw = self.rfile.read(length) if length else b""
        data = json.loads(raw or b"{}")
        if not isinstance(data, dict):
            raise ValueError("request body must be a JSON object")
        return data

    def write_chunk(self, data):
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")

    # --- routes --------------------------------------------------------------
    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/health":
            if self.state.healthy:
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Length", "0")
                self.end_headers()
                self.state.count(path, 200)
            else:
                self.send_error_json(HTTPStatus.SERVICE_UNAVAILABLE, "fault injector: model is loading", "service_unavailable")
        elif path == "/v1/models":
            self.send_json(HTTPStatus.OK, {"object": "list", "data": [self.model_card()]})
        elif path == "/metrics":
            self.send_metrics()
        elif path == "/version":
            self.send_json(HTTPStatus.OK, {"version": "fault-injector-1", "note": NOTE})
        else:
            self.send_error_json(HTTPStatus.NOT_FOUND, f"no route {path}", "not_found")

    def do_POST(self):
        path = self.path.split("?")[0]
        if path not in ("/v1/chat/completions", "/v1/completions"):
            self.send_error_json(HTTPStatus.NOT_FOUND, f"no route {path}", "not_found")
            return
        try:
            req = self.read_json()
        except (ValueError, json.JSONDecodeError) as exc:
            self.send_error_json(HTTPStatus.BAD_REQUEST, f"invalid JSON body: {exc}")
            return
        if not self.state.healthy:
            self.send_error_json(HTTPStatus.SERVICE_UNAVAILABLE, "fault injector: model is loading", "service_unavailable")
            return
        model = req.get("model", self.state.args.model)
        if model != self.state.args.model:
            self.send_error_json(HTTPStatus.NOT_FOUND, f"The model `{model}` does not exist.", "NotFoundError")
            return
        if self.state.args.fail_mode == "error-responses":
            self.send_error_json(HTTPStatus.INTERNAL_SERVER_ERROR, "fault injector: fail-mode error-responses", "internal_server_error")
            return
        if path == "/v1/completions":
            messages = [{"role": "user", "content": str(req.get("prompt", ""))}]
        else:
            messages = req.get("messages")
            if not isinstance(messages, list) or not messages:
                self.send_error_json(HTTPStatus.BAD_REQUEST, "'messages' must be a non-empty list")
                return
        max_tokens = req.get("max_completion_tokens", req.get("max_tokens"))
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            self.send_error_json(HTTPStatus.BAD_REQUEST, "'max_tokens' must be a positive integer")
            return
        out, prompt_tokens, finish = reply_for(model, messages, max_tokens)
        if self.state.args.response_delay:
            time.sleep(self.state.args.response_delay)
        with self.state.lock:
            self.state.tokens_out += len(out)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(out), "total_tokens": prompt_tokens + len(out)}
        if req.get("stream"):
            include_usage = bool((req.get("stream_options") or {}).get("include_usage"))
            self.stream(path, model, out, finish, usage if include_usage else None)
        else:
            self.send_json(HTTPStatus.OK, self.completion(path, model, out, finish, usage))

    # --- bodies --------------------------------------------------------------
    def model_card(self):
        return {
            "id": self.state.args.model,
            "object": "model",
            "created": int(self.state.started),
            "owned_by": "multillm-fault-injector",
            "root": self.state.args.model,
            "parent": None,
            "max_model_len": self.state.args.max_model_len,
        }

    def completion(self, path, model, out, finish, usage):
        text = " ".join(out)
        if path == "/v1/completions":
            return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                    "model": model, "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}],
                    "usage": usage}
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                "model": model, "system_fingerprint": "fault-injector",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish,
                             "logprobs": None}],
                "usage": usage}

    def stream(self, path, model, out, finish, usage):
        cid = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        chat = path == "/v1/chat/completions"
        obj = "chat.completion.chunk" if chat else "text_completion"
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def event(choice, with_usage=None):
            body = {"id": cid, "object": obj, "created": created, "model": model,
                    "choices": [choice] if choice is not None else []}
            if with_usage is not None:
                body["usage"] = with_usage
            self.write_chunk(b"data: " + json.dumps(body).encode() + b"\n\n")

        try:
            if chat:
                event({"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None, "logprobs": None})
            for i, word in enumerate(out):
                piece = word if i == 0 else " " + word
                if chat:
                    event({"index": 0, "delta": {"content": piece}, "finish_reason": None, "logprobs": None})
                else:
                    event({"index": 0, "text": piece, "finish_reason": None, "logprobs": None})
                if self.state.args.token_delay:
                    self.wfile.flush()
                    time.sleep(self.state.args.token_delay)
            if chat:
                event({"index": 0, "delta": {}, "finish_reason": finish, "logprobs": None})
            else:
                event({"index": 0, "text": "", "finish_reason": finish, "logprobs": None})
            if usage is not None:
                event(None, usage)
            self.write_chunk(b"data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        self.state.count(path, 200)

    def send_metrics(self):
        s = self.state
        lines = [
            "# HELP fault_injector_info Fault injector model server (no model loaded).",
            "# TYPE fault_injector_info gauge",
            f'fault_injector_info{{model_name="{s.args.model}",fail_mode="{s.args.fail_mode}"}} 1',
            "# HELP fault_injector_healthy 1 once the simulated load has finished.",
            "# TYPE fault_injector_healthy gauge",
            f"fault_injector_healthy {1 if s.healthy else 0}",
            "# HELP fault_injector_uptime_seconds Seconds since the process started.",
            "# TYPE fault_injector_uptime_seconds gauge",
            f"fault_injector_uptime_seconds {time.time() - s.started:.3f}",
            "# HELP fault_injector_requests_total Requests answered, by path and status.",
            "# TYPE fault_injector_requests_total counter",
        ]
        with s.lock:
            for (path, status), n in sorted(s.requests.items()):
                lines.append(f'fault_injector_requests_total{{path="{path}",status="{status}"}} {n}')
            lines += ["# HELP fault_injector_generation_tokens_total Words sent as completion tokens.",
                      "# TYPE fault_injector_generation_tokens_total counter",
                      f"fault_injector_generation_tokens_total {s.tokens_out}"]
        body = ("\n".join(lines) + "\n").encode()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def vllm_serve_args(argv):
    """The arguments of `vllm serve MODEL ...` as this server's: the model (a positional
    path or id) is dropped, --served-model-name becomes --model."""
    if argv and not argv[0].startswith("-"):
        argv = argv[1:]
    out = []
    for a in argv:
        if a == "--served-model-name":
            a = "--model"
        elif a.startswith("--served-model-name="):
            a = "--model=" + a.split("=", 1)[1]
        out.append(a)
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="FAULT INJECTOR: OpenAI-compatible model server (no model; deterministic echo).")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    p.add_argument("--model", default="fault-injector", help="served model name, as in /v1/models")
    p.add_argument("--load-delay", type=float, default=0.0, help="seconds /health answers 503 before 200")
    p.add_argument("--fail-mode", choices=FAIL_MODES, default="none", help="simulated failure (default none)")
    p.add_argument("--fail-after", type=float, default=5.0, help="die-after-healthy: seconds healthy before exit")
    p.add_argument("--response-delay", type=float, default=0.0, help="seconds before each completion answers")
    p.add_argument("--token-delay", type=float, default=0.0, help="seconds between streamed chunks")
    p.add_argument("--max-model-len", type=int, default=4096, help="reported in /v1/models")
    p.add_argument("--access-log", action="store_true", help="log every request")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        args, args.ignored = p.parse_known_args(vllm_serve_args(argv[1:]))
    else:
        args = p.parse_args(argv)
        args.ignored = []
    if args.load_delay < 0 or args.fail_after < 0 or args.response_delay < 0 or args.token_delay < 0:
        p.error("delays must be >= 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    state = State(args)
    Handler.state = state
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer((args.host, args.port), Handler)

    def stop(signum, _frame):
        log(args.model, "stopping", signal=signal.Signals(signum).name)
        raise SystemExit(0)

    # As PID 1 in a container, a process without handlers ignores SIGTERM.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log(args.model, "listening", host=args.host, port=args.port, note="FAULT-INJECTOR_no_model",
        ignored=",".join(args.ignored) or "none")
    threading.Thread(target=loader, args=(state,), daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.05)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
