"""One fake Docker Engine API for the role tests that run model_stack's tasks with
ansible-playbook against a unix socket (no Docker needed): test_image_pull.py and
test_container_no_pull.py.

It answers what community.docker's modules and llmops.multillm.image_pull ask: /_ping, /version, /info,
the images on the host (GET /images/json, /images/<name>/json) and its containers (GET
/containers/json, /containers/<id or name>/json: stopped ones; none unless given), and removes a
container on DELETE /containers/<id> (recorded in ``deletes``). Every POST is recorded in
``posts``; a pull (POST /images/create) is streamed by the test's ``pull`` callable when one is
given, every other POST is answered 500 "not faked".
"""

import contextlib
import hashlib
import http.server
import json
import os
import pathlib
import socketserver
import subprocess
import sys
import threading
from urllib.parse import parse_qs, unquote, urlparse

ROOT = pathlib.Path(__file__).resolve().parents[3]
IMAGE_ID = "sha256:" + "a" * 64


class FakeEngine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """``images``: the image names on the host; a set passed in is kept (not copied), so a test
    sees what pulls added and can hand it to the next run. ``pull(engine, name, chunk)`` streams
    one pull: ``chunk(obj)`` sends one JSON line, as the engine does; adding ``name`` to
    ``engine.images`` is the callable's job (a refused pull does not). ``containers``: names of
    stopped containers on the host (their ids: ``container_id(name)``)."""

    daemon_threads = True

    def __init__(self, path, images=(), pull=None, containers=()):
        self.images = images if isinstance(images, set) else set(images)
        self.containers = dict((container_id(n), n) for n in containers)
        self.posts, self.deletes, self.pull = [], [], pull
        super().__init__(path, EngineHandler)

    def find(self, ref):
        """The id of the container ``ref`` (an id or a name), or None."""
        ref = ref.lstrip("/")
        return next((cid for cid, name in self.containers.items() if ref in (cid, name)), None)


def container_id(name):
    return hashlib.sha256(name.encode()).hexdigest()


class EngineHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def address_string(self):
        return "fake"

    def log_message(self, *_):
        pass

    def reply(self, code, body):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        self.wfile.write(data)

    def api_path(self):
        """The path without its query and without the /v1.NN version prefix."""
        path = urlparse(self.path).path
        return "/" + path.split("/", 2)[2] if path.startswith("/v1.") else path

    def query(self):
        return parse_qs(urlparse(self.path).query)

    def do_GET(self):  # noqa: N802 - http.server's naming
        path, images = self.api_path(), self.server.images
        if path == "/_ping":
            self.reply(200, b"OK")
        elif path == "/version":
            self.reply(200, {"ApiVersion": "1.41", "MinAPIVersion": "1.12", "Version": "20.10.24", "Os": "linux"})
        elif path == "/info":
            self.reply(200, {"Containers": len(self.server.containers), "Images": len(images), "OSType": "linux"})
        elif path == "/images/json":
            ref = json.loads(self.query().get("filters", ["{}"])[0]).get("reference", [""])[0]
            self.reply(200, [{"Id": IMAGE_ID, "RepoTags": [n]} for n in sorted(images)
                             if n.split(":")[0] == ref.split(":")[0]])
        elif path.startswith("/images/") and path.endswith("/json"):
            name = unquote(path[len("/images/"):-len("/json")])
            if name in images or (name.startswith("sha256:") and images):
                self.reply(200, {"Id": IMAGE_ID, "RepoTags": [name]})
            else:
                self.reply(404, {"message": "No such image: " + name})
        elif path == "/containers/json":
            self.reply(200, [{"Id": cid, "Names": ["/" + name], "Image": "fake", "State": "exited", "Labels": {}}
                             for cid, name in sorted(self.server.containers.items())])
        elif path.startswith("/containers/") and path.endswith("/json") and self.server.find(path.split("/")[2]):
            cid = self.server.find(path.split("/")[2])
            self.reply(200, {"Id": cid, "Name": "/" + self.server.containers[cid], "Image": "sha256:" + "b" * 64,
                             "State": {"Running": False, "Status": "exited"}, "Config": {"Labels": {}}, "HostConfig": {}})
        elif path.startswith("/containers/"):
            self.reply(404, {"message": "No such container: " + path.split("/")[2]})
        else:
            self.reply(404, {"message": "not faked: " + path})

    def do_POST(self):  # noqa: N802 - http.server's naming
        self.server.posts.append(self.path)
        if self.api_path() != "/images/create" or self.server.pull is None:
            self.reply(500, {"message": "not faked: " + self.api_path()})
            return
        query = self.query()
        name = "%s:%s" % (query["fromImage"][0], query.get("tag", ["latest"])[0])
        # The engine streams a pull as chunked JSON lines, the last one being the error if any.
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(obj):
            data = json.dumps(obj).encode() + b"\r\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        self.server.pull(self.server, name, chunk)
        self.wfile.write(b"0\r\n\r\n")
        self.close_connection = True

    def do_DELETE(self):  # noqa: N802 - http.server's naming
        path = self.api_path()
        cid = self.server.find(path.split("/")[2]) if path.startswith("/containers/") else None
        if cid is None:
            self.reply(404, {"message": "No such container: " + path})
            return
        self.server.deletes.append(self.server.containers.pop(cid))
        self.send_response(204)
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True


@contextlib.contextmanager
def fake_engine(sock, images=(), pull=None, containers=()):
    """A FakeEngine serving on the unix socket ``sock`` (a path) while the block runs."""
    sock = str(sock)
    if os.path.exists(sock):
        os.unlink(sock)
    engine = FakeEngine(sock, images, pull, containers)
    threading.Thread(target=engine.serve_forever, daemon=True).start()
    try:
        yield engine
    finally:
        engine.shutdown()
        engine.server_close()
        os.unlink(sock)


def ansible_playbook(tmp_path, play, *args, **env):
    """Run ansible-playbook on ``play`` against localhost with this checkout's collection and this
    test's Python; ``env`` adds environment variables. Returns the CompletedProcess."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"),
               ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", **env)
    bindir = pathlib.Path(sys.executable).parent
    return subprocess.run([str(bindir / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           "-e", "ansible_python_interpreter=" + sys.executable, *args, str(play)],
                          env=env, capture_output=True, text=True, timeout=180, cwd=str(tmp_path), check=False)
