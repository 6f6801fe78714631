#!/usr/bin/env bash
# Steps on the GPU test machine (run from the repository root; see README.md).
#
#   device.sh receive   copy the carry folders that came with this call (.cache/gpu_vllm/carry/c*)
#                       to $GV (default /root/gv), which outlives the call while the machine stays warm
#   device.sh prepare   install the dependency wheels and ansible-core into $GV/site, start the
#                       kvcached build in the background (python3's own site-packages: its
#                       autopatch is a .pth file, which a PYTHONPATH folder does not process)
#                       (KVCACHED=0 for prepare and install: no kvcached, static strategy only)
#   device.sh install   reassemble vLLM's archive (sha256 checked), unpack it into $GV/site,
#                       write the `vllm` command, wait for kvcached, check the imports and tokenizers
#   device.sh bench ... benchmarks/gpu_vllm/bench.py with $GV/site on PYTHONPATH
#   device.sh facts     card, driver, versions
set -u
GV=${GV:-/root/gv}
here=$(cd "$(dirname "$0")" && pwd)
PY=${PY:-python3}
mkdir -p "$GV/parts"

facts() {
  date -u +%Y-%m-%dT%H:%M:%SZ
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv
  $PY -c 'import sys, torch; print("python", sys.version.split()[0], sys.executable, "torch", torch.__version__, "cuda", torch.version.cuda)'
  nproc; free -g | head -2
}

case ${1:-} in
  receive)
    for c in .cache/gpu_vllm/carry/c*; do
      [ -d "$c" ] || continue
      cp -r "$c"/. "$GV/parts/"
      echo "received $c: $(du -sm "$c" | cut -f1) MiB"
    done
    ls "$GV/parts"
    ;;
  prepare)
    facts
    small=$GV/parts/small
    t0=$SECONDS
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$GV/site" \
      "$small"/wheels/*.whl "$small"/*.whl || exit 1
    echo "dependency wheels installed in $((SECONDS - t0)) s: $(ls "$small"/wheels | wc -l) + $(ls "$small"/*.whl | wc -l)"
    cp -r "$small/models" "$GV/models"
    # kvcached 0.1.6 from its sdist, for Hopper, with the machine's setuptools and torch
    # (KVCACHED=0: not built, for runs of the static strategy only).
    [ "${KVCACHED:-1}" = 0 ] && { echo "kvcached not built (KVCACHED=0)"; exit 0; }
    setsid nohup env CUDA_HOME=/usr/local/cuda TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=8 \
      $PY -m pip install -v --no-index --no-deps --no-build-isolation --no-cache-dir \
      "$small"/kvcached-*.tar.gz >"$GV/kvcached-build.log" 2>&1 </dev/null &
    echo "kvcached build started (pid $!)"
    ;;
  install)
    cd "$GV/parts" || exit 1
    t0=$SECONDS
    if [ ! -d "$GV/site/vllm" ]; then
      cat vllm.tar.xz.[0-9][0-9] >"$GV/vllm.tar.xz" && (cd "$GV" && sha256sum -c "$GV/parts/small/vllm.tar.xz.sha256") || exit 1
      mkdir -p "$GV/site" && tar -xJf "$GV/vllm.tar.xz" -C "$GV/site" || exit 1
      rm -f "$GV/vllm.tar.xz"
      echo "vLLM unpacked in $((SECONDS - t0)) s"
    fi
    # Wheels carried later (gather.py's list grew after a run): every carry folder's *.whl.
    for w in "$GV"/parts/*.whl; do
      [ -f "$w" ] && $PY -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$GV/site" "$w"
    done
    mkdir -p "$GV/bin"
    # The guard matters: vLLM's engine core is a spawned process, which imports this file again.
    printf '#!%s\nimport sys\nfrom vllm.entrypoints.cli.main import main\nif __name__ == "__main__":\n    sys.exit(main())\n' \
      "$(command -v $PY)" >"$GV/bin/vllm"
    chmod +x "$GV/bin/vllm"
    if [ "${KVCACHED:-1}" != 0 ]; then
      for _ in $(seq 1 120); do grep -q -E '^Successfully installed|^ERROR|error:' "$GV/kvcached-build.log" && break; sleep 2; done
      tail -3 "$GV/kvcached-build.log"
    fi
    export PYTHONPATH=$GV/site
    # QUICK=1 skips the import and tokenizer checks (20 s) when a bench follows in the same call.
    [ -n "${QUICK:-}" ] && exit 0
    LD_PRELOAD=/lib/x86_64-linux-gnu/libstdc++.so.6 $PY - <<'EOF' || exit 1
import importlib.metadata as md, os, time
t = time.time()
import vllm.entrypoints.openai.api_server  # noqa: F401  every import the server needs
print("vllm", md.version("vllm"), "api_server imports in %.1f s" % (time.time() - t))
if os.environ.get("KVCACHED", "1") != "0":
    import kvcached, kvcached.vmm_ops  # noqa: F401
    print("kvcached", md.version("kvcached"), kvcached.__file__)
from transformers import AutoTokenizer
import os
for m in sorted(os.listdir(os.path.expanduser(os.environ.get("GV", "/root/gv") + "/models"))):
    tok = AutoTokenizer.from_pretrained(os.environ.get("GV", "/root/gv") + "/models/" + m)
    print(m, type(tok).__name__, len(tok), tok.decode(tok("hello world").input_ids))
EOF
    PATH=$GV/bin:$PATH vllm --version
    ;;
  bench)
    shift
    export PYTHONPATH=$GV/site
    exec $PY "$here/bench.py" "$@"
    ;;
  facts)
    facts
    ;;
  *)
    sed -n '2,13p' "$0"
    exit 2
    ;;
esac
