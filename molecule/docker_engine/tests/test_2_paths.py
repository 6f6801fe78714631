"""Runs of the role against the converged host: no fight with nvidia-ctk, one restart per change."""
import json


def _starts(host):
    return len(host.file("/var/log/fake-dockerd.starts").content_string.splitlines())


def test_file_reformatted_by_nvidia_ctk_is_left_alone(host, run_playbook, recap):
    # nvidia-ctk re-marshals the whole file (sorted keys, 4 spaces): same meaning, other text.
    cfg = json.loads(host.file("/etc/docker/daemon.json").content_string)
    host.run(f"cat > /etc/docker/daemon.json <<'EOF'\n{json.dumps(cfg, indent=4, sort_keys=True)}\nEOF")
    before = host.file("/etc/docker/daemon.json").content_string
    starts = _starts(host)
    rc, out = run_playbook("run_role.yml")
    assert rc == 0, out
    assert recap(out)["changed"] == 0, out
    assert host.file("/etc/docker/daemon.json").content_string == before
    assert _starts(host) == starts


def test_changed_option_restarts_docker_exactly_once(host, run_playbook, recap):
    starts = _starts(host)
    rc, out = run_playbook("run_role.yml", {"docker_engine_daemon_options": {"features": {"buildkit": True}, "debug": True}})
    assert rc == 0, out
    assert json.loads(host.file("/etc/docker/daemon.json").content_string)["debug"] is True
    assert _starts(host) == starts + 1
    rc, out = run_playbook("run_role.yml", {"docker_engine_daemon_options": {"features": {"buildkit": True}, "debug": True}})
    assert rc == 0 and recap(out)["changed"] == 0, out
    assert _starts(host) == starts + 1


def test_invalid_existing_daemon_json_is_never_overwritten(host, run_playbook):
    good = host.file("/etc/docker/daemon.json").content_string
    host.run("printf '{broken' > /etc/docker/daemon.json")
    try:
        rc, out = run_playbook("run_role.yml")
        assert rc != 0
        assert "/etc/docker/daemon.json is not a JSON object" in out
        assert host.file("/etc/docker/daemon.json").content_string == "{broken"
    finally:
        host.run(f"cat > /etc/docker/daemon.json <<'EOF'\n{good}\nEOF")


def test_bad_version_fails_before_any_change(run_playbook):
    rc, out = run_playbook("run_role.yml", {"docker_engine_version": "latest"})
    assert rc != 0 and "docker_engine_version=latest" in out


def test_check_mode_on_the_converged_host_changes_nothing(run_playbook, recap):
    rc, out = run_playbook("run_role.yml", check=True)
    assert rc == 0, out
    assert recap(out)["changed"] == 0, out


def test_internal_role_refuses_direct_use(host, run_playbook):
    starts = _starts(host)
    rc, out = run_playbook("host_common_direct.yml")
    assert rc != 0
    assert "llmops.multillm.host_common is internal to the collection" in out, out
    assert "Nothing was changed" in out
    assert _starts(host) == starts
