#!/usr/bin/python3
"""Take one backend host's models out of the LiteLLM gateway, or put them back, without
dropping a request: config.yaml is rewritten and Gunicorn reloaded (HUP), which starts new
workers on the new file and lets the old ones finish what they serve.

    multillm-gateway-drain drain HOST     # before HOST is rebuilt (playbooks/reprovision.yml)
    multillm-gateway-drain restore HOST   # once HOST's models passed their health gates again
    multillm-gateway-drain list           # hosts drained now

The litellm_gateway role installs this file and a wrapper (litellm_gateway_drain_command)
that runs it with the gateway's virtualenv Python (PyYAML) and the --config, --stash-dir and
--service of that gateway. Prints one JSON line:
{"changed": bool, "host": ..., "deployments": N, "msg": ...}.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import yaml

HEADER = "# Rewritten by multillm-gateway-drain; the litellm_gateway role renders it again.\n"


def load(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def write_atomically(path, data, header=""):
    """Replace path with data as YAML, keeping its owner and mode; never a half-written file."""
    st = os.stat(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".drain.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(header)
            yaml.safe_dump(data, f, sort_keys=False)
        if os.geteuid() == 0:
            os.chown(tmp, st.st_uid, st.st_gid)
        os.chmod(tmp, st.st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def host_of(entry):
    """The backend host a deployment belongs to (model_info.multillm_host, set by the role)."""
    return (entry.get("model_info") or {}).get("multillm_host")


def key_of(entry):
    return entry["model_name"], entry["litellm_params"]["api_base"]


class Gateway:
    """Gunicorn's arbiter under systemd: reload() sends HUP and waits until none of the workers
    that read the old config.yaml remain."""

    def __init__(self, service, timeout_s=120.0, poll_s=0.2, proc="/proc"):
        self.service = service
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.proc = proc

    def main_pid(self):
        out = subprocess.run(["systemctl", "show", "--property=MainPID", "--value", self.service],
                             check=True, capture_output=True, text=True).stdout.strip()
        return int(out or 0)

    def workers(self, main_pid):
        try:
            with open("%s/%d/task/%d/children" % (self.proc, main_pid, main_pid), encoding="ascii") as f:
                return set(int(p) for p in f.read().split())
        except OSError:
            return set()

    def reload(self):
        main_pid = self.main_pid()
        if main_pid == 0:
            return "gateway not running: nothing to reload"
        old = self.workers(main_pid)
        subprocess.run(["systemctl", "reload", self.service], check=True)
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            now = self.workers(main_pid)
            if now and not now & old:
                return "reloaded: %d workers replaced" % len(old)
            time.sleep(self.poll_s)
        staying = sorted(old & self.workers(main_pid))
        raise SystemExit("host %s: the gateway's old workers %s were still running %d s after a reload; "
                         "check `journalctl -u %s`" % (os.uname().nodename, staying, self.timeout_s, self.service))


class Drainer:
    """config: the gateway's config.yaml; stash_dir: one <host>.yaml per drained host holding its
    deployments (the role leaves those hosts out of config.yaml until they are restored);
    reload: a callable that makes the gateway read config.yaml again and returns a message."""

    def __init__(self, config, stash_dir, reload):
        self.config = config
        self.stash_dir = stash_dir
        self.reload = reload

    def stash_path(self, host):
        if not host or os.sep in host or host.startswith("."):
            raise SystemExit("host name %r cannot name a file in %s: pass the inventory_hostname of a backend host"
                             % (host, self.stash_dir))
        return os.path.join(self.stash_dir, host + ".yaml")

    def drained(self):
        if not os.path.isdir(self.stash_dir):
            return []
        return sorted(n[:-len(".yaml")] for n in os.listdir(self.stash_dir) if n.endswith(".yaml"))

    def drain(self, host):
        stash = self.stash_path(host)
        config = load(self.config)
        entries = config.get("model_list") or []
        keep = [e for e in entries if host_of(e) != host]
        taken = [e for e in entries if host_of(e) == host]
        if not taken:
            return {"changed": False, "deployments": 0, "msg": "no deployment of %s in the gateway" % host}
        orphaned = sorted({e["model_name"] for e in taken} - {e["model_name"] for e in keep})
        os.makedirs(self.stash_dir, mode=0o700, exist_ok=True)
        stashed = (load(stash).get("model_list") or []) if os.path.exists(stash) else []
        # The stash first: a failure between the two writes leaves the host stashed and still
        # served, which a second drain repairs; never a host that is neither served nor stashed.
        fd = os.open(stash, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yaml.safe_dump({"model_list": stashed + [e for e in taken if e not in stashed]}, f, sort_keys=False)
        config["model_list"] = keep
        write_atomically(self.config, config, HEADER)
        msg = self.reload()
        if orphaned:
            msg += "; no other host serves %s until %s is restored" % (", ".join(orphaned), host)
        return {"changed": True, "deployments": len(taken), "msg": msg}

    def restore(self, host):
        stash = self.stash_path(host)
        if not os.path.exists(stash):
            return {"changed": False, "deployments": 0, "msg": "%s is not drained" % host}
        config = load(self.config)
        entries = config.get("model_list") or []
        present = {key_of(e) for e in entries}
        back = [e for e in load(stash).get("model_list") or [] if key_of(e) not in present]
        if back:
            config["model_list"] = entries + back
            write_atomically(self.config, config, HEADER)
        os.unlink(stash)
        msg = self.reload() if back else "already served"
        return {"changed": bool(back), "deployments": len(back), "msg": msg}


def parse_args(argv):
    p = argparse.ArgumentParser(prog="multillm-gateway-drain", description=__doc__.split("\n\n", maxsplit=1)[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="/etc/litellm-gateway/config.yaml", help="the gateway's config.yaml")
    p.add_argument("--stash-dir", default="/etc/litellm-gateway/drained",
                   help="where drained hosts' deployments wait (one HOST.yaml each)")
    p.add_argument("--service", default="litellm-gateway.service", help="the gateway's systemd service")
    p.add_argument("--reload-timeout", type=float, default=120.0,
                   help="seconds to wait for the old workers to leave after a reload")
    sub = p.add_subparsers(dest="action", required=True)
    for action in ("drain", "restore"):
        sub.add_parser(action).add_argument("host", help="inventory_hostname of the backend host")
    sub.add_parser("list")
    return p.parse_args(argv)


def main(argv=None, reload=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if reload is None:
        reload = Gateway(args.service, args.reload_timeout).reload
    drainer = Drainer(args.config, args.stash_dir, reload)
    if args.action == "list":
        result = {"changed": False, "drained": drainer.drained()}
    else:
        result = getattr(drainer, args.action)(args.host)
        result["host"] = args.host
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
