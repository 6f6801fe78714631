# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.multillm
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Map a GPU process to the Docker container it runs in.

NVML reports host PIDs. A process in a Docker container sits in a cgroup named after the
container's 64-hex id, which ``/proc/<pid>/cgroup`` shows in one of these forms:

* cgroupfs driver (v1 or v2):  ``12:memory:/docker/<id>``, ``0::/docker/<id>``
* systemd driver:              ``0::/system.slice/docker-<id>.scope``

The id is then resolved to the container's name through the Docker Engine API on its Unix socket
(``GET /containers/<id>/json``), with the standard library only: no Docker SDK is needed, and
without a reachable socket the short id stands in for the name.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket

PROC_ROOT = '/proc'
DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock'

_DOCKER_ID = re.compile(r'(?:^|/)docker[-/]([0-9a-f]{64})(?:\.scope)?(?=/|$)')


def container_id_from_cgroup(text):
    """The Docker container id in the text of a /proc/<pid>/cgroup file, or None.

    With nested containers the innermost id (the last in the path) is the one the process runs in.
    """
    for line in text.splitlines():
        parts = line.split(':', 2)
        if len(parts) != 3:
            continue
        found = _DOCKER_ID.findall(parts[2])
        if found:
            return found[-1]
    return None


def container_id_of_pid(pid, proc_root=None):
    """The Docker container id of a process, or None (not in a container, gone, or unreadable)."""
    path = os.path.join(proc_root or PROC_ROOT, str(pid), 'cgroup')
    try:
        with open(path) as handle:
            return container_id_from_cgroup(handle.read())
    except (IOError, OSError):
        return None


def command_of_pid(pid, proc_root=None):
    """The short command name of a process (/proc/<pid>/comm), or None."""
    path = os.path.join(proc_root or PROC_ROOT, str(pid), 'comm')
    try:
        with open(path) as handle:
            return handle.read().strip() or None
    except (IOError, OSError):
        return None


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__('localhost', timeout=timeout)
        self._socket_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._socket_path)
        except Exception:
            sock.close()
            raise
        self.sock = sock


class ContainerNames(object):
    """Resolve container ids to names through the Docker Engine API; remembers why it could not."""

    def __init__(self, docker_host=DEFAULT_DOCKER_HOST, timeout=2.0):
        self.docker_host = docker_host or DEFAULT_DOCKER_HOST
        self.timeout = timeout
        self.problem = None

    def resolve(self, container_ids):
        """A dict id -> name for the ids the daemon knows; empty when it cannot be asked."""
        names = {}
        if not container_ids:
            return names
        if not self.docker_host.startswith('unix://'):
            self.problem = 'docker_host %s is not a unix:// socket; container names are not resolved' % self.docker_host
            return names
        path = self.docker_host[len('unix://'):]
        for cid in sorted(set(container_ids)):
            try:
                name = self._ask(path, cid)
            except (OSError, IOError, http.client.HTTPException, ValueError) as exc:
                self.problem = 'cannot ask the Docker daemon at %s for container names (%s); short ids stand in' % (
                    self.docker_host, exc)
                break
            if name:
                names[cid] = name
        return names

    def _ask(self, path, cid):
        conn = _UnixHTTPConnection(path, self.timeout)
        try:
            conn.request('GET', '/containers/%s/json' % cid)
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        if response.status == 404:
            return None  # gone since NVML listed it
        if response.status != 200:
            raise ValueError('HTTP %d from GET /containers/%s/json' % (response.status, cid[:12]))
        return json.loads(body.decode('utf-8')).get('Name', '').lstrip('/') or None
