"""Run a module of the collection as Ansible runs it: its own process, its arguments in
ANSIBLE_MODULE_ARGS, the collection importable from collections/."""

import json
import os
import pathlib
import subprocess
import sys

COLLECTIONS = pathlib.Path(__file__).resolve().parents[4] / "collections"


def run_module(name, args, check_mode=False):
    """The module's JSON result, with its exit status as _rc and its whole output as _raw."""
    args = dict(args, _ansible_check_mode=check_mode)
    env = dict(os.environ, PYTHONPATH=str(COLLECTIONS))
    proc = subprocess.run([sys.executable, "-m", "ansible_collections.llmops.multillm.plugins.modules." + name,
                           json.dumps({"ANSIBLE_MODULE_ARGS": args})],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    result = json.loads(proc.stdout)
    result["_rc"] = proc.returncode
    result["_raw"] = proc.stdout + proc.stderr
    return result
