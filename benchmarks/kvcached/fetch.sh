#!/usr/bin/env bash
# Download what run_on_gpu.sh builds from, into $1 (default .cache/kvc, git-ignored):
# the kvcached 0.1.5 and 0.1.6 sdists (pinned by sha256), the posix_ipc wheel for
# CPython 3.12 x86_64 and a setuptools wheel (>= 77, for kvcached's license field).
# `pip download` of the sdists needs a CUDA build of torch to compute their metadata, so
# fetch_sdist.py reads them from the index pip is configured to use (no address here).
set -eu
case ${1:-} in
  -*) echo "usage: $0 [DIR]   (downloads into DIR, default .cache/kvc; no options)" >&2; exit 2 ;;
esac
dest=${1:-.cache/kvc}
here=$(cd "$(dirname "$0")" && pwd)
python3 "$here/fetch_sdist.py" "$dest" kvcached-0.1.5.tar.gz \
  1c82029fff197b5fa8a16b1e3dde9584844a446d996cf1fcefbeb0474b443614
python3 "$here/fetch_sdist.py" "$dest" kvcached-0.1.6.tar.gz \
  4a1a428244b5e3667841e28f03a4a20be7066a21a856b2deaef727e18f845068
python3 -m pip download -q --no-deps --only-binary :all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d "$dest" posix_ipc==1.3.2
python3 -m pip download -q --no-deps --only-binary :all: --python-version 3.12 -d "$dest" setuptools==84.2.1
ls -la "$dest"
