#!/usr/bin/env bash
# Download what run_on_gpu.sh builds from, into $1 (default .cache/kvc, git-ignored):
# the kvcached 0.1.5 and 0.1.6 sdists (pinned by sha256), the posix_ipc wheel for
# CPython 3.12 x86_64 and a setuptools wheel (>= 77, for kvcached's license field).
# `pip download` of the sdists needs torch to compute their metadata, so they come
# straight from PyPI's index (the same files pip would fetch).
set -eu
dest=${1:-.cache/kvc}
mkdir -p "$dest"
fetch_sdist() {
  local url=$1 sha=$2 file
  file="$dest/$(basename "$url")"
  [ -f "$file" ] || curl -fsSL -o "$file" "$url"
  echo "$sha  $file" | sha256sum -c -
}
fetch_sdist https://files.pythonhosted.org/packages/26/18/e557dc2727afa59911af4d3c1b1712fffbd22fc43f6de832bd7c60c1a042/kvcached-0.1.5.tar.gz \
  1c82029fff197b5fa8a16b1e3dde9584844a446d996cf1fcefbeb0474b443614
fetch_sdist https://files.pythonhosted.org/packages/fd/fc/9151b1487702469b66725d7f239d3efcb3b1753f9f67ac6a96297bd2e839/kvcached-0.1.6.tar.gz \
  4a1a428244b5e3667841e28f03a4a20be7066a21a856b2deaef727e18f845068
python3 -m pip download -q --no-deps --only-binary :all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d "$dest" posix_ipc==1.3.2
python3 -m pip download -q --no-deps --only-binary :all: --python-version 3.12 -d "$dest" setuptools==84.2.1
ls -la "$dest"
