"""Issue 15 item 8, the rest: model_stack's container tasks run under no_log (a model's env holds
the token), so they must never pull an image, or a pull error would be hidden. configure.yml's
tasks, as written, run against the fake Docker Engine API (fake_docker_engine.py) with an image
that is not on the host: no pull reaches the engine, and the step stops first with a message
that names the image and the model, uncensored."""

import pathlib

import yaml

from fake_docker_engine import ansible_playbook, fake_engine

ROOT = pathlib.Path(__file__).resolve().parents[3]
TASKS = yaml.safe_load((ROOT / "roles" / "model_stack" / "tasks" / "configure.yml").read_text())
MISSING, PRESENT = "registry.test/missing:1", "registry.test/here:1"


def spec(tmp_path, name, image):
    env_file = tmp_path / (name + ".env")
    env_file.write_text("HF_TOKEN=x\n")
    return {"name": name, "container": "multillm-model-" + name, "image": image, "entrypoint": ["/bin/true"],
            "command": [], "env": {}, "env_file": str(env_file), "published_ports": [], "volumes": [],
            "network": "", "ipc_mode": "private", "shm_size": "", "device_requests": [], "labels": {}}


def run(tmp_path, tasks, images_here):
    """Run ``tasks`` against a fake engine that has ``images_here``, no containers, and answers every
    POST (a pull is POST /images/create) 500; returns (rc, output, the POSTs' paths)."""
    sock = tmp_path / "docker.sock"
    with fake_engine(sock, images_here) as engine:
        play = [{"hosts": "localhost", "gather_facts": False,
                 "vars": {"model_stack_image_pull": "missing",
                          "__model_stack_specs": [spec(tmp_path, "a", PRESENT), spec(tmp_path, "b", MISSING)]},
                 "module_defaults": {"group/community.docker.docker": {"docker_host": "unix://%s" % sock}},
                 "tasks": tasks}]
        (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
        proc = ansible_playbook(tmp_path, tmp_path / "play.yml", ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    return proc.returncode, proc.stdout + proc.stderr, engine.posts


def named(prefix):
    found = [t for t in TASKS if t.get("name", "").startswith(prefix)]
    assert found, "configure.yml has no task named %r..." % prefix
    return found[0]


def test_the_container_task_never_pulls_a_missing_image(tmp_path):
    task = dict(named("Ensure each model's container exists"))
    task.pop("ignore_errors", None)
    rc, out, posts = run(tmp_path, [task], {PRESENT})
    assert rc != 0, out
    assert not [p for p in posts if "/images/create" in p], (posts, out)


def test_a_missing_image_stops_the_step_first_naming_it_uncensored(tmp_path):
    tasks = [t for t in TASKS if "community.docker.docker_image_info" in t or "ansible.builtin.assert" in t]
    assert len(tasks) == 2 and tasks[0] is TASKS[0], "the image check comes first in configure.yml"
    rc, out, posts = run(tmp_path, tasks, {PRESENT})
    flat = " ".join(out.split())
    assert rc != 0, out
    assert "image(s) %s of model(s) b not on the host, and the container step never pulls" % MISSING in flat, out
    assert "censored" not in out and posts == []


def test_with_every_image_there_the_check_passes(tmp_path):
    tasks = [t for t in TASKS if "community.docker.docker_image_info" in t or "ansible.builtin.assert" in t]
    rc, out, _posts = run(tmp_path, tasks, {PRESENT, MISSING})
    assert rc == 0, out
