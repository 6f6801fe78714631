#!/usr/bin/env bash
# Build the FAULT INJECTOR model server image (images/fault-injector/fault_injector.py)
# from the local base image. The tag carries a hash of this recipe and of the base image id, so the
# image is rebuilt only when one of them changes; `multillm-fault-injector:latest` always
# names the current one.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
name=${MULTILLM_FAULT_INJECTOR_IMAGE:-multillm-fault-injector}
base=multillm-base:bookworm
base_id=$(docker image inspect --format '{{.Id}}' "$base") || {
  echo "fault-injector image: $base is missing; run images/base/build.sh first" >&2
  exit 1
}
recipe_hash=$( (cat "$here/build.sh" "$here/Dockerfile" "$here/fault_injector.py" "$here/kvctl" "$here/vllm"; echo "$base_id") | sha256sum | cut -c1-12)
tag="$name:$recipe_hash"

if docker image inspect "$tag" >/dev/null 2>&1; then
  docker tag "$tag" "$name:latest"
  echo "fault-injector image: $tag (cached)"
  exit 0
fi

# The classic builder resolves FROM against local images only (no registry here).
log=$(DOCKER_BUILDKIT=0 docker build --tag "$tag" "$here" 2>&1) || {
  echo "$log" | tail -n 30 >&2
  exit 1
}
docker tag "$tag" "$name:latest"
echo "fault-injector image: $tag (built)"
