#!/usr/bin/env bash
# Build every local image the tests and the lab need, in dependency order.
# Each build script caches by a hash of its recipe.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/base/build.sh"
for d in "$here"/*/; do
  name=$(basename "$d")
  [[ $name == base ]] && continue
  [[ -x $d/build.sh ]] && "$d/build.sh"
done
