"""State after converge + idempotence of docker_engine + nvidia_container_toolkit (no GPU)."""
import json

import pytest


def test_repository_is_a_deb822_source_with_its_own_key(host):
    src = host.file("/etc/apt/sources.list.d/nvidia-container-toolkit.sources").content_string
    assert "URIs: http://127.0.0.1:8080/libnvidia-container/stable/deb/amd64" in src
    assert "Suites: /" in src
    keyring = [l for l in src.splitlines() if l.startswith("Signed-By:")][0].split(":", 1)[1].strip()
    assert host.file(keyring).exists


@pytest.mark.parametrize("name", ["nvidia-container-toolkit", "nvidia-container-toolkit-base"])
def test_pinned_version_installed_and_held(host, name):
    assert host.package(name).version == "1.17.8-1"  # 1.18.0-1 is newer in the repository
    assert host.check_output(f"dpkg-query -W -f='${{Status}}' {name}").startswith("hold ")


def test_runtime_registered_and_docker_engine_settings_kept(host):
    cfg = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert cfg["runtimes"]["nvidia"]["path"] == "nvidia-container-runtime"
    assert "default-runtime" not in cfg
    assert cfg["live-restore"] is True and cfg["log-opts"]["max-size"] == "100m"


def test_nvidia_ctk_ran_once(host):
    calls = host.file("/var/log/fake-nvidia-ctk.calls").content_string.splitlines()
    assert calls == ["runtime configure --runtime=docker --config=/etc/docker/daemon.json"], calls


def test_docker_restarted_exactly_once_for_the_runtime(host):
    starts = host.file("/var/log/fake-dockerd.starts").content_string.splitlines()
    assert len(starts) == 2, starts  # the package's first start, then one restart for the runtime
    assert host.service("docker").is_running


def test_no_cdi_spec_without_gpu(host):
    assert not host.file("/etc/cdi/nvidia.yaml").exists
