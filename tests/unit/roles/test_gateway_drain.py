"""The gateway's drain helper (roles/litellm_gateway/files/multillm_gateway_drain.py): what it
writes to config.yaml and the stash, what it reloads, and its command line. The reload is a
recorder; Gateway.reload runs against a fake /proc and a `systemctl` stub on PATH."""

import importlib.util
import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest
import yaml

HELPER = os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles", "litellm_gateway", "files",
                      "multillm_gateway_drain.py")
spec = importlib.util.spec_from_file_location("multillm_gateway_drain", HELPER)
drain_mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(drain_mod)


def deployment(name, host, address, port):
    return {"model_name": name,
            "litellm_params": {"model": "hosted_vllm/" + name, "api_base": "http://%s:%d/v1" % (address, port)},
            "model_info": {"mode": "chat", "multillm_host": host}}


CHAT_A = deployment("chat", "gpu-a", "127.0.0.1", 8001)
OCR_A = deployment("ocr", "gpu-a", "127.0.0.1", 8002)
CHAT_B = deployment("chat", "gpu-b", "10.0.0.22", 8001)
SETTINGS = {"router_settings": {"routing_strategy": "simple-shuffle"},
            "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"}}


class Reloads:
    def __init__(self):
        self.count = 0

    def __call__(self):
        self.count += 1
        return "reloaded"


@pytest.fixture
def gw(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(dict(model_list=[CHAT_A, OCR_A, CHAT_B], **SETTINGS), sort_keys=False))
    config.chmod(0o640)
    reloads = Reloads()
    return drain_mod.Drainer(str(config), str(tmp_path / "drained"), reloads), config, tmp_path / "drained", reloads


def models(config):
    return yaml.safe_load(config.read_text())["model_list"]


def test_drain_takes_out_only_that_hosts_deployments_and_reloads_once(gw):
    d, config, stash_dir, reloads = gw
    r = d.drain("gpu-a")
    assert r["changed"] is True and r["deployments"] == 2
    assert models(config) == [CHAT_B]
    assert yaml.safe_load((stash_dir / "gpu-a.yaml").read_text()) == {"model_list": [CHAT_A, OCR_A]}
    assert reloads.count == 1
    # The other sections survive, and so do the file's mode; the stash is private.
    assert {k: v for k, v in yaml.safe_load(config.read_text()).items() if k != "model_list"} == SETTINGS
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    assert stat.S_IMODE((stash_dir / "gpu-a.yaml").stat().st_mode) == 0o600
    assert config.read_text().startswith("# Rewritten by multillm-gateway-drain")


def test_drain_names_the_models_no_other_host_serves(gw):
    d = gw[0]
    assert "no other host serves ocr until gpu-a is restored" in d.drain("gpu-a")["msg"]
    assert "no other host serves" not in d.restore("gpu-a")["msg"]
    # chat stays served by gpu-a.
    assert d.drain("gpu-b")["msg"] == "reloaded"


def test_drain_twice_changes_nothing_the_second_time(gw):
    d, config, stash_dir, reloads = gw
    d.drain("gpu-a")
    before = (config.read_text(), (stash_dir / "gpu-a.yaml").read_text())
    r = d.drain("gpu-a")
    assert r == {"changed": False, "deployments": 0, "msg": "no deployment of gpu-a in the gateway"}
    assert (config.read_text(), (stash_dir / "gpu-a.yaml").read_text()) == before
    assert reloads.count == 1


def test_restore_puts_back_exactly_what_was_drained(gw):
    d, config, stash_dir, reloads = gw
    d.drain("gpu-a")
    r = d.restore("gpu-a")
    assert r["changed"] is True and r["deployments"] == 2
    assert sorted(map(drain_mod.key_of, models(config))) == sorted(map(drain_mod.key_of, [CHAT_A, OCR_A, CHAT_B]))
    assert not (stash_dir / "gpu-a.yaml").exists()
    assert d.drained() == []
    assert reloads.count == 2


def test_restore_of_a_host_that_is_not_drained_changes_nothing(gw):
    d, config, _, reloads = gw
    before = config.read_text()
    assert d.restore("gpu-a") == {"changed": False, "deployments": 0, "msg": "gpu-a is not drained"}
    assert config.read_text() == before and reloads.count == 0


def test_restore_after_the_role_rendered_the_host_back_adds_no_duplicate(gw):
    """The role re-renders config.yaml (gateway.yml) while a host is stashed: restore must not
    list a deployment twice; it drops the stash and does not reload."""
    d, config, stash_dir, reloads = gw
    d.drain("gpu-a")
    config.write_text(yaml.safe_dump(dict(model_list=[CHAT_A, OCR_A, CHAT_B], **SETTINGS)))
    r = d.restore("gpu-a")
    assert r == {"changed": False, "deployments": 0, "msg": "already served"}
    assert len(models(config)) == 3 and not (stash_dir / "gpu-a.yaml").exists()
    assert reloads.count == 1


def test_list_reports_the_drained_hosts(gw):
    d = gw[0]
    assert d.drained() == []
    d.drain("gpu-b")
    d.drain("gpu-a")
    assert d.drained() == ["gpu-a", "gpu-b"]


@pytest.mark.parametrize("host", ["", "../etc/passwd", ".hidden", "a/b"])
def test_a_host_name_that_is_no_file_name_is_refused_before_anything_changes(gw, host):
    d, config, stash_dir, reloads = gw
    before = config.read_text()
    with pytest.raises(SystemExit, match="cannot name a file"):
        d.drain(host)
    assert config.read_text() == before and not stash_dir.exists() and reloads.count == 0


def test_a_failed_reload_leaves_the_host_stashed_so_restore_still_works(gw):
    d, config, stash_dir, _ = gw

    def broken():
        raise subprocess.CalledProcessError(1, ["systemctl", "reload"])
    d.reload = broken
    with pytest.raises(subprocess.CalledProcessError):
        d.drain("gpu-a")
    assert (stash_dir / "gpu-a.yaml").exists()
    d.reload = Reloads()
    assert d.restore("gpu-a")["deployments"] == 2
    assert len(models(config)) == 3


def test_main_prints_one_json_line_with_the_host(gw, capsys):
    _, config, stash_dir, _ = gw
    reloads = Reloads()
    argv = ["--config", str(config), "--stash-dir", str(stash_dir)]
    assert drain_mod.main(argv + ["drain", "gpu-b"], reload=reloads) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"changed": True, "deployments": 1, "host": "gpu-b",
                   "msg": "reloaded"}
    assert drain_mod.main(argv + ["list"], reload=reloads) == 0
    assert json.loads(capsys.readouterr().out) == {"changed": False, "drained": ["gpu-b"]}


@pytest.mark.parametrize("argv", [[], ["drain"], ["restore"], ["evict", "gpu-a"], ["list", "gpu-a"]])
def test_a_wrong_command_line_is_refused_with_usage(argv, capsys):
    with pytest.raises(SystemExit) as e:
        drain_mod.main(argv, reload=Reloads())
    assert e.value.code == 2
    assert "usage: multillm-gateway-drain" in capsys.readouterr().err


@pytest.fixture
def systemd(tmp_path):
    """A `systemctl` stub on PATH that records its calls and answers MainPID from a file, and a
    fake /proc whose arbiter's children file the test rewrites."""
    stub = tmp_path / "bin" / "systemctl"
    stub.parent.mkdir()
    stub.write_text(textwrap.dedent("""\
        #!/bin/sh
        echo "$*" >> "%(d)s/calls"
        [ "$1" = show ] && cat "%(d)s/mainpid"
        exit 0
        """ % {"d": tmp_path}))
    stub.chmod(0o755)
    children = tmp_path / "proc" / "100" / "task" / "100" / "children"
    children.parent.mkdir(parents=True)
    old_path = os.environ["PATH"]
    os.environ["PATH"] = "%s:%s" % (stub.parent, old_path)
    yield tmp_path, children
    os.environ["PATH"] = old_path


def test_reload_waits_until_every_old_worker_is_gone(systemd):
    d, children = systemd
    (d / "mainpid").write_text("100\n")
    children.write_text("201 202\n")
    polls = []

    def sleep(_s):
        # Gunicorn replaces one worker per poll: 201 202 -> 202 301 -> 301 302.
        polls.append(children.read_text())
        children.write_text({"201 202\n": "202 301\n", "202 301\n": "301 302\n"}[children.read_text()])
    gw = drain_mod.Gateway("litellm-gateway.service", timeout_s=5, poll_s=0, proc=str(d / "proc"))
    real_sleep, drain_mod.time.sleep = drain_mod.time.sleep, sleep
    try:
        assert gw.reload() == "reloaded: 2 workers replaced"
    finally:
        drain_mod.time.sleep = real_sleep
    assert polls == ["201 202\n", "202 301\n"]
    assert (d / "calls").read_text().splitlines() == [
        "show --property=MainPID --value litellm-gateway.service", "reload litellm-gateway.service"]


def test_reload_of_a_stopped_gateway_sends_nothing(systemd):
    d, _ = systemd
    (d / "mainpid").write_text("0\n")
    gw = drain_mod.Gateway("litellm-gateway.service", proc=str(d / "proc"))
    assert gw.reload() == "gateway not running: nothing to reload"
    assert "reload" not in (d / "calls").read_text().split()


def test_reload_fails_naming_the_workers_that_stay(systemd):
    d, children = systemd
    (d / "mainpid").write_text("100\n")
    children.write_text("201 202\n")
    gw = drain_mod.Gateway("litellm-gateway.service", timeout_s=0.05, poll_s=0.01, proc=str(d / "proc"))
    with pytest.raises(SystemExit, match=r"old workers \[201, 202\] were still running .*journalctl -u litellm-gateway.service"):
        gw.reload()


def test_the_script_runs_as_a_program(gw):
    """The wrapper runs the file itself with a Python that has PyYAML: `list` needs no systemd."""
    _, config, stash_dir, _ = gw
    out = subprocess.run([sys.executable, HELPER, "--config", str(config), "--stash-dir", str(stash_dir), "list"],
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == {"changed": False, "drained": []}
