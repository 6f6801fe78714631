"""Tags (issue 13.5): the stage names select whole stages, and `--tags preflight` selects
only the controller-side preflight (it contacts no host). Role-internal steps are tagged
<role>_<step>, so no on-host role preflight carries the `preflight` tag."""

import os
import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
ENV = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
PLAY_RE = re.compile(r"^\s+play #\d+ \(([^)]*)\): (.*?)\tTAGS: \[(.*)\]$")
TASK_RE = re.compile(r"^\s{6}(.*?)\tTAGS: \[(.*)\]$")
# The argument-spec checks Ansible adds to every role run on the controller (an action
# plugin, tagged always); they contact no host.
ARGUMENT_CHECK = "Validating arguments against arg spec"


def list_tasks(*tags):
    proc = subprocess.run(["ansible-playbook", "site.yml", "-i", "inventories/lab", "--list-tasks"]
                          + (["--tags", ",".join(tags)] if tags else []),
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    plays = []
    for line in proc.stdout.splitlines():
        play = PLAY_RE.match(line)
        task = TASK_RE.match(line)
        if play:
            plays.append({"name": play.group(2), "hosts": play.group(1), "tasks": []})
        elif task and plays:
            plays[-1]["tasks"].append((task.group(1), [t.strip() for t in task.group(2).split(",") if t.strip()]))
    return plays


def test_tags_preflight_lists_only_the_controller_side_preflight():
    plays = list_tasks("preflight")
    listed = [(p["name"], t) for p in plays for t, _ in p["tasks"]]
    outside = [(play, task) for play, task in listed
               if not play.startswith("Preflight |") and ARGUMENT_CHECK not in task]
    assert outside == [], "tasks outside the preflight plays that --tags preflight selects: %s" % outside
    assert [t for p, t in listed if p.startswith("Preflight |")], "the preflight plays list no task"


def test_no_role_task_carries_the_preflight_tag():
    carriers = [(p["name"], t) for p in list_tasks() for t, tags in p["tasks"]
                if "preflight" in tags and not p["name"].startswith("Preflight |")]
    assert carriers == []


@pytest.mark.parametrize("stage, play", [
    ("models", "Boot the models in health-gated order"),
    ("verify", "Verify | models answer and the resting VRAM is on target"),
])
def test_a_stage_tag_selects_its_play(stage, play):
    plays = {p["name"]: p for p in list_tasks(stage)}
    assert plays[play]["tasks"], "--tags %s lists nothing in %s" % (stage, play)


def test_model_stack_steps_are_tagged_with_the_role_prefix():
    tags = {t for p in list_tasks() for _, ts in p["tasks"] for t in ts}
    steps = {t for t in tags if t.startswith("model_stack")}
    assert {"model_stack_preflight", "model_stack_configure", "model_stack_boot", "model_stack_endpoints"} <= steps
    assert not [t for t in tags if t.startswith("models-")], "old sub-tags left"
