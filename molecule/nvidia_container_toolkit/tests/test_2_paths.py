"""Other paths of nvidia_container_toolkit, each a real run against the converged host."""


def test_gpu_required_without_gpu_fails_early(run_playbook):
    rc, out = run_playbook("run_role.yml", {"multillm_gpu_required": True})
    assert rc != 0
    assert "nvidia-smi does not answer" in out and "multillm_gpu_required=true" in out


def test_no_gpu_steps_are_skipped_visibly(run_playbook, recap):
    rc, out = run_playbook("run_role.yml")
    assert rc == 0, out
    assert recap(out)["changed"] == 0, out
    assert "CDI spec generation (/etc/cdi/nvidia.yaml) SKIPPED" in out
    assert "--gpus all ... nvidia-smi` check is SKIPPED" in out


def test_default_runtime_request_runs_nvidia_ctk_and_restarts_once(host, run_playbook, recap):
    starts = len(host.file("/var/log/fake-dockerd.starts").content_string.splitlines())
    extra = {"nvidia_container_toolkit_set_as_default_runtime": True}
    rc, out = run_playbook("run_role.yml", extra)
    assert rc == 0, out
    assert '"default-runtime": "nvidia"' in host.file("/etc/docker/daemon.json").content_string
    assert len(host.file("/var/log/fake-dockerd.starts").content_string.splitlines()) == starts + 1
    rc, out = run_playbook("run_role.yml", extra)
    assert rc == 0 and recap(out)["changed"] == 0, out


def test_check_mode_on_the_converged_host_changes_nothing(run_playbook, recap):
    rc, out = run_playbook("run_role.yml", {"nvidia_container_toolkit_set_as_default_runtime": True}, check=True)
    assert rc == 0, out
    assert recap(out)["changed"] == 0, out
