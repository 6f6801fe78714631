# Copyright: llmops.multillm contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""model_stack's weights stage (tasks/weights.yml) against a stand-in hub on loopback
(benchmarks/weights/hub.py), with the real fetch: huggingface_hub of the lab's vLLM image
(multillm-vllm-cpu:latest, built by `make images`), in one Docker container per model.

One test, in order: check mode changes nothing; a fetch cut by the timeout fails naming the
model with its progress lines, both models fetched at once; the rerun fetches only the file that
was cut and leaves the cache vLLM reads (huggingface_hub offline finds the snapshot); a third run
fetches nothing. The token comes from the model's env file and never shows in the output. A local
directory and a hub id on the fault injector's image are never fetched and are named with why."""
import hashlib
import importlib.util
import json
import os
import pathlib
import re
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
IMAGE = "multillm-vllm-cpu:latest"
PORT = 18510
TOKEN = "hf_w_stage_secret_0123456789"
# bytes/s per connection. huggingface_hub writes 10 MB chunks: alpha's 9 MB shard lands after ~3 s,
# its 48 MB shard takes ~16 s (lines in bytes, cut by a 6 s timeout before it ends).
RATE = 3 * 1000 * 1000

sys.path.insert(0, str(ROOT / "collections"))
from ansible_collections.llmops.multillm.plugins.module_utils._model_spec import model_specs  # noqa: E402


def _hub_module():
    spec = importlib.util.spec_from_file_location("w_hub", str(ROOT / "benchmarks" / "weights" / "hub.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _docker(*args):
    return subprocess.run(["docker"] + list(args), capture_output=True, text=True)


PLAY = """
- hosts: localhost
  gather_facts: false
  vars:
    model_stack_hf_cache_dir: %(cache)s
    model_stack_weights_state_dir: %(state)s
    model_stack_weights_endpoint: http://127.0.0.1:%(port)d
    model_stack_weights_timeout_s: %(timeout)d
    model_stack_progress_every_s: 1
    multillm_models: %(models)s
    multillm_vram_strategy: static
    model_stack_device: cpu
    __model_stack_specs: %(specs)s
  tasks:
    - ansible.builtin.include_role:
        name: llmops.multillm.model_stack
        tasks_from: weights.yml
"""


def _play(tmp_path, specs, timeout, check=False):
    play = tmp_path / "play.yml"
    play.write_text(PLAY % {"cache": tmp_path / "cache", "state": tmp_path / "state", "port": PORT,
                            "timeout": timeout, "specs": json.dumps(specs),
                            "models": json.dumps([{"name": x["name"], "model": x["model"], "port": x["port"], "gpu_memory_utilization": 0.2} for x in specs])})
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"),
               ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    cmd = [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
           "-e", "ansible_python_interpreter=" + sys.executable, str(play)] + (["--check"] if check else [])
    began = time.time()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=str(tmp_path))
    sys.stderr.write("play (check=%s, timeout=%d): %.1f s\n" % (check, timeout, time.time() - began))
    return proc, proc.stdout + proc.stderr


def _flat(out):
    """The output with the callback's line wrapping undone."""
    return " ".join(out.split())


def _requests(log):
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def stage(tmp_path):
    if _docker("image", "inspect", IMAGE).returncode != 0:
        pytest.fail("%s is missing: run `make images` (the test fetches with the image's huggingface_hub)" % IMAGE)
    hub = _hub_module()
    repos = {}
    for name, shards in (("alpha", (9, 48)), ("beta", (12,))):
        folder = tmp_path / "hub" / name
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps({"model": name}))
        for i, mb in enumerate(shards, 1):
            (folder / ("model-%d.safetensors" % i)).write_bytes(os.urandom(mb * 1000 * 1000))
        repos["org/" + name] = hub.Repo("org/" + name, str(folder), 0)
    local = tmp_path / "local-model"
    local.mkdir()
    (tmp_path / "models").mkdir()
    # delta: a hub id on the fault injector's image (no huggingface_hub there, no weights to load)
    models = [{"name": "alpha", "model": "org/alpha", "port": 18511},
              {"name": "beta", "model": "org/beta", "port": 18512},
              {"name": "gamma", "model": str(local), "port": 18513},
              {"name": "delta", "model": "org/delta", "port": 18514, "image": "multillm-fault-injector:latest"}]
    specs = model_specs(models, {"multillm_vram_strategy": "static", "model_stack_device": "cpu",
                                 "model_stack_name_prefix": "w-", "model_stack_config_dir": str(tmp_path / "models")})
    for spec in specs:
        pathlib.Path(spec["env_file"]).write_text("HF_TOKEN=%s\n" % TOKEN)
        os.chmod(spec["env_file"], 0o600)
    log = tmp_path / "hub.log"
    server = hub.serve(repos, PORT, RATE, str(log))
    try:
        yield tmp_path, specs, log
    finally:
        server.shutdown()
        for name in ("alpha", "beta", "gamma", "delta"):
            _docker("rm", "-f", "w-%s-weights" % name)


def _sha(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def test_the_weights_stage_fetches_in_parallel_resumes_and_fills_the_cache_vllm_reads(stage):
    tmp_path, specs, log = stage
    cache = tmp_path / "cache"

    # Check mode: says what it would fetch, starts nothing, asks the hub nothing.
    proc, out = _play(tmp_path, specs, timeout=60, check=True)
    assert proc.returncode == 0, out
    assert "to fetch: alpha, beta" in _flat(out), out
    assert ("not fetched: gamma: a local directory, mounted read-only, never fetched; delta: its image "
            "multillm-fault-injector:latest is the fault injector, which loads no weights") in _flat(out), out
    assert _requests(log) == [] and _docker("container", "inspect", "w-alpha-weights").returncode != 0, out

    # Cut by the timeout: fails naming the model, with its lines in bytes (57.0 MB at 3 MB/s).
    proc, out = _play(tmp_path, specs, timeout=6)
    assert proc.returncode != 0, out
    assert re.search(r"the weights of alpha were not\s+fetched", out), out  # alpha only: not delta
    assert re.search(r"alpha: \d+\.\d MB of 57\.0 MB, \d+\.\d (?:kB|MB)/s, \d+ s", _flat(out)), out
    assert "beta: complete, 12.0 MB" in _flat(out), out
    first = _requests(log)

    # Both fetched at once: beta's download began a container start after alpha's (one after the
    # other it would have waited for alpha's 57 MB at 3 MB/s, 19 s).
    began = dict((r["path"].split("/")[2], r["t"]) for r in first
                 if r["method"] == "GET" and r["path"].endswith("model-1.safetensors"))
    assert set(began) == {"alpha", "beta"} and abs(began["alpha"] - began["beta"]) < 5.0, began

    # The rerun keeps the shard completed before and fetches only the one cut.
    proc, out = _play(tmp_path, specs, timeout=120)
    assert proc.returncode == 0, out
    assert "weights complete in the cache: beta" in _flat(out) and "to fetch: alpha" in _flat(out), out
    assert "alpha: complete, 57.0 MB" in _flat(out), out
    again = [r["path"] for r in _requests(log)[len(first):] if r["method"] == "GET" and "/resolve/" in r["path"]]
    assert [p.rsplit("/", 1)[1] for p in again] == ["model-2.safetensors"], again
    for name, shards in (("alpha", (1, 2)), ("beta", (1,))):
        snap = next((cache / "hub" / ("models--org--" + name) / "snapshots").iterdir())
        for i in shards:
            shard = "model-%d.safetensors" % i
            assert _sha(snap / shard) == _sha(tmp_path / "hub" / name / shard)
    blobs = os.listdir(cache / "hub" / "models--org--alpha" / "blobs")
    assert not [b for b in blobs if b.endswith(".incomplete")], blobs  # the cut run's leftover removed
    assert not (cache / "hub" / "models--org--gamma").exists()  # the local directory is never fetched
    assert _docker("container", "inspect", "w-alpha-weights").returncode != 0  # removed once done
    assert not [r for r in _requests(log) if "org/delta" in r["path"]]  # the fault injector's: never asked for
    assert _docker("container", "inspect", "w-delta-weights").returncode != 0

    # What vLLM does with the cache: huggingface_hub offline, in the model's image, finds the snapshot.
    found = _docker("run", "--rm", "-e", "HF_HUB_OFFLINE=1", "-v", "%s:/root/.cache/huggingface" % cache,
                    "--entrypoint", "python3", IMAGE, "-c",
                    "from huggingface_hub import snapshot_download as s; print(s('org/alpha'))")
    assert found.returncode == 0 and "models--org--alpha/snapshots/" in found.stdout, found.stdout + found.stderr

    # Third run: complete, nothing fetched, the hub not asked for a file.
    before = len(_requests(log))
    proc, out = _play(tmp_path, specs, timeout=60)
    assert proc.returncode == 0, out
    assert "weights complete in the cache: alpha, beta" in _flat(out) and "to fetch: none" in _flat(out), out
    assert "not fetched: gamma: a local directory" in _flat(out) and "; delta: its image" in _flat(out), out
    assert _requests(log)[before:] == [], out

    # The token was read from the env files only.
    assert TOKEN not in out
