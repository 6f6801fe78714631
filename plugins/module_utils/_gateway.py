# -*- coding: utf-8 -*-
# Copyright: llmops.multillm contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The gateway's own rules, checked on its host before anything changes (roles/litellm_gateway
preflight, filter llmops.multillm.gateway_errors).

The settings rules are the contract's (plugins/module_utils/_contract.py: port, bind address,
master key, LiteLLM release, extra env); the rules here need what only the gateway host knows:
its service manager, the workers it is sized with, the endpoints model_stack published for its
backends and the programs listening on its port. Messages are the contract's: host, variable,
value (secrets as <hidden>), rule, what to do, rule id in brackets. Pure functions on plain
values; docs/inventory.md shows an example of each rule (tests/preflight/contract_doc.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import re

from ansible_collections.llmops.multillm.plugins.module_utils import _contract as c

# Rules decided on the gateway host (the inventory contract's RULES hold the offline ones).
RULES = (
    ("gateway-systemd", "the gateway host runs systemd (it holds the gateway's socket)"),
    ("gateway-workers", "litellm_gateway_num_workers is 1 or more, 2 or more while workers recycle "
                        "(max_requests_before_restart > 0); restart count and jitter are 0 or more"),
    ("gateway-gc-threshold", "litellm_gateway_gc_threshold is empty or three integers of 1 or more"),
    ("gateway-endpoints", "every backend host published model_stack_endpoints before the gateway runs"),
    ("gateway-models", "the gateway routes to at least one healthy, undrained model"),
    ("gateway-port-taken", "the gateway's port is free or held by the gateway's own socket or service"),
)
RULE_IDS = tuple(r[0] for r in RULES)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_LISTEN_RE = re.compile(r"Listen=\[?(.*?)\]?:([0-9]+) .*")


def as_int(value):
    """An integer, or a string of one (extra vars given as key=value are strings), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,18}", value.strip()):
        return int(value.strip())
    return None


def _show(lines):
    """{property: value} of `systemctl show` output lines (a list or one text)."""
    if isinstance(lines, str):
        lines = lines.splitlines()
    out = {}
    for line in lines or []:
        if isinstance(line, str) and "=" in line:
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


def foreign_listeners(listeners, port, socket_show, service_show, user):
    """The TCP listeners on `port` that belong to another program than the gateway.

    `listeners`: community.general.listen_ports_facts' tcp_listen ({address, port, pid, name,
    user}). A listener is the gateway's when the socket unit is active and listens on that
    address (systemd holds the socket, Gunicorn inherits it), or when the service is active and
    the listener runs as the service user (a gateway that bound the port itself). ss shows a
    dual-stack [::] listener as '*'.
    """
    port = as_int(port)
    sock = _show(socket_show)
    svc = _show(service_show)
    listens = set()
    if "active" in sock.get("ActiveState", []):
        for listen in sock.get("Listen", []):
            m = _LISTEN_RE.fullmatch("Listen=" + listen)
            if m:
                listens.add("%s:%s" % (m.group(1), m.group(2)))
    service_active = "active" in svc.get("ActiveState", [])
    out = []
    for entry in listeners or []:
        if not isinstance(entry, dict) or as_int(entry.get("port")) != port or port is None:
            continue
        address = "::" if entry.get("address") in ("*", "::") else entry.get("address")
        if "%s:%s" % (address, port) in listens:
            continue
        if service_active and entry.get("user") == user:
            continue
        out.append(entry)
    return out


def _cgroup(cgroups, pid):
    """The cgroup path /proc/<pid>/cgroup names (slurp results), or None."""
    for result in cgroups or []:
        if not isinstance(result, dict) or (result.get("item") or {}).get("pid") != pid or "content" not in result:
            continue
        try:
            text = base64.b64decode(result["content"]).decode("utf-8", "replace").strip()
        except (TypeError, ValueError):
            return None
        return text.split(":")[-1] if text else None
    return None


def _listener_text(entry, cgroups):
    address = str(entry.get("address"))
    text = "%s:%s (" % ("[%s]" % address if ":" in address else address, entry.get("port"))
    if entry.get("pid"):
        text += "pid %s %s, user %s" % (entry.get("pid"), entry.get("name"), entry.get("user"))
        cgroup = _cgroup(cgroups, entry.get("pid"))
        if cgroup:
            text += ", cgroup %s" % cgroup
    else:
        text += "process hidden from this user"
    return text + ")"


def _settings_errors(g, r):
    """The gateway's settings: the contract's rules, then the sizing rules."""
    secrets = r.secrets
    for errors in (c.litellm_version_errors(g.get("litellm_gateway_version"), r.host),
                   c.master_key_errors(g.get("litellm_gateway_master_key"), r.host),
                   c.bind_address_errors(g.get("litellm_gateway_bind_address"), r.host)):
        r.errors.extend(c.message_masked(e, secrets) for e in errors)
    port = as_int(g.get("litellm_gateway_port"))
    r.errors.extend(c.gateway_port_errors(port if port is not None else g.get("litellm_gateway_port"), r.host))
    extra_env = g.get("litellm_gateway_extra_env")
    if extra_env not in (None, {}):
        c.env_errors("litellm_gateway_extra_env", extra_env, r)
        if isinstance(extra_env, dict) and "LITELLM_MASTER_KEY" in extra_env:
            r.add("litellm_gateway_extra_env.LITELLM_MASTER_KEY", c.HIDDEN, "is set by the gateway role from "
                  "litellm_gateway_master_key", "Remove it from litellm_gateway_extra_env.", "managed-env")

    if "service_mgr" in g and g["service_mgr"] != "systemd":
        r.add("ansible_facts.service_mgr", g["service_mgr"], "must be systemd: systemd holds the gateway's socket "
              "and restarts its workers", "Run the gateway on a host booted with systemd.", "gateway-systemd")

    restarts = as_int(g.get("litellm_gateway_max_requests_before_restart", 0))
    for key in ("litellm_gateway_max_requests_before_restart", "litellm_gateway_max_requests_before_restart_jitter"):
        value = as_int(g.get(key, 0))
        if value is None or value < 0:
            r.add(key, g.get(key), "must be a whole number, 0 or more (0 turns worker recycling off)",
                  "Correct the value.", "gateway-workers")
    workers = as_int(g.get("litellm_gateway_num_workers", 1))
    if workers is None or workers < 1:
        r.add("litellm_gateway_num_workers", g.get("litellm_gateway_num_workers"), "must be a whole number, 1 or more",
              "Set e.g. 2.", "gateway-workers")
    elif workers < 2 and restarts is not None and restarts > 0:
        r.add("litellm_gateway_num_workers", g.get("litellm_gateway_num_workers"),
              "must be at least 2 while workers recycle (litellm_gateway_max_requests_before_restart=%d): with one, "
              "the gateway refuses connections while its worker restarts" % restarts,
              "Raise litellm_gateway_num_workers or set litellm_gateway_max_requests_before_restart to 0.",
              "gateway-workers")

    gc = g.get("litellm_gateway_gc_threshold", [])
    if not isinstance(gc, (list, tuple)) or len(gc) not in (0, 3) or \
            any(as_int(v) is None or as_int(v) < 1 for v in gc):
        r.add("litellm_gateway_gc_threshold", gc, "must be three whole numbers of 1 or more (Python's gc.set_threshold; "
              "0 would turn the collector off) or an empty list (Python's own)",
              "Keep the default [7000, 10, 10] or write three numbers.", "gateway-gc-threshold")
    return port


def _route_errors(g, r, port):
    """What the gateway routes to: model_stack's endpoints of every backend host."""
    backends = g.get("backends") or []
    unpublished = list(g.get("unpublished") or [])
    if unpublished:
        r.add("litellm_gateway_backend_hosts", backends,
              "backend hosts %s published no model_stack_endpoints, the one list of models the gateway reads: "
              "model_stack's entry point `endpoints` runs for every backend host before the gateway "
              "(playbooks/gateway.yml runs it; it contacts no host)" % ", ".join(map(str, unpublished)),
              "Run the gateway through playbooks/gateway.yml or site.yml, or first include_role "
              "llmops.multillm.model_stack with tasks_from endpoints and model_stack_endpoints_host set to each "
              "backend host.", "gateway-endpoints")
    deployments = [d for d in g.get("deployments") or [] if isinstance(d, dict)]
    remote = [d for d in deployments if d.get("backend") != r.host and d.get("host") in LOOPBACK_HOSTS]
    for backend in sorted(set(str(d.get("backend")) for d in remote)):
        models = "; ".join("model %s at %s" % (d.get("name"), d.get("api_base"))
                           for d in remote if str(d.get("backend")) == backend)
        r.add("hostvars[%s].multillm_backend_address" % backend, "",
              "backend host %s: %s; these models run on another host, and %s is the gateway host's own loopback"
              % (backend, models, next(d.get("host") for d in remote if str(d.get("backend")) == backend)),
              "Set multillm_backend_address for %s to its address on the network to the gateway, e.g. 10.0.0.22."
              % backend, "backend-unreachable")
    for d in deployments:
        if d.get("backend") == r.host and port is not None and as_int(d.get("port")) == port:
            r.add("model_stack_endpoints (%s).port" % d.get("name"), d.get("port"),
                  "is the gateway's port on this host (litellm_gateway_port)", "Move the model or the gateway.",
                  "port-gateway")
    if not deployments and not unpublished:
        r.add("litellm_gateway_backend_hosts", backends,
              "the gateway would serve no model: the backend hosts publish no endpoint, none of their models passed "
              "its health gate in this run (model_stack_healthy_models), or all of them are drained (%s)"
              % g.get("drain_dir", "the drain directory"),
              "Fix the models first, restore the drained hosts, or set litellm_gateway_backend_hosts to the hosts "
              "that serve them.", "gateway-models")


def gateway_errors(gateway, host):
    """Every broken rule of the gateway on one host: a list of messages (empty when it holds).

    `gateway` holds the litellm_gateway_* settings the role reads; service_mgr (the host's fact);
    backends (litellm_gateway_backend_hosts), unpublished (the backends without
    model_stack_endpoints), deployments (one per backend host and healthy model: name, host,
    port, api_base, backend); and, for the port, listeners (listen_ports_facts' tcp_listen),
    socket_show and service_show (`systemctl show` lines of the gateway's socket and service),
    service_name, socket_unit, litellm_gateway_user and cgroups (slurp results of
    /proc/<pid>/cgroup of the foreign listeners).
    """
    g = dict(gateway or {})
    key = g.get("litellm_gateway_master_key")
    r = c._Report(host, (key,) if isinstance(key, str) and key else ())  # pylint: disable=protected-access
    try:
        _host_errors(g, r)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        # The task calling this runs behind no_log (its input holds the key): a bug here must
        # still reach the user, as a message, with the key hidden.
        r.errors.append(c.message_masked(
            "host %s: the gateway check itself failed (%s: %s). This is a bug in plugins/module_utils/_gateway.py; "
            "report it with the variable names, not their values. [internal]" % (host, type(exc).__name__, exc),
            r.secrets))
    return r.errors


def _host_errors(g, r):
    port = _settings_errors(g, r)
    _route_errors(g, r, port)
    if port is not None and "listeners" in g:
        foreign = foreign_listeners(g.get("listeners"), port, g.get("socket_show"), g.get("service_show"),
                                    g.get("litellm_gateway_user"))
        if foreign:
            r.add("litellm_gateway_port", port, "is taken: %s; the port must be free or held by %s or %s (LiteLLM "
                  "would otherwise start elsewhere or not at all)" % (
                      "; ".join(_listener_text(e, g.get("cgroups")) for e in foreign),
                      g.get("service_name", "the gateway's service"), g.get("socket_unit", "its socket")),
                  "Stop that program or choose another litellm_gateway_port.", "gateway-port-taken")
