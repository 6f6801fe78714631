"""Mapping GPU processes to Docker containers: cgroup parsing and name resolution.

Name resolution talks HTTP to a Docker Engine API stand-in on a real Unix socket, so the request
the module sends (GET /containers/<id>/json) and its handling of the answer are exercised.
"""

import pytest

from ansible_collections.llmops.multillm.plugins.module_utils import _vram_containers as vc

from vram_fakes import FakeDockerApi

CID = "3f1e5b7c9d2a4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f"
CID2 = "a" * 64


@pytest.mark.parametrize("text, expected", [
    # cgroup v1, cgroupfs driver
    ("12:memory:/docker/%s\n11:cpu,cpuacct:/docker/%s\n" % (CID, CID), CID),
    # cgroup v2, systemd driver
    ("0::/system.slice/docker-%s.scope\n" % CID, CID),
    # cgroup v1, systemd driver, on the name=systemd line only
    ("9:pids:/\n1:name=systemd:/system.slice/docker-%s.scope\n" % CID, CID),
    # cgroup v2, cgroupfs driver
    ("0::/docker/%s\n" % CID, CID),
    # a child cgroup below the container's scope
    ("0::/system.slice/docker-%s.scope/init.scope\n" % CID, CID),
    # nested (docker in docker): the innermost container
    ("0::/docker/%s/docker/%s\n" % (CID2, CID), CID),
    # not in a container
    ("0::/user.slice/user-0.slice/session-1.scope\n", None),
    ("12:memory:/\n", None),
    # containerd/CRI (not Docker) and a short or malformed id
    ("0::/kubepods.slice/cri-containerd-%s.scope\n" % CID, None),
    ("0::/docker/%s\n" % CID[:12], None),
    ("0::/docker/%sX\n" % CID, None),
    ("", None),
])
def test_container_id_from_cgroup(text, expected):
    assert vc.container_id_from_cgroup(text) == expected


def test_container_id_and_command_of_pid_read_proc(tmp_path):
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "cgroup").write_text("0::/system.slice/docker-%s.scope\n" % CID)
    (tmp_path / "42" / "comm").write_text("python3\n")
    assert vc.container_id_of_pid(42, proc_root=str(tmp_path)) == CID
    assert vc.command_of_pid(42, proc_root=str(tmp_path)) == "python3"
    assert vc.container_id_of_pid(43, proc_root=str(tmp_path)) is None  # gone meanwhile
    assert vc.command_of_pid(43, proc_root=str(tmp_path)) is None


@pytest.fixture
def sock(tmp_path):
    return str(tmp_path / "docker.sock")


def test_names_are_resolved_through_the_engine_api(sock):
    with FakeDockerApi(sock, {CID: "qwen2.5-14b"}) as api:
        resolver = vc.ContainerNames("unix://" + sock)
        assert resolver.resolve([CID, CID2, CID]) == {CID: "qwen2.5-14b"}  # CID2 is unknown: left out
    assert sorted(api.requests) == ["/containers/%s/json" % CID, "/containers/%s/json" % CID2]
    assert resolver.problem is None


def test_no_socket_leaves_names_unresolved_and_says_why(tmp_path):
    resolver = vc.ContainerNames("unix://%s/missing.sock" % tmp_path)
    assert resolver.resolve([CID]) == {}
    assert "cannot ask the Docker daemon" in resolver.problem and "short ids stand in" in resolver.problem


def test_an_error_answer_leaves_names_unresolved(sock):
    with FakeDockerApi(sock, {}, status=500):
        resolver = vc.ContainerNames("unix://" + sock)
        assert resolver.resolve([CID]) == {}
    assert "HTTP 500" in resolver.problem


def test_only_unix_sockets_are_asked():
    resolver = vc.ContainerNames("tcp://127.0.0.1:2375")
    assert resolver.resolve([CID]) == {}
    assert "not a unix:// socket" in resolver.problem


def test_nothing_to_resolve_asks_nothing(tmp_path):
    resolver = vc.ContainerNames("unix://%s/missing.sock" % tmp_path)
    assert resolver.resolve([]) == {} and resolver.problem is None
