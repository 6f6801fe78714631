"""The gate of model_stack's units (roles/model_stack/files/multillm-model-wait), run as the
real script with systemctl replaced by a stub on PATH that reports what the test wants."""

import http.server
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

HELPER = os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles", "model_stack", "files",
                      "multillm-model-wait")


@pytest.fixture
def env(tmp_path):
    """PATH with a `systemctl` that answers `show` from the file state (ActiveState/SubState
    lines) and `list-jobs` from the file jobs."""
    stub = tmp_path / "bin" / "systemctl"
    stub.parent.mkdir()
    stub.write_text(textwrap.dedent("""\
        #!/bin/sh
        case "$1" in
          show) cat "%(d)s/state" ;;
          list-jobs) cat "%(d)s/jobs" 2>/dev/null ;;
        esac
        """ % {"d": tmp_path}))
    stub.chmod(0o755)
    (tmp_path / "state").write_text("ActiveState=activating\nSubState=start-post\n")
    return dict(os.environ, PATH="%s:%s" % (stub.parent, os.environ["PATH"])), tmp_path


def run(env, *argv, timeout=20):
    return subprocess.run([sys.executable, HELPER] + list(argv), env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def later(seconds, fn):
    t = threading.Timer(seconds, fn)
    t.start()
    return t


@pytest.fixture
def health_server():
    """A /health that answers 200."""

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the stdlib's name)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_health_waits_for_the_previous_model_then_releases_this_one_and_marks_it_ready(env, health_server):
    environ, d = env
    url = "http://127.0.0.1:%d/health" % health_server
    later(0.4, lambda: (d / "prev-ready").touch())
    start = time.monotonic()
    proc = run(environ, "health", "--name", "beta", "--previous-unit", "multillm-model-alpha.service",
               "--previous-ready", str(d / "prev-ready"), "--release", str(d / "release"), "--ready", str(d / "ready"),
               "--url", url, "--timeout", "5")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert time.monotonic() - start >= 0.4, "released before the previous model was ready"
    assert (d / "release").exists() and (d / "ready").exists()
    assert (d / "release").stat().st_mtime >= (d / "prev-ready").stat().st_mtime
    lines = proc.stdout.splitlines()
    assert any("model=beta gated" in line for line in lines)
    assert [i for i, line in enumerate(lines) if "model=beta released" in line] < \
        [i for i, line in enumerate(lines) if "model=beta healthy" in line]


def test_nothing_is_released_behind_a_failed_previous_model(env):
    environ, d = env
    (d / "state").write_text("ActiveState=failed\nSubState=failed\n")
    proc = run(environ, "health", "--name", "beta", "--previous-unit", "multillm-model-alpha.service",
               "--previous-ready", str(d / "prev-ready"), "--release", str(d / "release"),
               "--url", "http://127.0.0.1:9/health", "--timeout", "5")
    assert proc.returncode == 1
    assert "previous_failed unit=multillm-model-alpha.service state=failed/failed" in proc.stdout
    assert not (d / "release").exists()


def test_a_previous_model_waiting_to_restart_counts_as_failed(env):
    environ, d = env
    (d / "state").write_text("ActiveState=activating\nSubState=auto-restart\n")
    proc = run(environ, "after", "--name", "beta", "--previous-unit", "multillm-model-alpha.service",
               "--previous-release", str(d / "prev-release"))
    assert proc.returncode == 1 and "previous_failed" in proc.stdout


def test_after_returns_once_the_previous_model_was_released(env):
    environ, d = env
    later(0.3, lambda: (d / "prev-release").touch())
    proc = run(environ, "after", "--name", "beta", "--previous-unit", "multillm-model-alpha.service",
               "--previous-release", str(d / "prev-release"), "--interval", "0.01")
    assert proc.returncode == 0, proc.stdout
    assert "previous_released" in proc.stdout


def test_a_stopped_previous_model_with_a_start_queued_is_waited_for(env):
    environ, d = env
    (d / "state").write_text("ActiveState=inactive\nSubState=dead\n")
    (d / "jobs").write_text("42 multillm-model-alpha.service start waiting\n")
    later(1.5, lambda: (d / "prev-release").touch())
    proc = run(environ, "after", "--name", "beta", "--previous-unit", "multillm-model-alpha.service",
               "--previous-release", str(d / "prev-release"), "--interval", "0.01")
    assert proc.returncode == 0, proc.stdout


# shm-clean: exactly one model's kvcached segments (issue 15.3).
def test_shm_clean_removes_the_pool_and_its_groups_and_nothing_else(env, tmp_path):
    environ, _ = env
    shm = tmp_path / "shm"
    shm.mkdir()
    names = ["multillm_alpha", "multillm_alpha_g1", "multillm_alpha_g12", "multillm_alpha-2", "multillm_alpha-2_g1",
             "multillm_alpha_gamma", "multillm_alphabet", "multillm_alpha_g1x", "other"]
    for n in names:
        (shm / n).write_bytes(b"\0" * 24)
    proc = run(environ, "shm-clean", "--pool", "multillm_alpha", "--shm-dir", str(shm))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in shm.iterdir()) == [
        "multillm_alpha-2", "multillm_alpha-2_g1", "multillm_alpha_g1x", "multillm_alpha_gamma", "multillm_alphabet",
        "other"]


def test_shm_clean_takes_the_name_literally(env, tmp_path):
    environ, _ = env
    shm = tmp_path / "shm"
    shm.mkdir()
    (shm / "multillm_qwen2-5").write_bytes(b"")
    (shm / "multillm_qwen2x5").write_bytes(b"")
    assert run(environ, "shm-clean", "--pool", "multillm_qwen2.5", "--shm-dir", str(shm)).returncode == 0
    assert sorted(p.name for p in shm.iterdir()) == ["multillm_qwen2-5", "multillm_qwen2x5"]
    assert run(environ, "shm-clean", "--pool", "x", "--shm-dir", str(tmp_path / "missing")).returncode == 0


# kvctl-limit: set, read back, fail naming the pool (issue 15.2). The fake docker runs a fake
# kvctl that behaves as kvcached's (kvcached/cli/kvctl.py at e8e6406): `limit` on a missing
# pool prints an error to stderr and still exits 0; `list <ipc> --json` prints
# [{"ipc", "limit_bytes", "used_bytes"}] for the pools that exist, [] otherwise.
FAKE_DOCKER = """#!%(python)s
import json, os, struct, sys
args = sys.argv[1:]
assert args[:2] == ["exec", "multillm-model-alpha"] and args[2] == "kvctl", args
shm = os.environ["FAKE_SHM"]
cmd = args[3:]
def path(ipc):
    return os.path.join(shm, ipc)
if cmd[0] == "limit":
    ipc, size = cmd[1], cmd[2]
    if not os.path.exists(path(ipc)):
        print("Error: IPC '%%s' not found." %% ipc, file=sys.stderr)
        sys.exit(0)
    if os.environ.get("FAKE_IGNORE") != "1":
        want = int(float(size[:-1]) * 1024 ** 3)
        with open(path(ipc), "r+b") as f:
            _, used, pre = struct.unpack("<qqq", f.read(24))
            f.seek(0)
            f.write(struct.pack("<qqq", want, used, pre))
    print("Updated kv cache limit for %%s" %% ipc)
elif cmd[0] == "list":
    rows = []
    for ipc in [a for a in cmd[1:] if a != "--json"]:
        if os.path.exists(path(ipc)):
            limit, used, _ = struct.unpack("<qqq", open(path(ipc), "rb").read(24))
            rows.append({"ipc": ipc, "limit_bytes": limit, "used_bytes": used})
    print(json.dumps(rows, indent=2))
"""


@pytest.fixture
def kvctl(env, tmp_path):
    environ, d = env
    docker = tmp_path / "bin" / "docker"
    docker.write_text(FAKE_DOCKER % {"python": sys.executable})
    docker.chmod(0o755)
    shm = tmp_path / "fake-shm"
    shm.mkdir()
    import struct
    (shm / "multillm_qwen2-5").write_bytes(struct.pack("<qqq", 1 << 30, 0, 0))
    environ = dict(environ, FAKE_SHM=str(shm))

    def call(pool, gib="2", **extra):
        return run(dict(environ, **extra), "kvctl-limit", "--name", "alpha", "--docker", str(docker),
                   "--container", "multillm-model-alpha", "--pool", pool, "--gib", gib, "--ready", str(d / "ready"))
    return call, d


def test_kvctl_limit_holds_and_the_model_turns_ready(kvctl):
    call, d = kvctl
    proc = call("multillm_qwen2-5", gib="1.5")
    assert proc.returncode == 0, proc.stdout
    assert "kvctl_limit_in_force pool=multillm_qwen2-5 limit_bytes=%d" % int(1.5 * (1 << 30)) in proc.stdout
    assert (d / "ready").exists()


def test_kvctl_limit_on_an_unsanitised_name_fails_naming_the_pool(kvctl):
    # kvctl says nothing wrong through its exit code: only the read-back shows it.
    call, d = kvctl
    proc = call("multillm_qwen2.5")
    assert proc.returncode == 1
    assert "kvctl_limit_not_in_force pool=multillm_qwen2.5" in proc.stdout
    assert "kvcached pool multillm_qwen2.5 has not taken the limit" in proc.stdout
    assert not (d / "ready").exists()


def test_kvctl_limit_not_taken_fails(kvctl):
    call, d = kvctl
    proc = call("multillm_qwen2-5", FAKE_IGNORE="1")
    assert proc.returncode == 1 and "read_back=%d" % (1 << 30) in proc.stdout
    assert not (d / "ready").exists()
