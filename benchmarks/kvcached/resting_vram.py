#!/usr/bin/env python3
"""Resting VRAM of kvcached KV pools against static preallocation, on one GPU.

Driver mode (default) runs every configuration of the sweep in its own
subprocess (kvcached reads its KVCACHED_* variables at import time), collects
one JSON record per configuration and writes results.json and results.md.

Worker mode (--worker '<json>') measures one configuration:

* static:   torch.empty(capacity) on the GPU, the way a vLLM static slice
            holds its KV pool for the life of the server.
* kvcached: kvcached's standalone API (init_kvcached, alloc_kv_cache,
            KVCacheManager) with the pool shaped like the model's cache; a
            burst of request-sized allocations fills 80% of the pool, every
            request is freed in random order (optionally keeping some blocks
            allocated, the way a prefix cache keeps finished requests' blocks),
            the pool rests, then single requests arrive one at a time.

Memory is NVML's v2 "used" figure for the whole device (the figure the
collection's vram_check module reads), minus the figure taken once this
process's CUDA context exists, so the numbers are the KV pool's own.
Run on an otherwise idle GPU.
"""

import argparse
import datetime
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time

MIB = 1024 * 1024
GIB = 1024 * MIB

# KV geometry of the reference models' caches (bf16 = 2 bytes).
#  Qwen/Qwen2.5-14B-Instruct: config.json num_hidden_layers 48,
#    num_key_value_heads 8, hidden 5120 / 40 heads = head dim 128.
#  PaddlePaddle/PaddleOCR-VL (0.9B): text decoder is ERNIE-4.5-0.3B style,
#    transformers PaddleOCRTextConfig defaults: num_hidden_layers 18,
#    num_key_value_heads 2, head_dim 128.
MODELS = {
    "qwen2.5-14b": {"layers": 48, "kv_heads": 8, "head_dim": 128, "dtype_bytes": 2},
    "paddleocr-vl": {"layers": 18, "kv_heads": 2, "head_dim": 128, "dtype_bytes": 2},
}

BLOCK_TOKENS = 16  # vLLM's default KV block size


def nvml_used_bytes():
    """NVML v2 'used' of GPU 0 (falls back to v1 where v2 is missing)."""
    import pynvml

    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(int(os.environ.get("KVC_NVML_INDEX", "0")))
    try:
        info = pynvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2)
        return int(info.used), "v2"
    except (pynvml.NVMLError, TypeError, AttributeError):
        info = pynvml.nvmlDeviceGetMemoryInfo(handle)
        return int(info.used), "v1"


def used_mib(base):
    used, _ = nvml_used_bytes()
    return round((used - base) / MIB, 1)


def pctl(values, q):
    if not values:
        return None
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(q * (len(values) - 1)))))
    return values[k]


def geometry(model, capacity_gib):
    g = dict(MODELS[model])
    g["cell_bytes"] = g["kv_heads"] * g["head_dim"] * g["dtype_bytes"]  # one token, one layer, K or V
    g["block_bytes"] = g["cell_bytes"] * BLOCK_TOKENS
    per_block_all_layers = g["block_bytes"] * g["layers"] * 2
    g["num_blocks"] = int(capacity_gib * GIB) // per_block_all_layers
    g["capacity_bytes"] = g["num_blocks"] * per_block_all_layers
    return g


def worker(cfg):
    rec = {"config": cfg}
    base, nvml_version = nvml_used_bytes()
    rec["nvml_version"] = nvml_version
    import torch

    torch.cuda.set_device(0)
    torch.zeros(1, device="cuda")
    torch.cuda.synchronize()
    ctx, _ = nvml_used_bytes()
    rec["cuda_context_mib"] = round((ctx - base) / MIB, 1)
    g = geometry(cfg["model"], cfg["capacity_gib"])
    rec["geometry"] = g
    rec["static_mib"] = round(g["capacity_bytes"] / MIB, 1)

    if cfg["mode"] == "static":
        t0 = time.perf_counter()
        pool = torch.empty(g["capacity_bytes"], dtype=torch.uint8, device="cuda")
        torch.cuda.synchronize()
        rec["alloc_s"] = round(time.perf_counter() - t0, 4)
        time.sleep(1.0)
        rec["rest_mib"] = used_mib(ctx)
        del pool
        return rec

    import kvcached
    from kvcached.integration.vllm.interfaces import alloc_kv_cache, init_kvcached
    from kvcached.kv_cache_manager import KVCacheManager
    from kvcached.vmm_ops import kv_tensors_created

    rec["kvcached_version"] = getattr(kvcached, "__version__", None)
    try:
        from importlib.metadata import version

        rec["kvcached_version"] = rec["kvcached_version"] or version("kvcached")
    except Exception:  # noqa: BLE001 - version is informative only
        pass
    init_kvcached(tp_rank=0, world_size=1, is_worker=True, async_sched=False)
    alloc_kv_cache(
        kvcache_shape=(2, g["num_blocks"], BLOCK_TOKENS, g["kv_heads"], g["head_dim"]),
        block_size=BLOCK_TOKENS,
        dtype=torch.bfloat16,
        device="cuda:0",
        num_layers=g["layers"],
    )
    deadline = time.time() + 10
    while not kv_tensors_created():
        if time.time() > deadline:
            raise RuntimeError("kv tensors not created within 10 s")
        time.sleep(0.01)
    mgr = KVCacheManager(
        num_blocks=g["num_blocks"], block_size=BLOCK_TOKENS, cell_size=g["cell_bytes"],
        num_layers=g["layers"], world_size=1,
    )
    mgr._wait_post_init()  # noqa: SLF001 - waits for the background prealloc start
    time.sleep(0.5)
    pa = mgr.page_allocator
    rec["page_size_mib"] = mgr.page_size // MIB
    rec["page_id_physical_mib"] = mgr.page_size * g["layers"] * 2 // MIB
    rec["total_pages"] = pa.get_num_total_pages()
    rec["after_init_mib"] = used_mib(ctx)
    rec["after_init_reserved_pages"] = pa.get_num_reserved_pages()

    rng = random.Random(cfg.get("seed", 1))
    target = int(g["num_blocks"] * 0.8)
    requests, alloc_times = [], []
    allocated = 0
    t_burst = time.perf_counter()
    while allocated < target:
        tokens = rng.randint(256, 4096)
        n = min(-(-tokens // BLOCK_TOKENS), target - allocated)
        t0 = time.perf_counter()
        ids = mgr.alloc(n)
        alloc_times.append(time.perf_counter() - t0)
        if ids is None:
            rec["burst_alloc_refused_at_blocks"] = allocated
            break
        requests.append(ids)
        allocated += n
    rec["burst_alloc_total_s"] = round(time.perf_counter() - t_burst, 4)
    rec["burst_requests"] = len(requests)
    rec["burst_blocks"] = allocated
    rec["burst_alloc_p50_ms"] = round(pctl(alloc_times, 0.5) * 1e3, 3)
    rec["burst_alloc_p99_ms"] = round(pctl(alloc_times, 0.99) * 1e3, 3)
    rec["burst_alloc_max_ms"] = round(max(alloc_times) * 1e3, 3)
    time.sleep(0.2)
    rec["peak_mib"] = used_mib(ctx)

    retain_tokens = int(cfg.get("retain_tokens", 0))
    retain_blocks = -(-retain_tokens // BLOCK_TOKENS) if retain_tokens else 0
    kept = []
    if retain_blocks and cfg.get("retain_pattern") == "scattered":
        # Keep blocks spread over the burst, the way finished requests' cached
        # blocks stay behind in a prefix cache without page-aware eviction.
        flat = [b for r in requests for b in r]
        kept = rng.sample(flat, min(retain_blocks, len(flat)))
        kept_set = set(kept)
        requests = [[b for b in r if b not in kept_set] for r in requests]
    order = list(range(len(requests)))
    rng.shuffle(order)
    t_free = time.perf_counter()
    for i in order:
        if requests[i]:
            mgr.free(requests[i])
    rec["free_total_s"] = round(time.perf_counter() - t_free, 4)
    if retain_blocks and cfg.get("retain_pattern") == "packed":
        kept = mgr.alloc(retain_blocks) or []
    rec["retained_blocks"] = len(kept)

    time.sleep(1.0)
    rec["rest_after_1s_mib"] = used_mib(ctx)
    time.sleep(2.0)
    rec["rest_mib"] = used_mib(ctx)
    rec["rest_reserved_pages"] = pa.get_num_reserved_pages()
    rec["rest_inuse_pages"] = pa.get_num_inuse_pages()

    # Single requests arriving one at a time at rest (what a request's first
    # allocation pays): 2048 tokens each, with a pause between them.
    n_req = -(-2048 // BLOCK_TOKENS)
    single = []
    for _ in range(cfg.get("single_requests", 10)):
        t0 = time.perf_counter()
        ids = mgr.alloc(n_req)
        single.append(time.perf_counter() - t0)
        mgr.free(ids)
        time.sleep(0.1)
    rec["single_2048tok_alloc_p50_ms"] = round(pctl(single, 0.5) * 1e3, 3)
    rec["single_2048tok_alloc_max_ms"] = round(max(single) * 1e3, 3)
    time.sleep(0.5)
    rec["rest_after_singles_mib"] = used_mib(ctx)

    if kept:
        mgr.free(kept)
    mgr.trim()
    time.sleep(0.3)
    rec["after_trim_mib"] = used_mib(ctx)
    return rec


def sweep(models, quick=False):
    """Configurations: (label, env overrides, extra worker settings)."""
    zero = {"KVCACHED_MIN_RESERVED_PAGES": "0", "KVCACHED_MAX_RESERVED_PAGES": "0"}
    rows = [
        ("default (min 5 / max 10, 2 MB pages, prealloc on)", {}, {}),
        ("reserve 0/0", zero, {}),
        ("reserve 0/0, prealloc off", dict(zero, KVCACHED_PAGE_PREALLOC_ENABLED="false"), {}),
        ("reserve min 5 / max 0", {"KVCACHED_MIN_RESERVED_PAGES": "5", "KVCACHED_MAX_RESERVED_PAGES": "0"}, {}),
        ("reserve min 0 / max 10", {"KVCACHED_MIN_RESERVED_PAGES": "0", "KVCACHED_MAX_RESERVED_PAGES": "10"}, {}),
        ("reserve 1/1", {"KVCACHED_MIN_RESERVED_PAGES": "1", "KVCACHED_MAX_RESERVED_PAGES": "1"}, {}),
        ("reserve 0/0, 4 MB pages", dict(zero, KVCACHED_PAGE_SIZE_MB="4"), {}),
        ("reserve 0/0, per-layer layout", dict(zero, KVCACHED_CONTIGUOUS_LAYOUT="false"), {}),
        ("reserve 0/0, 1,024 tokens kept (packed)", zero, {"retain_tokens": 1024, "retain_pattern": "packed"}),
        ("reserve 0/0, 16,000 tokens kept (packed)", zero, {"retain_tokens": 16000, "retain_pattern": "packed"}),
        ("reserve 0/0, 16,000 tokens kept (scattered)", zero, {"retain_tokens": 16000, "retain_pattern": "scattered"}),
    ]
    if quick:
        rows = rows[:2]
    out = []
    for model, cap in models:
        out.append((model, cap, "static preallocation", "static", {}, {}))
        for label, env, extra in rows:
            out.append((model, cap, label, "kvcached", env, extra))
    return out


def run_worker(cfg, env_over, timeout):
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("KVCACHED_"):
            del env[k]
    env.update(env_over)
    env["KVCACHED_IPC_NAME"] = "kvcbench_%d_%d" % (os.getpid(), cfg["index"])
    env["PYTHONUNBUFFERED"] = "1"
    cmd = [sys.executable, "-X", "faulthandler", os.path.abspath(__file__), "--worker", json.dumps(cfg)]
    t0 = time.time()
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return {"config": cfg, "env": env_over, "error": "timeout after %ss" % timeout,
                "stderr_tail": (e.stderr or "")[-2000:] if isinstance(e.stderr, str) else ""}
    # The worker exits without kvcached's shutdown, which would unlink its segment.
    for name in os.listdir("/dev/shm") if os.path.isdir("/dev/shm") else []:
        if name.startswith(env["KVCACHED_IPC_NAME"]):
            os.unlink(os.path.join("/dev/shm", name))
    rec = None
    for line in p.stdout.splitlines():
        if line.startswith("KVC_RESULT "):
            rec = json.loads(line[len("KVC_RESULT "):])
    if rec is None:
        rec = {"config": cfg, "error": "exit %s" % p.returncode}
    rec["env"] = env_over
    rec["returncode"] = p.returncode
    rec["wall_s"] = round(time.time() - t0, 1)
    if p.returncode != 0 or rec.get("error"):
        rec["stderr_tail"] = p.stderr[-3000:]
    return rec


def host_facts():
    facts = {"date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "python": platform.python_version(), "command": " ".join([os.path.basename(sys.executable)] + sys.argv)}
    try:
        q = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                            "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
        facts["gpu"] = q.stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        facts["gpu"] = "nvidia-smi failed: %s" % e
    try:
        import torch

        facts["torch"] = torch.__version__
    except ImportError:
        facts["torch"] = None
    try:
        from importlib.metadata import version

        facts["kvcached"] = version("kvcached")
    except Exception:  # noqa: BLE001
        facts["kvcached"] = None
    return facts


def pct(a, b):
    return None if a is None or not b else round(100.0 * a / b, 2)


def markdown(facts, recs):
    lines = [
        "Date %s; GPU %s; torch %s; kvcached %s; Python %s." % (
            facts["date_utc"], facts["gpu"], facts["torch"], facts["kvcached"], facts["python"]),
        "Command: `%s`." % facts["command"],
        "",
        "| model | capacity | configuration | after init MiB | peak MiB | rest MiB | rest % of static | reserved pages at rest | "
        "burst alloc p50 / p99 / max ms | 2,048-token alloc at rest p50 / max ms | after trim MiB |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: |",
    ]
    static = {}
    for r in recs:
        c = r["config"]
        if c["mode"] == "static" and "rest_mib" in r:
            static[(c["model"], c["capacity_gib"])] = r["rest_mib"]
    for r in recs:
        c = r["config"]
        key = (c["model"], c["capacity_gib"])
        if r.get("error") or r.get("returncode"):
            lines.append("| %s | %s GiB | %s | failed: %s | | | | | | | |" % (
                c["model"], c["capacity_gib"], c["label"], r.get("error") or "exit %s" % r.get("returncode")))
            continue
        if c["mode"] == "static":
            lines.append("| %s | %s GiB | %s | | | %s | 100 | | alloc %s s | | |" % (
                c["model"], c["capacity_gib"], c["label"], r["rest_mib"], r.get("alloc_s")))
            continue
        lines.append("| %s | %s GiB | %s | %s | %s | %s | %s | %s | %s / %s / %s | %s / %s | %s |" % (
            c["model"], c["capacity_gib"], c["label"], r["after_init_mib"], r["peak_mib"], r["rest_mib"],
            pct(r["rest_mib"], static.get(key)), r["rest_reserved_pages"],
            r["burst_alloc_p50_ms"], r["burst_alloc_p99_ms"], r["burst_alloc_max_ms"],
            r["single_2048tok_alloc_p50_ms"], r["single_2048tok_alloc_max_ms"], r["after_trim_mib"]))
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=os.environ.get("OUT", "kvcached-results"), help="folder for results.json/.md")
    ap.add_argument("--qwen-gib", type=float, default=20.0, help="static KV capacity of the Qwen-shaped pool")
    ap.add_argument("--ocr-gib", type=float, default=4.0, help="static KV capacity of the PaddleOCR-VL-shaped pool")
    ap.add_argument("--quick", action="store_true", help="two configurations per model only")
    ap.add_argument("--timeout", type=int, default=90, help="seconds per configuration")
    ap.add_argument("--tag", default="", help="suffix of the result file names")
    args = ap.parse_args()

    if args.worker:
        cfg = json.loads(args.worker)
        rec = worker(cfg)
        print("KVC_RESULT " + json.dumps(rec), flush=True)
        os._exit(0)  # skip kvcached's shutdown path; the process exit frees the GPU

    facts = host_facts()
    os.makedirs(args.out, exist_ok=True)
    recs = []
    plan = sweep([("qwen2.5-14b", args.qwen_gib), ("paddleocr-vl", args.ocr_gib)], args.quick)
    for i, (model, cap, label, mode, env, extra) in enumerate(plan):
        cfg = dict(extra, index=i, model=model, capacity_gib=cap, label=label, mode=mode)
        rec = run_worker(cfg, env, args.timeout)
        recs.append(rec)
        print("%-13s %-50s rest=%s MiB reserved=%s err=%s" % (
            model, label, rec.get("rest_mib"), rec.get("rest_reserved_pages"), rec.get("error")), flush=True)
    suffix = ("-" + args.tag) if args.tag else ""
    with open(os.path.join(args.out, "results%s.json" % suffix), "w") as f:
        json.dump({"facts": facts, "records": recs}, f, indent=1)
    md = markdown(facts, recs)
    with open(os.path.join(args.out, "results%s.md" % suffix), "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
