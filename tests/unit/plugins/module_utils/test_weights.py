"""The weights stage's logic (plugins/module_utils/_weights.py, filter weights_jobs) on plain values:
which models are fetched and how, when weights count as complete, the progress lines."""

import json
import os

from ansible_collections.llmops.multillm.plugins.filter import weights_jobs as weights_filter
from ansible_collections.llmops.multillm.plugins.module_utils import _weights
from ansible_collections.llmops.multillm.plugins.module_utils._model_spec import model_specs

SETTINGS = {"model_stack_hf_cache_dir": "/srv/hf", "model_stack_hf_cache_mount": "/root/.cache/huggingface",
            "model_stack_weights_state_dir": "/srv/weights", "model_stack_weights_endpoint": ""}


def _specs(models, **settings):
    return model_specs(models, dict({"multillm_vram_strategy": "static", "model_stack_hf_cache_dir": "/srv/hf"}, **settings))


def test_hub_models_are_fetched_and_local_directories_are_not():
    specs = _specs([{"name": "a", "model": "org/a", "port": 8001, "gpu_memory_utilization": 0.4},
                    {"name": "b", "model": "/models/b", "port": 8002, "gpu_memory_utilization": 0.4}])
    jobs = weights_filter.weights_jobs(specs, SETTINGS)
    assert [j["name"] for j in jobs] == ["a"]
    job = jobs[0]
    assert job["container"] == "multillm-model-a-weights" and job["image"] == specs[0]["image"]
    assert job["repo_dir"] == "/srv/hf/hub/models--org--a"
    # the same cache folder at the same path as the model's container, and the state folder
    assert "/srv/hf:/root/.cache/huggingface" in job["volumes"] and "/srv/weights:/run/multillm-weights" in job["volumes"]
    assert specs[0]["volumes"][0] == "/srv/hf:/root/.cache/huggingface"
    assert job["env_file"] == specs[0]["env_file"] and job["state_file"] == "/srv/weights/a.json"
    assert job["entrypoint"][:2] == ["python3", "-c"] and "snapshot_download" in job["entrypoint"][2]


def test_the_token_stays_in_the_env_file_and_the_fetch_goes_online():
    specs = _specs([{"name": "a", "model": "org/a", "port": 8001, "gpu_memory_utilization": 0.4}])
    job = _weights.jobs(specs, SETTINGS)[0]
    assert not [k for k in job["env"] if "TOKEN" in k]
    assert "HF_ENDPOINT" not in job["env"]  # huggingface_hub's default unless set
    assert job["env"]["HF_HUB_OFFLINE"] == "0"  # an image may bake HF_HUB_OFFLINE=1
    mirror = _weights.jobs(specs, dict(SETTINGS, model_stack_weights_endpoint="http://127.0.0.1:18500"))[0]
    assert mirror["env"]["HF_ENDPOINT"] == "http://127.0.0.1:18500"


def test_the_fault_injector_is_not_fetched():
    specs = _specs([{"name": "a", "model": "org/a", "port": 8001, "gpu_memory_utilization": 0.4}],
                   model_stack_server="fault_injector")
    assert _weights.jobs(specs, SETTINGS) == []


def test_the_revision_is_the_one_vllm_loads():
    assert _weights.revision(["vllm", "serve", "org/a", "--revision", "v2"]) == "v2"
    assert _weights.revision(["vllm", "serve", "org/a", "--revision=abc"]) == "abc"
    assert _weights.revision(["vllm", "serve", "org/a"]) == "main"
    specs = _specs([{"name": "a", "model": "org/a", "port": 8001, "gpu_memory_utilization": 0.4,
                     "extra_args": ["--revision", "v2"]}])
    job = _weights.jobs(specs, SETTINGS)[0]
    assert job["revision"] == "v2" and job["env"]["MULTILLM_REVISION"] == "v2"


def _job(tmp_path):
    return {"name": "a", "repo": "org/a", "revision": "main", "state_file": str(tmp_path / "a.json"),
            "repo_dir": str(tmp_path / "hub" / "models--org--a"), "container": "multillm-model-a-weights"}


def test_complete_needs_the_same_repo_and_revision_and_the_snapshot(tmp_path):
    job = _job(tmp_path)
    state = {"repo": "org/a", "revision": "main", "done": True, "error": None, "commit": "c0ffee"}
    assert not _weights.is_complete(job, state)  # no snapshot folder
    os.makedirs(os.path.join(job["repo_dir"], "snapshots", "c0ffee"))
    assert _weights.is_complete(job, state)
    assert not _weights.is_complete(job, dict(state, revision="v2"))
    assert not _weights.is_complete(job, dict(state, repo="org/b"))
    assert not _weights.is_complete(job, dict(state, done=False))
    assert not _weights.is_complete(job, dict(state, error="HTTPError: 404"))
    assert not _weights.is_complete(job, None)


def test_progress_lines():
    assert _weights.progress_line("a", None) == "a: starting"
    line = _weights.progress_line("a", {"bytes": 1234567890, "total": 3400000000, "rate": 45000000.0, "elapsed": 12.3})
    assert line == "a: 1.2 GB of 3.4 GB, 45.0 MB/s, 12 s"
    assert _weights.progress_line("a", {"bytes": 10, "total": None, "rate": 0, "elapsed": 1}) == "a: 10 B so far, 0 B/s, 1 s"
    assert _weights.progress_line("a", {"bytes": 3000000, "done": True, "elapsed": 4}) == "a: complete, 3.0 MB in 4 s"
    failed = _weights.progress_line("a", {"bytes": 0, "total": None, "error": "RepositoryNotFoundError: 404", "elapsed": 2})
    assert failed == "a: failed after 2 s, 0 B so far: RepositoryNotFoundError: 404"


def test_status_reads_the_state_files_and_reports_a_fetch_that_never_wrote_one(tmp_path):
    job = _job(tmp_path)
    b = dict(job, name="b", state_file=str(tmp_path / "b.json"))
    with open(job["state_file"], "w") as f:
        json.dump({"bytes": 5, "total": 10, "rate": 1.0, "elapsed": 5, "done": False}, f)
    st = _weights.status([job, b], started=100.0, now=130.0)
    assert st["lines"] == ["a: 5 B of 10 B, 1 B/s, 5 s", "b: starting"] and not st["done"] and st["failed"] == []
    late = _weights.status([job, b], started=100.0, now=100.0 + _weights.NO_STATE_GRACE_S + 1)
    assert late["failed"] == ["b"] and "no state from the fetch container" in late["models"]["b"]["error"]
    with open(job["state_file"], "w") as f:
        f.write('{"bytes": ')  # half-written: read as not there yet
    assert _weights.status([job])["lines"] == ["a: starting"]


def test_a_model_whose_own_image_is_the_fault_injector_is_not_fetched():
    # model_stack_server vllm (the default), one model on the fault injector's image: it has no
    # huggingface_hub and loads no weights, so a fetch there only failed 60 s later.
    models = [{"name": "a", "model": "org/a", "port": 8001, "gpu_memory_utilization": 0.4},
              {"name": "never", "model": "org/never", "port": 8002, "gpu_memory_utilization": 0.4,
               "image": "multillm-fault-injector:latest"},
              {"name": "old", "model": "org/old", "port": 8003, "gpu_memory_utilization": 0.4,
               "image": "multillm-fault-injector:v1"},
              {"name": "local", "model": "/models/local", "port": 8004, "gpu_memory_utilization": 0.4}]
    specs = _specs(models)
    assert [s["server"] for s in specs] == ["vllm"] * 4
    assert [j["name"] for j in _weights.jobs(specs, SETTINGS)] == ["a"]
    assert [j["name"] for j in weights_filter.weights_jobs(specs, SETTINGS)] == ["a"]
    skipped = weights_filter.weights_jobs(specs, SETTINGS, skipped=True)
    assert [s["name"] for s in skipped] == ["never", "old", "local"]
    assert skipped[0]["line"] == "never: its image multillm-fault-injector:latest is the fault injector, which loads no weights"
    assert "fault injector" in skipped[1]["reason"] and "local directory" in skipped[2]["reason"]


def test_the_fault_injector_image_is_the_one_the_settings_name():
    models = [{"name": "a", "model": "org/a", "port": 8001, "gpu_memory_utilization": 0.4,
               "image": "registry.example:5000/team/injector:2"},
              {"name": "b", "model": "org/b", "port": 8002, "gpu_memory_utilization": 0.4,
               "image": "registry.example:5000/team/vllm:2"}]
    specs = _specs(models)
    # the default injector image name matches neither
    assert [j["name"] for j in _weights.jobs(specs, SETTINGS)] == ["a", "b"]
    assert _weights.skipped(specs, SETTINGS) == []
    own = dict(SETTINGS, model_stack_image_fault_injector="registry.example:5000/team/injector:latest")
    assert [j["name"] for j in _weights.jobs(specs, own)] == ["b"]
    assert [s["name"] for s in _weights.skipped(specs, own)] == ["a"]
    # server fault_injector: every model, with its reason
    all_fi = _specs(models[:1], model_stack_server="fault_injector")
    assert _weights.skipped(all_fi, SETTINGS)[0]["reason"] == "served by the fault_injector, which loads no weights"
