#!/usr/bin/env bash
# Show why a kvcached 0.1.6 extension built from the sdist crashes in the
# PageAllocator constructor, then run the short resting-VRAM sweep with the
# workaround (the system libstdc++ preloaded). Same inputs as run_on_gpu.sh.
# Writes $OUT/link-0.1.6.txt and $OUT/results-0.1.6-preload.{json,md}.
set -u
here=$(cd "$(dirname "$0")" && pwd)
wheels=${KVC_WHEELS:-.cache/kvc}
OUT=${OUT:-/tmp/kvc-out}
mkdir -p "$OUT"
PY=${PY:-python3}
f="$OUT/link-0.1.6.txt"

$PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/kvc-site \
  "$wheels"/setuptools-*.whl "$wheels"/posix_ipc-*.whl || exit 1
export PYTHONPATH=/tmp/kvc-site
rm -rf /tmp/kvc-0.1.6
CUDA_HOME=/usr/local/cuda LIBRARY_PATH=/usr/local/cuda/lib64/stubs TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=8 \
  $PY -m pip install -v --no-index --no-deps --no-build-isolation --no-cache-dir \
  --target /tmp/kvc-0.1.6 "$wheels/kvcached-0.1.6.tar.gz" >/tmp/kvc-build-0.1.6.log 2>&1
echo "build rc=$?"
so=$(ls /tmp/kvc-0.1.6/kvcached/_C*.so)
{
  echo "### Python link settings"
  $PY -c 'import sysconfig as s; [print(k, "=", s.get_config_var(k)) for k in ("LDSHARED", "LDCXXSHARED", "CXX", "LDFLAGS")]'
  echo "### link command(s) from the build log"
  grep -E -- '-shared' /tmp/kvc-build-0.1.6.log | sed 's/ -I[^ ]*//g' | cut -c1-3000
  echo "### NEEDED"
  readelf -d "$so" | grep NEEDED
  echo "### libstdc++ definitions inside the extension (count, then samples)"
  nm -C --defined-only "$so" | grep -c -E 'std::(codecvt|locale|basic_ostream|num_put|ios_base)'
  nm -C --defined-only "$so" | grep -E 'std::(codecvt<char16_t|basic_ostream<char, std::char_traits<char> >::_M_insert<long>|locale::locale\(\)|ios_base::Init)' | head -12
  echo "### exported (dynamic) ones"
  nm -C -D --defined-only "$so" | grep -c -E 'std::'
  nm -C -D --defined-only "$so" | grep -E '_M_insert<long>|codecvt<char16_t' | head -5
  echo "### same inside the system libstdc++ (reference)"
  g++ -print-file-name=libstdc++.a
  g++ -print-file-name=libstdc++.so
} >"$f" 2>&1
cat "$f"

PYTHONPATH=/tmp/kvc-0.1.6:/tmp/kvc-site LD_PRELOAD=/lib/x86_64-linux-gnu/libstdc++.so.6 \
  $PY "$here/resting_vram.py" --out "$OUT" --tag 0.1.6-preload --quick
