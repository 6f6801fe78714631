"""Tags (issue 13.5): the stage names select whole stages, and `--tags preflight` selects
only the controller-side preflight (it contacts no host). Role-internal steps are tagged
<role>_<step>, so no on-host role preflight carries the `preflight` tag. A stage's or a role's
tag selects nothing of another stage, not even a role's argument-spec check (tagged `always`
when the role sits under `roles:`; the stage playbooks include their roles instead)."""

import os
import pathlib
import re
import subprocess

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
ENV = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
PLAY_RE = re.compile(r"^\s+play #\d+ \(([^)]*)\): (.*?)\tTAGS: \[(.*)\]$")
TASK_RE = re.compile(r"^\s{6}(.*?)\tTAGS: \[(.*)\]$")


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
    # Not even an argument-spec check of a role (it would run on every host of the play).
    outside = [(play, task) for play, task in listed if not play.startswith("Preflight |")]
    assert outside == [], "tasks outside the preflight plays that --tags preflight selects: %s" % outside
    assert [t for p, t in listed if p.startswith("Preflight |")], "the preflight plays list no task"


GPU_HOST = "Prepare GPU hosts"
MODELS = "Boot the models in health-gated order"
GATEWAY = "Install and start the LiteLLM gateway"
VERIFY = "Verify |"
STAGE_OF_TAG = {
    "gpu_host": GPU_HOST, "driver": GPU_HOST, "nvidia_driver": GPU_HOST, "docker": GPU_HOST,
    "docker_engine": GPU_HOST, "toolkit": GPU_HOST, "nvidia_container_toolkit": GPU_HOST,
    "nvidia_driver_packages": GPU_HOST, "docker_engine_service": GPU_HOST,
    "models": MODELS, "model_stack_boot": MODELS,
    "gateway": GATEWAY, "litellm_gateway_preflight": GATEWAY,
    "verify": VERIFY,
}


@pytest.mark.parametrize("tag", sorted(STAGE_OF_TAG))
def test_a_stage_or_role_tag_selects_only_its_stage(tag):
    """`--tags driver` used to reach the gateway and model plays (their roles' argument-spec checks,
    tagged always), so a bad gateway setting failed a driver-only run."""
    listed = [(p["name"], t) for p in list_tasks(tag) for t, _ in p["tasks"]]
    outside = [(play, task) for play, task in listed if not play.startswith(STAGE_OF_TAG[tag])]
    assert outside == [], "--tags %s selects tasks of other stages: %s" % (tag, outside)
    assert listed, "--tags %s selects nothing" % tag


def _tags_in(path):
    """Every tag a role's tasks/main.yml names (its steps)."""
    found = set()

    def walk(node):
        if isinstance(node, dict):
            tags = node.get("tags")
            found.update([tags] if isinstance(tags, str) else tags or [])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(yaml.safe_load(path.read_text()))
    return found


@pytest.mark.parametrize("playbook", ["gpu_host.yml", "models.yml", "gateway.yml"])
def test_each_stage_includes_its_roles_with_every_step_tag(playbook):
    """A role included (not under `roles:`) runs only when a tag of the include matches: the include
    carries every step tag of the role, so `--tags <role>_<step>` still reaches the step."""
    plays = yaml.safe_load((ROOT / "playbooks" / playbook).read_text())
    for play in plays:
        assert "roles" not in play, "%s: %s lists roles under roles:" % (playbook, play["name"])
        includes = [t for t in play.get("pre_tasks", []) + play.get("tasks", [])
                    if "ansible.builtin.include_role" in t and "tasks_from" not in t["ansible.builtin.include_role"]]
        assert includes, "%s includes no role" % playbook
        for task in includes:
            role = task["ansible.builtin.include_role"]["name"].rsplit(".", 1)[1]
            steps = _tags_in(ROOT / "roles" / role / "tasks" / "main.yml")
            meta = yaml.safe_load((ROOT / "roles" / role / "meta" / "main.yml").read_text())
            for dep in meta.get("dependencies") or []:
                steps |= _tags_in(ROOT / "roles" / dep["role"].rsplit(".", 1)[1] / "tasks" / "main.yml")
            missing = steps - set(task["tags"])
            assert not missing, "%s: the include of %s lacks the step tags %s" % (playbook, role, sorted(missing))


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
