"""The lines the verify summary prints to be pasted (curl, the OpenAI client) run as printed.

Apart from test_summary.py: it needs the openai package of the development toolchain, which
the ansible-core floor's small virtualenv (scripts/floor.sh) does not hold; _summary.py is pure
Python and loaded from its file.
"""

import http.server
import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
import threading

import pytest

SOURCE = pathlib.Path(__file__).resolve().parents[4] / "plugins" / "module_utils" / "_summary.py"
_spec = importlib.util.spec_from_file_location("multillm_summary", str(SOURCE))
_summary = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_summary)

QWEN = "qwen2.5-14b-instruct"


def facts(port):
    return {"host": "h100-01", "models": [{"name": QWEN}], "verify": {QWEN: {"health": 200}},
            "gateways": [{"host": "h100-01", "address": "127.0.0.1", "bind_address": "0.0.0.0", "port": port,
                          "status": {QWEN: 200}}]}


def test_the_printed_curl_lines_and_client_snippet_run_as_printed(tmp_path):
    """Against a stand-in OpenAI server that wants the key from the environment."""
    if not shutil.which("curl"):
        pytest.fail("curl is needed to run the printed curl lines")
    key, seen = "sk-test-summary-0123456789", []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self, body):
            seen.append((self.command, self.path, self.headers.get("Authorization")))
            ok = self.headers.get("Authorization") == "Bearer " + key
            data = json.dumps(body if ok else {"error": "bad key"}).encode()
            self.send_response(200 if ok else 401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._answer({"object": "list", "data": [{"id": QWEN, "object": "model", "created": 0, "owned_by": "x"}]})

        def do_POST(self):
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self._answer({"id": "c", "object": "chat.completion", "created": 0, "model": request["model"],
                          "choices": [{"index": 0, "finish_reason": "stop",
                                       "message": {"role": "assistant", "content": "hi from " + request["model"]}}]})

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        lines = _summary.verify_summary(facts(server.server_port))
        start = next(i for i, line in enumerate(lines) if line.startswith("  curl"))
        python = lines.index("  # Python, with the openai package:")
        env = dict(os.environ, LITELLM_MASTER_KEY=key, NO_PROXY="*", no_proxy="*")
        shell = subprocess.run(["bash", "-euc", textwrap.dedent("\n".join(lines[start:python]))],
                               env=env, capture_output=True, text=True, timeout=30)
        assert shell.returncode == 0, shell.stderr
        assert '"id": "qwen2.5-14b-instruct"' in shell.stdout and "hi from qwen2.5-14b-instruct" in shell.stdout
        client = textwrap.dedent("\n".join(line for line in lines[python + 1:] if line.startswith("  ")))
        out = subprocess.run([sys.executable, "-c", client], env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "hi from qwen2.5-14b-instruct"
    finally:
        server.shutdown()
    assert [s[2] for s in seen] == ["Bearer " + key] * 3
    assert key not in "\n".join(lines)
