"""Fixtures the GPU-host Molecule scenarios share: run a playbook against the Molecule instance."""
import json
import os
import subprocess

import pytest


@pytest.fixture(scope="session")
def run_playbook():
    """Run a playbook of this scenario against the Molecule inventory; return (rc, output)."""
    scenario_dir = os.environ["MOLECULE_SCENARIO_DIRECTORY"]
    project = os.environ["MOLECULE_PROJECT_DIRECTORY"]
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = os.path.join(project, "ansible.cfg")
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env.pop("ANSIBLE_ROLES_PATH", None)

    def run(playbook, extra_vars=None, check=False):
        cmd = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], os.path.join(scenario_dir, playbook)]
        if extra_vars:
            cmd += ["-e", json.dumps(extra_vars)]
        if check:
            cmd.append("--check")
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=project, check=False)
        raw = proc.stdout + proc.stderr
        # The YAML callback wraps long messages: a whitespace-normalised copy first (for message
        # checks), the raw output last (the PLAY RECAP parser reads its last line).
        return proc.returncode, " ".join(raw.split()) + "\n" + raw

    return run


@pytest.fixture(scope="session")
def recap():
    """Parse the PLAY RECAP of an ansible-playbook output."""
    return _recap


def _recap(output):
    """The PLAY RECAP counters of the last host line, e.g. {'ok': 12, 'changed': 0, ...}."""
    line = [l for l in output.splitlines() if " : ok=" in l][-1]
    return {k: int(v) for k, v in (f.split("=") for f in line.split(":", 1)[1].split())}
