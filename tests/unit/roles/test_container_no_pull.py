"""Issue 15 item 8, the rest: model_stack's container tasks run under no_log (a model's env holds
the token), so they must never pull an image, or a pull error would be hidden. configure.yml's
tasks, as written, run against a fake Docker Engine API (as in test_image_pull.py) with an image
that is not on the host: no pull reaches the engine, and the step stops first with a message
that names the image and the model, uncensored."""

import http.server
import json
import os
import pathlib
import socketserver
import subprocess
import sys
import threading
from urllib.parse import parse_qs, unquote, urlparse

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]
TASKS = yaml.safe_load((ROOT / "roles" / "model_stack" / "tasks" / "configure.yml").read_text())
MISSING, PRESENT = "registry.test/missing:1", "registry.test/here:1"


class RecordingEngine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """The Docker Engine API as far as these tasks ask it: images on the host, no containers;
    every POST (a pull is POST /images/create) is recorded and answered 500."""
    daemon_threads = True

    def __init__(self, path, images):
        self.images, self.posts = set(images), []
        super().__init__(path, RecordingHandler)


class RecordingHandler(http.server.BaseHTTPRequestHandler):
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
            query = parse_qs(urlparse(self.path).query)
            ref = json.loads(query.get("filters", ["{}"])[0]).get("reference", [""])[0]
            self.reply(200, [{"Id": "sha256:" + "a" * 64, "RepoTags": [n]} for n in sorted(self.server.images)
                             if n.split(":")[0] == ref.split(":")[0]])
        elif path.startswith("/images/") and path.endswith("/json"):
            name = unquote(path[len("/images/"):-len("/json")])
            if name in self.server.images or (name.startswith("sha256:") and self.server.images):
                self.reply(200, {"Id": "sha256:" + "a" * 64, "RepoTags": [name]})
            else:
                self.reply(404, {"message": "No such image: " + name})
        elif path == "/containers/json":
            self.reply(200, [])  # no containers yet
        elif path.startswith("/containers/"):
            self.reply(404, {"message": "No such container: " + path.split("/")[2]})
        else:
            self.reply(404, {"message": "not faked: " + path})

    def do_POST(self):  # noqa: N802
        self.server.posts.append(self.path)
        self.reply(500, {"message": "not faked: " + self.path_()})


def spec(tmp_path, name, image):
    env_file = tmp_path / (name + ".env")
    env_file.write_text("HF_TOKEN=x\n")
    return {"name": name, "container": "multillm-model-" + name, "image": image, "entrypoint": ["/bin/true"],
            "command": [], "env": {}, "env_file": str(env_file), "published_ports": [], "volumes": [],
            "network": "", "ipc_mode": "private", "shm_size": "", "device_requests": [], "labels": {}}


def run(tmp_path, tasks, images_here):
    sock = str(tmp_path / "docker.sock")
    engine = RecordingEngine(sock, images_here)
    threading.Thread(target=engine.serve_forever, daemon=True).start()
    play = [{"hosts": "localhost", "gather_facts": False,
             "vars": {"model_stack_image_pull": "missing",
                      "__model_stack_specs": [spec(tmp_path, "a", PRESENT), spec(tmp_path, "b", MISSING)]},
             "module_defaults": {"group/community.docker.docker": {"docker_host": "unix://" + sock}},
             "tasks": tasks}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"),
               ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_CALLBACK_RESULT_FORMAT="json", ANSIBLE_NOCOLOR="1")
    bindir = pathlib.Path(sys.executable).parent
    try:
        proc = subprocess.run([str(bindir / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                               "-e", "ansible_python_interpreter=" + sys.executable, str(tmp_path / "play.yml")],
                              env=env, capture_output=True, text=True, timeout=180, cwd=str(tmp_path))
    finally:
        engine.shutdown()
    return proc.returncode, proc.stdout + proc.stderr, engine.posts


def named(prefix):
    found = [t for t in TASKS if t.get("name", "").startswith(prefix)]
    assert found, "configure.yml has no task named %r..." % prefix
    return found[0]


def test_the_container_task_never_pulls_a_missing_image(tmp_path):
    task = dict(named("Ensure each model's container exists"))
    task.pop("ignore_errors", None)
    rc, out, posts = run(tmp_path, [task], {PRESENT})
    assert rc != 0, out
    assert not [p for p in posts if "/images/create" in p], (posts, out)


def test_a_missing_image_stops_the_step_first_naming_it_uncensored(tmp_path):
    tasks = [t for t in TASKS if "community.docker.docker_image_info" in t or "ansible.builtin.assert" in t]
    assert len(tasks) == 2 and tasks[0] is TASKS[0], "the image check comes first in configure.yml"
    rc, out, posts = run(tmp_path, tasks, {PRESENT})
    flat = " ".join(out.split())
    assert rc != 0, out
    assert "image(s) %s of model(s) b not on the host, and the container step never pulls" % MISSING in flat, out
    assert "censored" not in out and posts == []


def test_with_every_image_there_the_check_passes(tmp_path):
    tasks = [t for t in TASKS if "community.docker.docker_image_info" in t or "ansible.builtin.assert" in t]
    rc, out, _posts = run(tmp_path, tasks, {PRESENT, MISSING})
    assert rc == 0, out
