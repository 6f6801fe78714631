"""Issue 15 item 8: the image pull is its own task, without no_log, with a progress line per
slice and the registry's own error. model_stack's tasks/images.yml runs against a fake Docker
Engine API on a unix socket (no Docker needed): one image pulls slowly, one is refused by
its registry."""

import json
import os
import pathlib
import socketserver
import subprocess
import sys
import threading
import time
import http.server
from urllib.parse import parse_qs, unquote, urlparse

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]
SLOW, REFUSED = "registry.test/slow:1", "registry.test/refused:1"
REGISTRY_ERROR = "manifest for registry.test/refused:1 not found: manifest unknown"


class FakeEngine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path, pull_seconds):
        self.pulled, self.pull_seconds = set(), pull_seconds
        super().__init__(path, Handler)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def address_string(self):
        return "fake"

    def log_message(self, *_):
        pass

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        self.wfile.write(data)

    def path_(self):
        path = urlparse(self.path).path
        return "/" + path.split("/", 2)[2] if path.startswith("/v1.") else path

    def do_GET(self):  # noqa: N802
        path = self.path_()
        if path == "/_ping":
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"OK")
            self.close_connection = True
        elif path == "/version":
            self.reply(200, {"ApiVersion": "1.41", "MinAPIVersion": "1.12", "Version": "20.10.24", "Os": "linux"})
        elif path == "/images/json":
            ref = json.loads(parse_qs(urlparse(self.path).query).get("filters", ["{}"])[0]).get("reference", [""])[0]
            self.reply(200, [{"Id": "sha256:" + "a" * 64, "RepoTags": [n]} for n in sorted(self.server.pulled)
                             if n.split(":")[0] == ref.split(":")[0]])
        elif path.startswith("/images/") and path.endswith("/json"):
            name = unquote(path[len("/images/"):-len("/json")])
            if name in self.server.pulled or (name.startswith("sha256:") and self.server.pulled):
                self.reply(200, {"Id": "sha256:" + "a" * 64, "RepoTags": [name]})
            else:
                self.reply(404, {"message": "No such image: " + name})
        else:
            self.reply(404, {"message": "not faked: " + path})

    def do_POST(self):  # noqa: N802
        q = parse_qs(urlparse(self.path).query)
        name = "%s:%s" % (q["fromImage"][0], q.get("tag", ["latest"])[0])
        # The engine streams its pull as chunked JSON lines, the last one being the error if any.
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(obj):
            data = json.dumps(obj).encode() + b"\r\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        if name == REFUSED:
            chunk({"errorDetail": {"message": REGISTRY_ERROR}, "error": REGISTRY_ERROR})
        else:
            end = time.time() + self.server.pull_seconds
            while time.time() < end:
                chunk({"status": "Downloading", "id": "layer"})
                time.sleep(0.5)
            self.server.pulled.add(name)
            chunk({"status": "Status: Downloaded newer image for " + name})
        self.wfile.write(b"0\r\n\r\n")
        self.close_connection = True


PLAY = """
- hosts: localhost
  gather_facts: false
  vars:
    multillm_models: [{name: a, model: a/b, port: 8001, gpu_memory_utilization: 0.5}]
    model_stack_image_pull: missing
    model_stack_image_archives: []
    model_stack_progress_every_s: 1
    __model_stack_specs: %s
  module_defaults:
    group/community.docker.docker:
      docker_host: unix://%s
  tasks:
    - ansible.builtin.include_role:
        name: llmops.multillm.model_stack
        tasks_from: images.yml
"""


def run_images(tmp_path, images, pull_seconds):
    sock = str(tmp_path / "docker.sock")
    engine = FakeEngine(sock, pull_seconds)
    threading.Thread(target=engine.serve_forever, daemon=True).start()
    play = tmp_path / "play.yml"
    play.write_text(PLAY % (json.dumps([{"image": i} for i in images]), sock))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"),
               ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    bindir = pathlib.Path(sys.executable).parent
    try:
        proc = subprocess.run([str(bindir / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                               "-e", "ansible_python_interpreter=" + sys.executable, str(play)],
                              env=env, capture_output=True, text=True, timeout=180, cwd=str(tmp_path))
    finally:
        engine.shutdown()
    return proc


def test_a_slow_pull_shows_progress_and_a_refused_one_shows_the_registrys_error(tmp_path):
    proc = run_images(tmp_path, [SLOW, REFUSED], pull_seconds=4)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    # the slow pull: one line per second waited, then pulled
    for waited in ("%s: 0 s" % SLOW, "%s: 1 s" % SLOW, "%s: 2 s" % SLOW):
        assert waited in out, out
    assert "%s: pulled" % SLOW in out, out
    # the refused one: its own task fails with the registry's words, nothing censored
    assert REGISTRY_ERROR in out and "could not be pulled" in out, out
    assert "censored" not in out


def test_the_pull_tasks_carry_no_no_log():
    for name in ("images.yml", "image_pull.yml"):
        tasks = yaml.safe_load((ROOT / "roles" / "model_stack" / "tasks" / name).read_text())
        assert not [t for t in tasks if t.get("no_log")], name
    images = yaml.safe_load((ROOT / "roles" / "model_stack" / "tasks" / "images.yml").read_text())
    assert any("community.docker.docker_image_pull" in t for t in images)
