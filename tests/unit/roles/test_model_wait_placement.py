"""The gate helper on a host with several GPUs: a model that boots behind several models (one
--previous-* pair per GPU chain it touches), and settling on the model's own GPUs only
(--settle-gpus), with systemctl and nvidia-smi stubs on PATH."""

import textwrap
import time

import pytest

from test_model_wait import env, health_server, later, run  # noqa: F401 (fixtures)

UUID1 = "GPU-00000000-0000-0000-0000-000000000001"


def pairs(d, kind, *names):
    out = []
    for name in names:
        out += ["--previous-unit", "multillm-model-%s.service" % name, "--previous-%s" % kind,
                str(d / ("%s-%s" % (name, kind)))]
    return out


def test_after_waits_for_the_release_of_every_previous_model(env):  # noqa: F811
    environ, d = env
    (d / "a1-release").touch()
    later(0.4, lambda: (d / "b1-release").touch())
    start = time.monotonic()
    proc = run(environ, "after", "--name", "tp", *pairs(d, "release", "a1", "b1"), "--interval", "0.01")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert time.monotonic() - start >= 0.4, "started before the second chain's model was released"
    lines = [ln for ln in proc.stdout.splitlines() if "previous_released" in ln]
    assert len(lines) == 2 and "unit=multillm-model-a1.service" in lines[0]
    assert lines[1].endswith("unit=multillm-model-b1.service: starting the container")


def test_health_releases_only_once_every_previous_model_is_ready(env, health_server):  # noqa: F811
    environ, d = env
    (d / "a1-ready").touch()
    later(0.4, lambda: (d / "b1-ready").touch())
    start = time.monotonic()
    proc = run(environ, "health", "--name", "tp", *pairs(d, "ready", "a1", "b1"), "--release", str(d / "release"),
               "--ready", str(d / "ready"), "--url", "http://127.0.0.1:%d/health" % health_server, "--timeout", "5")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert time.monotonic() - start >= 0.4
    assert (d / "release").stat().st_mtime >= (d / "b1-ready").stat().st_mtime
    assert sum("gated: waiting for" in ln for ln in proc.stdout.splitlines()) == 2


def test_nothing_is_released_when_one_of_the_previous_models_failed(env):  # noqa: F811
    environ, d = env
    (d / "state").write_text("ActiveState=failed\nSubState=failed\n")
    (d / "a1-ready").touch()     # the first chain is ready; the second one's model failed
    proc = run(environ, "health", "--name", "tp", *pairs(d, "ready", "a1", "b1"), "--release", str(d / "release"),
               "--url", "http://127.0.0.1:9/health", "--timeout", "5")
    assert proc.returncode == 1
    assert "previous_failed unit=multillm-model-b1.service" in proc.stdout
    assert not (d / "release").exists()


def test_previous_units_and_files_come_in_pairs(env):  # noqa: F811
    environ, d = env
    proc = run(environ, "after", "--name", "tp", *pairs(d, "release", "a1"), "--previous-unit", "x.service")
    assert proc.returncode != 0 and "2 --previous-unit but 1 --previous-release" in proc.stderr


@pytest.fixture
def smi(env):  # noqa: F811
    """An nvidia-smi whose GPU 0 holds steady and whose GPU 1 grows by 512 MiB at each call."""
    environ, d = env
    stub = d / "bin" / "nvidia-smi"
    stub.write_text(textwrap.dedent("""\
        #!/bin/sh
        n=$(cat "%(d)s/calls" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "%(d)s/calls"
        case "$*" in
          *index,uuid,memory.used*) printf '0, GPU-00000000-0000-0000-0000-000000000000, 1000\\n1, %(u)s, %%d\\n' $((n * 512));;
          *) printf '1000\\n%%d\\n' $((n * 512));;
        esac
        """ % {"d": d, "u": UUID1}))
    stub.chmod(0o755)
    return environ, d


def settle(env, health_server, *extra):  # noqa: F811
    environ, d = env
    return run(environ, "health", "--name", "m", "--url", "http://127.0.0.1:%d/health" % health_server,
               "--timeout", "5", "--ready", str(d / "ready"), "--settle", "--settle-interval", "0.01",
               "--settle-samples", "3", "--settle-delta-mib", "256", "--settle-timeout", "1", *extra)


def test_settle_watches_only_the_models_own_gpus(smi, health_server):  # noqa: F811
    proc = settle(smi, health_server, "--settle-gpus", "0")
    assert proc.returncode == 0, proc.stdout
    assert "model=m vram_settled gpus=0 used_mib=1000" in proc.stdout
    # the same GPU 0 with the growing GPU 1 (a model loading on the other chain) never settles
    proc = settle(smi, health_server, "--settle-gpus", "0,%s" % UUID1)
    assert proc.returncode == 1 and "vram_not_settled" in proc.stdout
    # without --settle-gpus: the sum of all GPUs, as on a single-GPU host
    proc = settle(smi, health_server)
    assert proc.returncode == 1 and "vram_not_settled" in proc.stdout


def test_settle_on_a_gpu_nvidia_smi_does_not_list_names_it(smi, health_server):  # noqa: F811
    proc = settle(smi, health_server, "--settle-gpus", "7")
    assert proc.returncode == 1 and "cannot read GPU memory: GPU 7 not listed by nvidia-smi" in proc.stdout
