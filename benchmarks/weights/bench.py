#!/usr/bin/env python3
# Copyright: llmops.multillm contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Time to serve N models on a first boot (issue 15 item 10), real vLLM (the CPU build,
multillm-vllm-cpu:latest), weights from the stand-in hub (hub.py) on loopback, paced to a link:

  staged      today's role: every model's weights fetched at once by the weights stage's own
              fetch (_weights.jobs: FETCH_SCRIPT, its env and volumes, in the model's image), then
              each model started in boot order, the next once the last answers /health 200.
  sequential  the old way: each model started in turn with an empty cache and the hub online,
              vLLM fetching its weights inside its own start, the next once the last is healthy.

Time to serve = from the first container start to the last model's /health 200. The models
are Qwen2 models with random weights generated once (sizes: --sizes, MB of bf16 safetensors),
from the image's tiny model's tokenizer and config. vLLM's argv and env are the role's
(model_specs, model_stack_device cpu, --enforce-eager as the lab); the model containers run on
the host network (the hub is on the host's loopback), with the role's cache volume.

Raw output: one JSON line per run to --out (default benchmarks/results/weights/runs.jsonl, git-ignored).

  flock -o /tmp/multillm-heavy.lock .venv/bin/python benchmarks/weights/bench.py --runs 1
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "collections"))
sys.path.insert(0, HERE)
import hub  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.llmops.multillm.plugins.module_utils import _weights  # noqa: E402
from ansible_collections.llmops.multillm.plugins.module_utils._model_spec import model_specs  # noqa: E402

IMAGE = "multillm-vllm-cpu:latest"
PREFIX = "w-bench-"
MB = 1000 * 1000

# Writes a Qwen2 model of about SIZE_MB MB of bf16 weights into OUT, from /models/qwen2-tiny's
# tokenizer and config (its 640-token vocabulary): wider and deeper layers, random weights.
GENERATE = r'''
import json, os, shutil, sys, torch
from safetensors.torch import save_file
out, size_mb = sys.argv[1], int(sys.argv[2])
src = "/models/qwen2-tiny"
os.makedirs(out, exist_ok=True)
for f in os.listdir(src):
    if not f.endswith(".safetensors"):
        shutil.copy(os.path.join(src, f), out)
cfg = json.load(open(os.path.join(src, "config.json")))
h, inter, heads, kv, hd, vocab = 1024, 4096, 16, 2, 64, cfg["vocab_size"]
per_layer = h * heads * hd + heads * hd + 2 * (h * kv * hd + kv * hd) + heads * hd * h + 3 * h * inter + 2 * h
layers = max(1, round((size_mb * 1e6 / 2 - vocab * h - h) / per_layer))
cfg.update(hidden_size=h, intermediate_size=inter, num_attention_heads=heads, num_key_value_heads=kv,
           head_dim=hd, num_hidden_layers=layers, layer_types=["full_attention"] * layers, max_window_layers=layers)
json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=1)
g = torch.Generator().manual_seed(size_mb)
def r(*shape):
    return (torch.randn(*shape, generator=g) * 0.02).to(torch.bfloat16)
t = {"model.embed_tokens.weight": r(vocab, h), "model.norm.weight": torch.ones(h, dtype=torch.bfloat16)}
for i in range(layers):
    p = "model.layers.%d." % i
    t.update({p + "self_attn.q_proj.weight": r(heads * hd, h), p + "self_attn.q_proj.bias": r(heads * hd),
              p + "self_attn.k_proj.weight": r(kv * hd, h), p + "self_attn.k_proj.bias": r(kv * hd),
              p + "self_attn.v_proj.weight": r(kv * hd, h), p + "self_attn.v_proj.bias": r(kv * hd),
              p + "self_attn.o_proj.weight": r(h, heads * hd),
              p + "mlp.gate_proj.weight": r(inter, h), p + "mlp.up_proj.weight": r(inter, h),
              p + "mlp.down_proj.weight": r(h, inter),
              p + "input_layernorm.weight": torch.ones(h, dtype=torch.bfloat16),
              p + "post_attention_layernorm.weight": torch.ones(h, dtype=torch.bfloat16)})
save_file(t, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
print(layers, os.path.getsize(os.path.join(out, "model.safetensors")))
'''


def sh(*args, **kw):
    return subprocess.run(list(args), check=kw.pop("check", True), capture_output=True, text=True, **kw)


def generate(models_dir, sizes):
    """The bench models, generated once (kept in models_dir between runs)."""
    names = []
    for size in sizes:
        name = "qwen2-%dmb" % size
        folder = os.path.join(models_dir, name)
        if not os.path.exists(os.path.join(folder, "model.safetensors")):
            os.makedirs(models_dir, exist_ok=True)
            sh("docker", "run", "--rm", "--name", PREFIX + "gen", "-v", "%s:/out" % models_dir,
               "--entrypoint", "python3", IMAGE, "-c", GENERATE, "/out/" + name, str(size))
            sh("docker", "run", "--rm", "-v", "%s:/out" % models_dir, "--entrypoint", "chmod", IMAGE, "-R", "a+rX", "/out")
        names.append(name)
    return names


def specs_for(names, work, port0):
    models = [{"name": n, "model": "bench/" + n, "port": port0 + i, "max_model_len": 512, "cpu_kvcache_gib": 1,
               "gpu_memory_utilization": 0.3, "extra_args": ["--enforce-eager"]} for i, n in enumerate(names)]
    settings = {"multillm_vram_strategy": "static", "model_stack_device": "cpu", "model_stack_image_cpu": IMAGE,
                "model_stack_name_prefix": PREFIX, "model_stack_hf_cache_dir": os.path.join(work, "hf"),
                "model_stack_config_dir": os.path.join(work, "config")}
    return model_specs(models, settings), settings


def start_model(spec, work, online_endpoint=None):
    """The model's container as the role runs it (image, vLLM argv, env, the HF cache volume),
    without the gate wrapper, on the host network. online_endpoint: the old way, vLLM fetching."""
    cache = os.path.join(work, "vllm", spec["name"])
    os.makedirs(cache, exist_ok=True)
    env = dict(spec["env"])
    if online_endpoint:
        env.update(HF_HUB_OFFLINE="0", HF_ENDPOINT=online_endpoint, HF_HUB_DISABLE_PROGRESS_BARS="1")
    args = ["docker", "run", "-d", "--name", spec["container"], "--network", "host", "--shm-size", spec["shm_size"] or "1g",
            "-v", spec["volumes"][0], "-v", "%s:%s" % (cache, env["VLLM_CACHE_ROOT"])]
    for k, v in sorted(env.items()):
        args += ["-e", "%s=%s" % (k, v)]
    args += ["--entrypoint", spec["command"][0], spec["image"]] + spec["command"][1:]
    sh(*args)


def wait_healthy(spec, timeout):
    """Seconds until /health answers 200 (fails with the container's last log lines)."""
    began = time.time()
    while time.time() - began < timeout:
        try:
            with urllib.request.urlopen(spec["health_url"], timeout=2) as r:
                if r.status == 200:
                    return time.time()
        except Exception:  # pylint: disable=broad-except  # not up yet
            pass
        state = sh("docker", "inspect", "-f", "{{.State.Running}}", spec["container"], check=False).stdout.strip()
        if state != "true":
            break
        time.sleep(0.5)
    logs = sh("docker", "logs", "--tail", "30", spec["container"], check=False)
    raise RuntimeError("%s not healthy: %s" % (spec["name"], (logs.stdout + logs.stderr)[-3000:]))


def start_fetches(jobs):
    """The weights stage's fetch containers (tasks/weights.yml's docker_container, by docker run)."""
    for job in jobs:
        args = ["docker", "run", "-d", "--name", job["container"], "--network", "host"]
        for k, v in sorted(job["env"].items()):
            args += ["-e", "%s=%s" % (k, v)]
        args += ["--env-file", job["env_file"]]
        for vol in job["volumes"]:
            args += ["-v", vol]
        args += ["--entrypoint", job["entrypoint"][0], job["image"]] + job["entrypoint"][1:]
        sh(*args)


def cleanup(specs, jobs=()):
    names = [s["container"] for s in specs] + [j["container"] for j in jobs]
    sh("docker", "rm", "-f", *names, check=False)


def fresh(base):
    # The containers write as root: remove through docker.
    if os.path.exists(base):
        sh("docker", "run", "--rm", "-v", "%s:/w" % base, "--entrypoint", "rm", IMAGE, "-rf", "/w/hf", "/w/vllm",
           "/w/state", "/w/config", check=False)
    for d in ("hf", "vllm", "state", "config"):
        os.makedirs(os.path.join(base, d), exist_ok=True)


def run_staged(specs, settings, work, endpoint, timeout):
    fresh(work)
    for s in specs:
        open(s["env_file"], "w").close()
    jobs = _weights.jobs(specs, dict(settings, model_stack_weights_state_dir=os.path.join(work, "state"),
                                     model_stack_weights_endpoint=endpoint))
    t0 = time.time()
    out = {"mode": "staged", "models": {}}
    try:
        start_fetches(jobs)
        done_at = {}
        while len(done_at) < len(jobs):
            st = _weights.status(jobs, started=t0, now=time.time())
            if st["failed"]:
                raise RuntimeError("fetch failed: %s" % "; ".join(st["lines"]))
            for n, m in st["models"].items():
                if m["done"] and n not in done_at:
                    done_at[n] = time.time()
                    out["models"].setdefault(n, {})["fetched_s"] = round(done_at[n] - t0, 1)
                    out["models"][n]["bytes"] = m["state"]["bytes"]
            if time.time() - t0 > timeout:
                raise RuntimeError("fetch timeout: %s" % "; ".join(st["lines"]))
            time.sleep(0.5)
        out["fetch_s"] = round(max(done_at.values()) - t0, 1)
        cleanup([], jobs)
        for s in specs:
            began = time.time()
            start_model(s, work)
            healthy = wait_healthy(s, timeout)
            out["models"][s["name"]].update(load_s=round(healthy - began, 1), healthy_at_s=round(healthy - t0, 1))
        out["serve_s"] = round(time.time() - t0, 1)
    finally:
        cleanup(specs, jobs)
    return out


def run_sequential(specs, work, endpoint, timeout):
    fresh(work)
    t0 = time.time()
    out = {"mode": "sequential", "models": {}}
    try:
        for s in specs:
            began = time.time()
            start_model(s, work, online_endpoint=endpoint)
            healthy = wait_healthy(s, timeout)
            out["models"][s["name"]] = {"start_to_healthy_s": round(healthy - began, 1), "healthy_at_s": round(healthy - t0, 1)}
        out["serve_s"] = round(time.time() - t0, 1)
    finally:
        cleanup(specs)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="300,600", help="MB of weights per model, comma-separated (one model each)")
    ap.add_argument("--rate", type=float, default=20, help="MB/s per download stream (the hub's per-connection pace)")
    ap.add_argument("--link-rate", type=float, default=0, help="MB/s of all streams together (0: no shared cap)")
    ap.add_argument("--runs", type=int, default=1, help="pairs (staged, sequential), interleaved")
    ap.add_argument("--modes", default="staged,sequential")
    ap.add_argument("--port", type=int, default=18520, help="the hub; models on the ports after it")
    ap.add_argument("--work", default="/tmp/w-bench")
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "weights", "runs.jsonl"))
    a = ap.parse_args(argv)
    sizes = [int(x) for x in a.sizes.split(",")]
    names = generate(os.path.join(a.work, "models"), sizes)
    repos = dict(("bench/" + n, hub.Repo("bench/" + n, os.path.join(a.work, "models", n), 0)) for n in names)
    server = hub.serve(repos, a.port, a.rate * MB, link_rate=a.link_rate * MB)
    endpoint = "http://127.0.0.1:%d" % a.port
    run_dir = os.path.join(a.work, "run")
    specs, settings = specs_for(names, run_dir, a.port + 1)
    sizes_b = dict((n, sum(v[2] for v in repos["bench/" + n].files.values())) for n in names)
    results = []
    try:
        cleanup(specs)
        for i in range(a.runs):
            for mode in a.modes.split(","):
                if mode == "staged":
                    r = run_staged(specs, settings, run_dir, endpoint, a.timeout)
                else:
                    r = run_sequential(specs, run_dir, endpoint, a.timeout)
                r.update(run=i + 1, date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), rate_mb_s=a.rate,
                         link_rate_mb_s=a.link_rate, repo_bytes=sizes_b)
                results.append(r)
                sys.stdout.write(json.dumps(r) + "\n")
                sys.stdout.flush()
                os.makedirs(os.path.dirname(a.out), exist_ok=True)
                with open(a.out, "a") as f:
                    f.write(json.dumps(r) + "\n")
    finally:
        server.shutdown()
        cleanup(specs)
        shutil.rmtree(os.path.join(run_dir, "config"), ignore_errors=True)
    for mode in a.modes.split(","):
        got = [r["serve_s"] for r in results if r["mode"] == mode]
        if got:
            sys.stdout.write("%s: time to serve median %.1f s over %d run(s): %s\n"
                             % (mode, statistics.median(got), len(got), got))
    return 0


if __name__ == "__main__":
    sys.exit(main())
