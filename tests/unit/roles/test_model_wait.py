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
