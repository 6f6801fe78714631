# -*- coding: utf-8 -*-
# Copyright: llmops.multillm contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The weights stage of model_stack (issue 15 item 10): every model's weights fetched into the
Hugging Face cache its container mounts, all models at once, before the boot chain, so the
health timeout measures loading only.

Each fetch runs in the model's own image (its huggingface_hub is the one vLLM reads the cache
with), in a detached container that mounts the same cache folder at the same path as the model
container, reads the token from the model's root-only env file (never a command line) and
writes a small JSON state file (bytes so far, total, rate, done, error) that the play reads per
slice. What a rerun keeps: every file completed before (a blob in the cache is not fetched
again); the file that was in flight starts over - huggingface_hub 2.x (the vLLM images' copy,
file_download._download_to_tmp_and_move) writes it to a per-process <etag>.<random>.incomplete
and resumes with a Range request only within one process (a dropped connection), never across
runs. Files arrive on disk in 10 MB chunks (its DOWNLOAD_CHUNK_SIZE), so the bytes move in such
steps. Models given as a local directory, and those whose state says complete for the same
repository and revision with the snapshot still there, are skipped."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

from ansible_collections.llmops.multillm.plugins.module_utils._contract import MODEL_STACK_DEFAULTS

SETTINGS = ("model_stack_hf_cache_dir", "model_stack_hf_cache_mount", "model_stack_weights_state_dir",
            "model_stack_weights_endpoint", "model_stack_image_fault_injector")

# A fetch's container is the model's container name plus this.
WEIGHTS_CONTAINER_SUFFIX = "-weights"
# The state folder on the host and inside the fetch container.
STATE_MOUNT = "/run/multillm-weights"

# Runs in the model image as `python3 -c FETCH_SCRIPT`. Environment: MULTILLM_REPO,
# MULTILLM_REVISION, MULTILLM_STATE (the state file inside the container), HF_TOKEN (env file,
# optional), HF_ENDPOINT (optional). A thread writes the state every second; the cache's
# repository folder (blobs and their .incomplete files) is what is counted, as on disk.
FETCH_SCRIPT = r'''
import json, os, signal, sys, threading, time
# PID 1 of its container: without a handler SIGTERM (docker stop) is ignored until the SIGKILL.
signal.signal(signal.SIGTERM, lambda *_: os._exit(143))
from huggingface_hub import HfApi, snapshot_download
from huggingface_hub.constants import HF_HUB_CACHE
repo, rev, path = os.environ["MULTILLM_REPO"], os.environ.get("MULTILLM_REVISION") or "main", os.environ["MULTILLM_STATE"]
folder = os.path.join(HF_HUB_CACHE, "models--" + repo.replace("/", "--"))
state = {"repo": repo, "revision": rev, "bytes": 0, "total": None, "rate": 0.0, "started": time.time(),
         "done": False, "error": None, "commit": None}
def size():
    n = 0
    for d, _, fs in os.walk(os.path.join(folder, "blobs")):
        for f in fs:
            try:
                n += os.path.getsize(os.path.join(d, f))
            except OSError:
                pass
    return n
def write():
    state["elapsed"] = round(time.time() - state["started"], 1)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.replace(tmp, path)
def watch():
    seen = [(time.time(), size())]
    while not state["done"] and not state["error"]:
        time.sleep(1)
        now, n = time.time(), size()
        seen = (seen + [(now, n)])[-6:]
        state["bytes"] = n
        state["rate"] = round((n - seen[0][1]) / max(now - seen[0][0], 1e-3), 1)
        write()
blobs = os.path.join(folder, "blobs")
# huggingface_hub 2.x downloads each file to <etag>.<random>.incomplete and never reuses one left
# by a killed process: such leftovers are garbage (and would count as progress).
for f in (os.listdir(blobs) if os.path.isdir(blobs) else []):
    if f.endswith(".incomplete"):
        os.unlink(os.path.join(blobs, f))
write()
try:
    api = HfApi()
    commit = api.repo_info(repo, revision=rev).sha
    state["commit"] = commit
    state["total"] = sum(f.size or 0 for f in api.list_repo_tree(repo, revision=commit, recursive=True)
                         if getattr(f, "size", None) is not None)
    t = threading.Thread(target=watch, daemon=True)
    t.start()
    snapshot_download(repo, revision=rev)
    state["bytes"] = size()
    state["done"] = True
except Exception as e:  # the hub's own message, for the play's failure
    state["error"] = "%s: %s" % (type(e).__name__, str(e).replace(os.environ.get("HF_TOKEN") or "\0", "<token>"))
write()
sys.exit(0 if state["done"] else 1)
'''


def repo_folder(repo_id):
    """The cache folder huggingface_hub keeps a model repository in (models--org--name)."""
    return "models--" + str(repo_id).replace("/", "--")


def is_local(model):
    """A model given as a directory on the host: mounted read-only, never fetched."""
    return str(model).startswith("/")


def revision(argv):
    """The revision vLLM loads: its --revision flag (a model's extra_args), else main."""
    argv = [str(a) for a in argv or []]
    for i, arg in enumerate(argv):
        if arg == "--revision" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--revision="):
            return arg.split("=", 1)[1]
    return "main"


def _settings(settings):
    s = dict((k, v) for k, v in MODEL_STACK_DEFAULTS.items() if k in SETTINGS)
    s.update((k, v) for k, v in (settings or {}).items() if k in SETTINGS and v is not None)
    return s


def _image_repository(image):
    """'registry:5000/org/name:tag' -> 'registry:5000/org/name' (a digest or tag dropped)."""
    image = str(image or "").split("@", 1)[0]
    last = image.rsplit("/", 1)[-1]
    return image[:len(image) - len(last)] + last.split(":", 1)[0]


def skip_reason(spec, settings):
    """Why a model's weights are not fetched (None: they are). The fault injector holds no model
    and no huggingface_hub: a fetch in its image would only fail, NO_STATE_GRACE_S later - whether
    every model runs it (model_stack_server) or one model names it as its own image."""
    s = _settings(settings)
    if is_local(spec["model"]):
        return "a local directory, mounted read-only, never fetched"
    if spec.get("server", "vllm") != "vllm":
        return "served by the %s, which loads no weights" % spec.get("server")
    injector = s.get("model_stack_image_fault_injector")
    if injector and _image_repository(spec.get("image")) == _image_repository(injector):
        return "its image %s is the fault injector, which loads no weights" % spec.get("image")
    return None


def skipped(specs, settings):
    """The models the stage does not fetch, each with the reason: [{name, reason, line}] in boot
    order, line being '<name>: <reason>' (what the play prints)."""
    out = []
    for spec in specs:
        reason = skip_reason(spec, settings)
        if reason:
            out.append({"name": spec["name"], "reason": reason, "line": "%s: %s" % (spec["name"], reason)})
    return out


def jobs(specs, settings):
    """One fetch per hub model: what the play starts and watches. specs: model_specs' output;
    settings: model_stack_hf_cache_dir, model_stack_hf_cache_mount, model_stack_weights_state_dir,
    model_stack_weights_endpoint, model_stack_image_fault_injector (left out: the role defaults).
    The models skip_reason names are left out (skipped() lists them)."""
    s = _settings(settings)
    out = []
    for spec in specs:
        if skip_reason(spec, s):
            continue
        name = spec["name"]
        state = "%s/%s.json" % (s["model_stack_weights_state_dir"], name)
        env = {"MULTILLM_REPO": spec["model"], "MULTILLM_REVISION": revision(spec.get("command")),
               "MULTILLM_STATE": "%s/%s.json" % (STATE_MOUNT, name), "HF_HUB_DISABLE_PROGRESS_BARS": "1",
               # An image may bake HF_HUB_OFFLINE=1 for its model containers (the lab's CPU image does):
               # the fetch is the one step that goes online.
               "HF_HUB_OFFLINE": "0"}
        if s.get("model_stack_weights_endpoint"):
            env["HF_ENDPOINT"] = s["model_stack_weights_endpoint"]
        out.append({
            "name": name,
            "repo": spec["model"],
            "revision": env["MULTILLM_REVISION"],
            "image": spec["image"],
            "container": spec["container"] + WEIGHTS_CONTAINER_SUFFIX,
            "env": env,
            "env_file": spec["env_file"],
            "state_file": state,
            "repo_dir": "%s/hub/%s" % (s["model_stack_hf_cache_dir"], repo_folder(spec["model"])),
            "volumes": ["%s:%s" % (s["model_stack_hf_cache_dir"], s["model_stack_hf_cache_mount"]),
                        "%s:%s" % (s["model_stack_weights_state_dir"], STATE_MOUNT)],
            "entrypoint": ["python3", "-c", FETCH_SCRIPT],
        })
    return out


def is_complete(job, state):
    """True when the state file says this repository and revision were fetched whole and the
    snapshot folder of that commit is still in the cache."""
    if not state or not state.get("done") or state.get("error"):
        return False
    if state.get("repo") != job["repo"] or state.get("revision") != job["revision"]:
        return False
    commit = state.get("commit") or ""
    return bool(commit) and os.path.isdir(os.path.join(job["repo_dir"], "snapshots", commit))


def human_bytes(n):
    n = float(n or 0)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1000.0
    return "%.1f TB" % n  # pragma: no cover


def progress_line(name, state):
    """'<model>: 1.2 of 3.4 GB, 45.0 MB/s, 12 s' (total unknown: '1.2 GB so far'), or done/failed."""
    if not state:
        return "%s: starting" % name
    got = human_bytes(state.get("bytes"))
    total = state.get("total")
    amount = ("%s of %s" % (got, human_bytes(total))) if total is not None else ("%s so far" % got)
    elapsed = "%d s" % int(state.get("elapsed") or 0)
    if state.get("error"):
        return "%s: failed after %s, %s: %s" % (name, elapsed, amount, state["error"])
    if state.get("done"):
        return "%s: complete, %s in %s" % (name, human_bytes(state.get("bytes")), elapsed)
    return "%s: %s, %s/s, %s" % (name, amount, human_bytes(state.get("rate")), elapsed)


def read_state(path):
    """The state file as a dict; None when it is missing or half-written."""
    try:
        with open(path) as f:
            return json.load(f)
    except (IOError, OSError, ValueError):
        return None


# A fetch writes its state file first thing; none after this long means it never ran.
NO_STATE_GRACE_S = 60


def status(job_list, started=0.0, now=0.0):
    """Every job's state and line, and whether all are done / which failed. started/now (epoch
    seconds, 0: unknown): a fetch with no state file NO_STATE_GRACE_S after the start failed."""
    models = {}
    for job in job_list:
        st = read_state(job["state_file"])
        if st is None and started and now - started > NO_STATE_GRACE_S:
            st = {"bytes": 0, "elapsed": now - started,
                  "error": "no state from the fetch container after %d s (docker logs %s)"
                           % (NO_STATE_GRACE_S, job.get("container", ""))}
        models[job["name"]] = {"state": st, "line": progress_line(job["name"], st),
                               "done": bool(st and st.get("done")),
                               "error": (st or {}).get("error")}
    return {
        "models": models,
        "lines": [models[j["name"]]["line"] for j in job_list],
        "done": all(m["done"] or m["error"] for m in models.values()),
        "failed": sorted(n for n, m in models.items() if m["error"]),
    }
