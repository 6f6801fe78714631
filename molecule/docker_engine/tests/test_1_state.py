"""State after converge + idempotence: stand-in Docker repository, stand-in dockerd."""
import json

import pytest

PINNED = "5:28.4.0-1~debian.12~bookworm"  # 28.5.1 is newer in the repository: the pin must win


def _daemon(host):
    return json.loads(host.file("/etc/docker/daemon.json").content_string)


def test_repository_is_a_deb822_source_with_its_own_key(host):
    src = host.file("/etc/apt/sources.list.d/docker-ce.sources").content_string
    assert "URIs: http://127.0.0.1:8080/docker/linux/debian" in src
    assert "Suites: bookworm" in src and "Components: stable" in src
    keyring = [l for l in src.splitlines() if l.startswith("Signed-By:")][0].split(":", 1)[1].strip()
    assert host.file(keyring).exists


@pytest.mark.parametrize("name", ["docker-ce", "docker-ce-cli"])
def test_pinned_version_installed_and_held(host, name):
    assert host.package(name).version == PINNED
    assert host.check_output(f"dpkg-query -W -f='${{Status}}' {name}").startswith("hold ")


@pytest.mark.parametrize("name", ["containerd.io", "docker-buildx-plugin", "docker-compose-plugin"])
def test_companion_packages_installed(host, name):
    assert host.package(name).is_installed


def test_daemon_json_keeps_existing_keys(host):
    cfg = _daemon(host)
    assert cfg["runtimes"]["nvidia"] == {"args": [], "path": "nvidia-container-runtime"}
    assert cfg["data-root"] == "/srv/docker"
    assert cfg["log-opts"]["max-size"] == "10m"  # an existing value wins over the role's default


def test_daemon_json_gets_defaults_and_enforced_options(host):
    cfg = _daemon(host)
    assert cfg["log-driver"] == "json-file"
    assert cfg["log-opts"]["max-file"] == "3"
    assert cfg["live-restore"] is True
    assert cfg["features"] == {"buildkit": True}
    assert host.file("/etc/docker/daemon.json").mode == 0o644


def test_docker_enabled_running_and_started_once(host):
    svc = host.service("docker")
    assert svc.is_enabled and svc.is_running
    starts = host.file("/var/log/fake-dockerd.starts").content_string.splitlines()
    # daemon.json is merged before the package starts dockerd: one start, no restart, and
    # the idempotence run did not restart it.
    assert len(starts) == 1, starts
