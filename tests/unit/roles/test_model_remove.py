"""model_stack's tasks/remove.yml, as written, on a host that has a listed model, a model that left
the list (unit, env file, container), one with only a container and an env file left, and things
that are not the collection's: only what belongs to the models that left is stopped and removed,
named as _model_spec names every model's unit, container and env file (filter model_removals).

The units live in a temporary folder (__model_stack_unit_dir), the containers in the fake Docker
Engine (fake_docker_engine.py); the systemd stop becomes a debug line of the same arguments, loop
and condition (no systemd here), and the handler notification is dropped."""

import pathlib
import re

import yaml

from fake_docker_engine import ansible_playbook, fake_engine

ROOT = pathlib.Path(__file__).resolve().parents[3]
TASKS = yaml.safe_load((ROOT / "roles" / "model_stack" / "tasks" / "remove.yml").read_text())
PREFIX = "multillm-model-"


def remove_tasks():
    tasks = []
    for task in TASKS:
        task = dict(task)
        if "ansible.builtin.systemd_service" in task:
            args = task.pop("ansible.builtin.systemd_service")
            assert (args["state"], args["enabled"]) == ("stopped", False)
            task["ansible.builtin.debug"] = {"msg": "STOP=" + args["name"] + "="}
        task.pop("notify", None)
        tasks.append(task)
    return tasks


def run_remove(tmp_path, units, envs, containers):
    """Run remove.yml with the model ``keep`` listed, ``units`` in the unit folder, ``envs`` in the
    config folder and ``containers`` in the engine; returns (process, engine, unit folder, config folder)."""
    unit_dir, config_dir = tmp_path / "units", tmp_path / "models"
    for folder, names in ((unit_dir, units), (config_dir, envs)):
        folder.mkdir()
        for name in names:
            (folder / name).write_text("x\n")
    sock = tmp_path / "docker.sock"
    settings = {"model_stack_name_prefix": PREFIX, "model_stack_config_dir": str(config_dir)}
    play = [{"hosts": "localhost", "gather_facts": False,
             "vars": dict(settings, __model_stack_unit_dir=str(unit_dir), __model_stack_settings=settings,
                          multillm_models=[{"name": "keep", "model": "m/keep", "port": 8001, "gpu_memory_utilization": 0.5}]),
             "module_defaults": {"group/community.docker.docker": {"docker_host": "unix://%s" % sock}},
             "tasks": remove_tasks()}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    with fake_engine(sock, containers=containers) as engine:
        proc = ansible_playbook(tmp_path, tmp_path / "play.yml")
    return proc, engine, unit_dir, config_dir


def test_only_the_models_that_left_the_list_are_stopped_and_removed(tmp_path):
    proc, engine, units, configs = run_remove(
        tmp_path, [PREFIX + "keep.service", PREFIX + "gone.service", "other.service"], ["keep.env", "gone.env", "ghost.env"],
        [PREFIX + "keep", PREFIX + "gone", PREFIX + "ghost", "registry"])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    # the unit of the model that left is stopped; the ghost has no unit, the listed model stays
    stops = sorted(re.findall(r"STOP=([^=]*)=", out))
    assert stops == [PREFIX + "gone.service"], out
    assert sorted(engine.deletes) == [PREFIX + "ghost", PREFIX + "gone"], out
    assert sorted(engine.containers.values()) == [PREFIX + "keep", "registry"]
    assert sorted(p.name for p in units.iterdir()) == [PREFIX + "keep.service", "other.service"], out
    assert sorted(p.name for p in configs.iterdir()) == ["keep.env"], out


def test_with_every_model_listed_nothing_is_removed(tmp_path):
    proc, engine, _units, _configs = run_remove(tmp_path, [PREFIX + "keep.service"], ["keep.env"], [PREFIX + "keep"])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "STOP=" not in out and engine.deletes == [], out
    assert "changed=0" in out, out
