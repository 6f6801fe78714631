"""Issue 15 item 8: the image pull is its own task, without no_log, with a progress line per
slice and the registry's own error. model_stack's tasks/images.yml runs against a fake Docker
Engine API on a unix socket (no Docker needed): one image pulls slowly, one is refused by
its registry."""

import json
import re
import pathlib
import time

import yaml

from fake_docker_engine import ansible_playbook, fake_engine

ROOT = pathlib.Path(__file__).resolve().parents[3]
SLOW, REFUSED = "registry.test/slow:1", "registry.test/refused:1"
REGISTRY_ERROR = "manifest for registry.test/refused:1 not found: manifest unknown"
LAYERS = {"layer1": 3_000_000_000, "layer2": 6_400_000_000}  # 9.4 GB, streamed over pull_seconds


def slow_or_refused(pull_seconds):
    """The fake engine's pull (fake_docker_engine.FakeEngine's ``pull``): REFUSED fails with the
    registry's error; any other image streams its LAYERS over ``pull_seconds``, then is pulled."""

    def pull(engine, name, chunk):
        if name == REFUSED:
            chunk({"status": "Pulling from registry.test/refused", "id": "1"})
            chunk({"errorDetail": {"message": REGISTRY_ERROR}, "error": REGISTRY_ERROR})
            return
        # As the engine streams a pull: the layers announced, then "Downloading" lines with
        # progressDetail {current, total} in bytes, then each layer's completion.
        chunk({"status": "Pulling from registry.test/slow", "id": "1"})
        for layer in LAYERS:
            chunk({"status": "Pulling fs layer", "progressDetail": {}, "id": layer})
        chunk({"status": "Already exists", "progressDetail": {}, "id": "present0"})
        start = time.time()
        while time.time() - start < pull_seconds:
            share = (time.time() - start) / pull_seconds
            for layer, total in LAYERS.items():
                chunk({"status": "Downloading", "id": layer,
                       "progressDetail": {"current": int(total * share), "total": total}})
            time.sleep(0.25)
        for layer in LAYERS:
            chunk({"status": "Download complete", "progressDetail": {}, "id": layer})
            chunk({"status": "Extracting", "id": layer, "progressDetail": {"current": 1, "total": LAYERS[layer]}})
            chunk({"status": "Pull complete", "progressDetail": {}, "id": layer})
        chunk({"status": "Digest: sha256:" + "b" * 64})
        engine.images.add(name)
        chunk({"status": "Status: Downloaded newer image for " + name})

    return pull


PLAY = """
- hosts: localhost
  gather_facts: false
  vars:
    multillm_models: [{name: a, model: a/b, port: 8001, gpu_memory_utilization: 0.5}]
    model_stack_image_pull: missing
    model_stack_image_archives: []
    model_stack_progress_every_s: 1
    __model_stack_specs: %(specs)s
  module_defaults:
    group/community.docker.docker:
      docker_host: unix://%(sock)s
    llmops.multillm.image_pull:
      docker_host: unix://%(sock)s
  tasks:
    - ansible.builtin.include_role:
        name: llmops.multillm.model_stack
        tasks_from: images.yml
"""


def run_images(tmp_path, images, pull_seconds, pulled=None):
    sock = tmp_path / "docker.sock"
    with fake_engine(sock, set() if pulled is None else pulled, slow_or_refused(pull_seconds)):
        play = tmp_path / "play.yml"
        play.write_text(PLAY % {"specs": json.dumps([{"image": i} for i in images]), "sock": sock})
        return ansible_playbook(tmp_path, play, "-e", "__model_stack_pull_dir=" + str(tmp_path / "pulls"))


def test_a_slow_pull_shows_bytes_and_a_refused_one_shows_the_registrys_error(tmp_path):
    proc = run_images(tmp_path, [SLOW, REFUSED], pull_seconds=8)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    # the slow pull: lines in bytes of the 9.4 GB its two layers announce (the layer already
    # present not counted), a rate and the time waited, growing; then pulled
    lines = re.findall(r"%s: (\d+\.\d) of 9\.4 GB, (\d+\.\d) (?:[kMG]B|B)/s, (\d+) s" % re.escape(SLOW), out)
    done = [float(c) for c, _, _ in lines]
    assert len(lines) >= 2 and done == sorted(done) and done[0] < 9.4, out  # at least one line mid-pull
    assert 0 < max(float(r) for _, r, _ in lines), out
    assert "%s: pulled" % SLOW in out and "9.4 of 9.4 GB" in out, out
    # the refused one: its own task fails with the registry's words, nothing censored
    assert REGISTRY_ERROR in out and "could not be pulled" in out, out
    assert "%s: failed after" % REFUSED in out and "censored" not in out, out
    # every progress file read was removed
    assert not list((tmp_path / "pulls").glob("*.json")), out


def test_a_present_image_is_not_pulled_again(tmp_path):
    pulled = set()
    proc = run_images(tmp_path, [SLOW], pull_seconds=1, pulled=pulled)
    assert proc.returncode == 0 and pulled == {SLOW}, proc.stdout + proc.stderr
    again = run_images(tmp_path, [SLOW], pull_seconds=1, pulled=pulled)
    out = again.stdout + again.stderr
    assert again.returncode == 0, out
    assert "%s: already present" % SLOW in out and "of 9.4 GB" not in out, out


def test_the_pull_tasks_carry_no_no_log():
    for name in ("images.yml", "image_pull.yml"):
        tasks = yaml.safe_load((ROOT / "roles" / "model_stack" / "tasks" / name).read_text())
        assert not [t for t in tasks if t.get("no_log")], name
    images = yaml.safe_load((ROOT / "roles" / "model_stack" / "tasks" / "images.yml").read_text())
    assert any("llmops.multillm.image_pull" in t for t in images)
