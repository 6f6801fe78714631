#!/usr/bin/env bash
# Build kvcached 0.1.5 and 0.1.6 from their sdists on a GPU host (no network
# needed), probe where 0.1.6 crashes, and run the resting-VRAM sweep.
#
# Inputs (a folder, default .cache/kvc, holding what `fetch.sh` downloads):
#   kvcached-0.1.5.tar.gz kvcached-0.1.6.tar.gz posix_ipc-*.whl setuptools-*.whl
# Needs: python3 with torch (CUDA build) and nvidia-ml-py, the CUDA toolkit at
# /usr/local/cuda, an idle GPU 0. Writes into $OUT (default /tmp/kvc-out):
#   facts.txt  build.log  probe-<v>.txt  results-<v>.json  results-<v>.md
#
# Usage: benchmarks/kvcached/run_on_gpu.sh [--skip-016-sweep] [--quick]
set -u
here=$(cd "$(dirname "$0")" && pwd)
wheels=${KVC_WHEELS:-.cache/kvc}
OUT=${OUT:-/tmp/kvc-out}
mkdir -p "$OUT"
PY=${PY:-python3}
sweep016=1
quick=""
for a in "$@"; do
  case $a in
    --skip-016-sweep) sweep016=0 ;;
    --quick) quick=--quick ;;
    *) echo "unknown argument $a" >&2; exit 2 ;;
  esac
done

{
  date -u +%Y-%m-%dT%H:%M:%SZ
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv
  $PY -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)'
  gcc --version | head -1
  /usr/local/cuda/bin/nvcc --version | tail -2
  grep -h -E '#define PYBIND11_VERSION_(MAJOR|MINOR|PATCH)' \
    "$($PY -c 'import torch, os; print(os.path.dirname(torch.__file__))')/include/pybind11/detail/common.h"
  echo "python CFLAGS: $($PY -c 'import sysconfig; print(sysconfig.get_config_var("CFLAGS"))')"
  ls "$wheels"
} >"$OUT/facts.txt" 2>&1
cat "$OUT/facts.txt"

$PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/kvc-site \
  "$wheels"/setuptools-*.whl "$wheels"/posix_ipc-*.whl || exit 1
export PYTHONPATH=/tmp/kvc-site

# setuptools >= 7x takes CFLAGS from the environment *instead of* Python's own
# (which carry -DNDEBUG -O2): keep Python's flags and add -g for backtraces.
cflags="$($PY -c 'import sysconfig; print(sysconfig.get_config_var("CFLAGS") or "")') -g"
build() {
  local v=$1
  local t0=$SECONDS
  rm -rf "/tmp/kvc-$v"
  CUDA_HOME=/usr/local/cuda LIBRARY_PATH=/usr/local/cuda/lib64/stubs TORCH_CUDA_ARCH_LIST=9.0 \
    MAX_JOBS=8 CFLAGS="$cflags" \
    $PY -m pip install -v --no-index --no-deps --no-build-isolation --no-cache-dir \
    --target "/tmp/kvc-$v" "$wheels/kvcached-$v.tar.gz" >"/tmp/kvc-build-$v.log" 2>&1
  echo "build $v rc=$? in $((SECONDS - t0)) s" >>"/tmp/kvc-build-$v.log"
}
build 0.1.5 &
build 0.1.6 &
wait
for v in 0.1.5 0.1.6; do
  echo "===== build $v (last 60 lines)"
  tail -60 "/tmp/kvc-build-$v.log"
done >"$OUT/build.log"
grep -h '^build ' /tmp/kvc-build-*.log

probe() {
  local v=$1
  local f="$OUT/probe-$v.txt"
  [ -d "/tmp/kvc-$v/kvcached" ] || { echo "no build of $v" | tee "$f"; return; }
  {
    echo "### symbols the extension imports from torch (stable C shims)"
    nm -D -u /tmp/kvc-"$v"/kvcached/*.so 2>/dev/null | grep -E ' (torch_|aoti_)' | head -40
    echo "### steps"
    PYTHONPATH=/tmp/kvc-$v:/tmp/kvc-site timeout 600 $PY "$here/crash_probe.py"
  } >"$f" 2>&1
  grep -E '^[a-z_]+ +rc=' "$f"
  local failing
  failing=$(grep -m1 -E '^[a-z_]+ +rc=(-|[1-9]|timeout)' "$f" | awk '{print $1}')
  if [ -n "$failing" ] && command -v cuda-gdb >/dev/null; then
    echo "### cuda-gdb backtrace of step $failing (crashing thread first)" >>"$f"
    PYTHONPATH=/tmp/kvc-$v:/tmp/kvc-site KVCACHED_IPC_NAME=kvcprobe_gdb timeout 240 \
      cuda-gdb -q -batch -ex 'set pagination off' -ex 'set confirm off' \
      -ex 'handle SIGPIPE nostop noprint' -ex run -ex 'bt 40' -ex 'info symbol $pc' \
      -ex 'x/8i $pc' -ex 'info registers' -ex 'info sharedlibrary' \
      --args $PY -X faulthandler "$here/crash_probe.py" "$failing" >>"$f" 2>&1
    rm -f /dev/shm/kvcprobe_*
    grep -n -E 'SIGSEGV|SIGABRT|^#[0-9]+ |in section|stdc\+\+' "$f" | head -60
  fi
  # Is std::cout << integer broken in this process at all?  A 3-line library,
  # called through ctypes, with and without torch and the extension loaded.
  {
    echo "### cout probe"
    printf '#include <iostream>\n#include <cstdint>\nextern "C" void coutp(){ int64_t v = 48; std::cout << "cout probe: n=" << v << std::endl; }\n' >/tmp/coutp.cpp
    g++ -shared -fPIC -O2 -o /tmp/libcoutp.so /tmp/coutp.cpp
    for pre in "" "import torch" "import torch; from kvcached import vmm_ops"; do
      PYTHONPATH=/tmp/kvc-$v:/tmp/kvc-site $PY -X faulthandler -c "$pre
import ctypes; ctypes.CDLL('/tmp/libcoutp.so').coutp()" 2>&1 | tail -3
      echo "  [$pre] rc=${PIPESTATUS[0]}"
    done
    echo "### libstdc++ / libgcc_s mapped after import torch + extension"
    PYTHONPATH=/tmp/kvc-$v:/tmp/kvc-site $PY -c "import torch; from kvcached import vmm_ops
print('\n'.join(sorted({l.split()[-1] for l in open('/proc/self/maps') if 'stdc++' in l or 'libgcc_s' in l})))"
    echo "### ctor step with the system libstdc++ preloaded"
    PYTHONPATH=/tmp/kvc-$v:/tmp/kvc-site LD_PRELOAD=/lib/x86_64-linux-gnu/libstdc++.so.6 \
      KVCACHED_IPC_NAME=kvcprobe_pre timeout 120 $PY -X faulthandler "$here/crash_probe.py" ctor 2>&1 | tail -5
    echo "  rc=${PIPESTATUS[0]}"
    rm -f /dev/shm/kvcprobe_*
  } >>"$f" 2>&1
  sed -n '/### cout probe/,$p' "$f"
}
probe 0.1.6
probe 0.1.5

PYTHONPATH=/tmp/kvc-0.1.5:/tmp/kvc-site $PY "$here/resting_vram.py" --out "$OUT" --tag 0.1.5 $quick
if [ "$sweep016" = 1 ] && grep -q -E '^mgr +rc=0' "$OUT/probe-0.1.6.txt"; then
  PYTHONPATH=/tmp/kvc-0.1.6:/tmp/kvc-site $PY "$here/resting_vram.py" --out "$OUT" --tag 0.1.6 --quick
fi
