#!/usr/bin/env python3
"""Narrow down where a kvcached build crashes, one step per subprocess.

python3 crash_probe.py            runs every step in order, each in a fresh
                                  interpreter with faulthandler on, and prints
                                  one line per step (exit status, last output)
python3 crash_probe.py STEP       runs one step in this process

Steps, each adding one thing to the one before:
  import      import kvcached._C (or vmm_ops), print the stable-ABI target
  ctor        construct InternalPage and PageAllocator directly (no CUDA)
  tensors     init_kvcached + alloc_kv_cache (virtual KV tensors, zero page)
  map         map and unmap one page through torch.ops.kvcached, write to it
  mgr_noprea  KVCacheManager with KVCACHED_PAGE_PREALLOC_ENABLED=false: alloc, free
  mgr         KVCacheManager with defaults (prealloc thread on): alloc, free, trim
"""

import json
import os
import subprocess
import sys
import time

STEPS = ["import", "ctor", "tensors", "map", "mgr_noprea", "mgr"]
LAYERS, BLOCKS, BLOCK, HEADS, HDIM = 4, 4096, 16, 8, 64


def say(*a):
    print(*a, flush=True)


def step(name):
    import torch

    idx = STEPS.index(name)
    try:
        from kvcached import _C as ext  # 0.1.6
    except ImportError:
        from kvcached import vmm_ops as ext  # 0.1.5
    say("module", ext.__file__, "target", hex(getattr(ext, "TORCH_TARGET_VERSION", 0)), "torch", torch.__version__)
    if idx >= 1:
        try:
            from kvcached.vmm_ops import InternalPage, PageAllocator
        except ImportError:  # 0.1.5: PageAllocator is Python (kvcached.page_allocator)
            from kvcached.page_allocator import Page as InternalPage, PageAllocator

        p = InternalPage(0, 2 << 20)
        say("InternalPage ok", p.page_id)
        try:
            a = PageAllocator(LAYERS, 8 << 20, 2 << 20, ipc_name="kvcprobe_ctor")
        except TypeError:
            a = PageAllocator(LAYERS, 8 << 20, 2 << 20)
        say("PageAllocator ok", a.get_num_total_pages())
        del a
    if idx >= 2:
        from kvcached.integration.vllm.interfaces import alloc_kv_cache, init_kvcached
        from kvcached.vmm_ops import kv_tensors_created

        torch.cuda.set_device(0)
        init_kvcached(tp_rank=0, world_size=1, is_worker=True, async_sched=False)
        say("init_kvcached ok")
        kv = alloc_kv_cache(kvcache_shape=(2, BLOCKS, BLOCK, HEADS, HDIM), block_size=BLOCK,
                            dtype=torch.float16, device="cuda:0", num_layers=LAYERS)
        while not kv_tensors_created():
            time.sleep(0.01)
        say("alloc_kv_cache ok", len(kv), tuple(kv[0].shape))
    if idx >= 3 and name == "map":
        from kvcached.vmm_ops import map_to_kv_tensors, unmap_from_kv_tensors

        say("map", map_to_kv_tensors([0]))
        kv[0][:, 0].fill_(1.0)
        torch.cuda.synchronize()
        say("write ok, sum", float(kv[0][:, 0].float().sum()))
        say("unmap", unmap_from_kv_tensors([0]))
    if name in ("mgr_noprea", "mgr"):
        from kvcached.kv_cache_manager import KVCacheManager

        m = KVCacheManager(num_blocks=BLOCKS, block_size=BLOCK, cell_size=HEADS * HDIM * 2,
                           num_layers=LAYERS, world_size=1)
        say("KVCacheManager ok")
        h = m.alloc(300)
        say("alloc ok", len(h), "mapped GB", m.get_mapped_memory_size("gb"))
        m.free(h)
        say("free ok")
        m.trim()
        say("trim ok")
    say("STEP_DONE", name)


def main():
    if len(sys.argv) > 1:
        step(sys.argv[1])
        os._exit(0)
    results = []
    for name in STEPS:
        env = dict(os.environ, PYTHONUNBUFFERED="1", KVCACHED_IPC_NAME="kvcprobe_" + name)
        if name == "mgr_noprea":
            env["KVCACHED_PAGE_PREALLOC_ENABLED"] = "false"
        try:
            p = subprocess.run([sys.executable, "-X", "faulthandler", __file__, name], env=env,
                               capture_output=True, text=True, timeout=120)
            rc, out, err = p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired as e:
            rc, out, err = "timeout", str(e.stdout or ""), str(e.stderr or "")
        for f in os.listdir("/dev/shm"):
            if f.startswith("kvcprobe_"):
                os.unlink(os.path.join("/dev/shm", f))
        results.append({"step": name, "rc": rc, "stdout": out[-3000:], "stderr": err[-6000:]})
        say("%-11s rc=%s last=%r" % (name, rc, (out.strip().splitlines() or [""])[-1][:150]))
        if rc != 0:
            say("---- stderr of %s ----\n%s" % (name, err[-4000:]))
    print("PROBE_JSON " + json.dumps(results))


if __name__ == "__main__":
    main()
