#!/usr/bin/env bash
# A GPU-less run of bench.py's code paths, here, before any call to the GPU machine: the fake NVML
# library of the unit tests (tests/fakes/nvml, built with gcc), an nvidia-smi and a `vllm` that
# serve /health and /metrics and print vLLM's KV and compile lines, and a cgroup root in a plain
# folder (the process does not really move; vram_check then names no container, as it says).
#
#   benchmarks/gpu_vllm/dryrun.sh                     seq cold, seq warm, concurrent, placement
#   benchmarks/gpu_vllm/dryrun.sh seq TAG [ARGS...]   one phase with bench.py's ARGS
#
# Ports are the inventory's + 10000; everything lives under $DRY (default /tmp/gvdry).
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
D=${DRY:-/tmp/gvdry}
PYBIN=${PYBIN:-$root/.venv/bin/python}

setup() {
  rm -rf "$D"
  mkdir -p "$D/lib" "$D/bin" "$D/cg"
  touch "$D/cg/cgroup.controllers"
  gcc -shared -fPIC -O1 -o "$D/lib/libnvidia-ml.so.1" "$root/tests/fakes/nvml/fake_nvml.c"
  printf 'driver 580.159.04\ndevice 150754820096 GPU-11111111-2222-3333-4444-555555555555 NVIDIA H200\nmem 0 1048576000 644874240\n' >"$D/state"
  printf '#!/bin/sh\necho "0, GPU-11111111-2222-3333-4444-555555555555, 1000"\n' >"$D/bin/nvidia-smi"
  cat >"$D/bin/vllm" <<'PY'
#!/usr/bin/env python3
import http.server, json, os, sys, time
argv = sys.argv[1:]
port = int(argv[argv.index("--port") + 1])
print("fake vllm", argv, " ".join("%s=%s" % (k, os.environ.get(k)) for k in (
    "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "VLLM_CACHE_ROOT", "HOME", "TMPDIR")), flush=True)
with open(os.environ["FAKE_NVML_STATE"], "a") as f:
    f.write("proc 0 %d %d\n" % (os.getpid(), 20 * 2 ** 30))
key = os.path.join(os.environ["VLLM_CACHE_ROOT"], "torch_compile_cache", "k%d" % port, "rank_0_0", "backbone")
warm = os.path.isdir(key)
os.makedirs(key, exist_ok=True)
with open(os.path.join(key, "cache_key_factors.json"), "w") as f:
    json.dump({"code_hash": "c", "compiler_hash": "x", "config_hash": str(port), "env": {"A": 1}}, f)
for d in (os.path.join(os.environ["HOME"], ".triton", "cache"), os.environ["TMPDIR"]):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "blob"), "wb") as f:
        f.write(b"x" * 300000)
time.sleep(1 if warm else 3)
print("Available KV cache memory: 10.25 GiB\nGPU KV cache size: 55,952 tokens\n"
      "Maximum concurrency for 32,768 tokens per request: 1.71x", flush=True)
print("Directly load the compiled graph(s) for dynamic shape from the cache, took 2.5 s" if warm
      else "torch.compile takes 27.6 s in total", flush=True)


class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok" if self.path == "/health" else b'vllm:cache_config_info{block_size="16",num_gpu_blocks="3497"} 1.0\n'
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
PY
  chmod +x "$D/bin/nvidia-smi" "$D/bin/vllm"
}

phase() {
  local ph=$1 tag=$2
  shift 2
  env LD_LIBRARY_PATH="$D/lib" FAKE_NVML_STATE="$D/state" PATH="$D/bin:$PATH" GV_CGROUP_ROOT="$D/cg" \
    "$PYBIN" "$root/benchmarks/gpu_vllm/bench.py" "$ph" --tag "$tag" --out "$D/out" --logs "$D/logs" \
    --models "$D/models" --cache-root "$D/cache" --gate-root "$D/gate" --bin "$D/bin" --scratch "$D/s" \
    --port-offset 10000 "$@"
}

if [ $# -gt 0 ]; then
  [ -x "$D/bin/vllm" ] || setup
  phase "$@"
  exit
fi
setup
phase seq dry-cold --strategy static --fresh-cache --requests 0 --expect-gpu 65.37 --expect-model qwen2.5-14b-instruct=41.08
phase seq dry-warm --strategy static --requests 0
phase concurrent dry-concurrent --strategy static
phase placement dry-placement
"$PYBIN" - "$D/out" <<'PY'
import json, os, sys
for tag in ("dry-cold", "dry-warm", "dry-concurrent", "dry-placement"):
    r = json.load(open(os.path.join(sys.argv[1], tag + ".json")))
    print(tag, "boots", {k: v.get("start_to_healthy_s") for k, v in (r.get("boots") or {}).items()} or r.get("start_to_healthy_s"),
          "keys", {k: v["keys"] for k, v in r["cache_after"].items()}, "env", r["bare_env"]["paddleocr-vl"].get("CUDA_VISIBLE_DEVICES"))
PY
