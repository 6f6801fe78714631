#!/usr/bin/env bash
# Check the model-server image by serving each of its models with the argv the role
# renders for model_stack_device: cpu (`vllm serve MODEL --host --port --served-model-name`,
# plus vLLM's PaddleOCR-VL recipe flags for that model, less --trust-remote-code), then ask what a client asks:
# /health, /v1/models, a chat completion with usage figures, a streamed one, and for the
# OCR slot a completion with an image. Heavy (one vLLM start per model): run it under the
# shared lock.
#   images/vllm/check.sh [IMAGE] [FIRST_PORT]
set -euo pipefail
image=${1:-multillm-vllm-cpu:latest}
port=${2:-18010}
prefix=${MULTILLM_CHECK_PREFIX:-b-vllm-check-}
here=$(cd "$(dirname "$0")" && pwd)

check_one() {
  local name=$1 model=$2 port=$3
  shift 3
  local c=$prefix$name
  docker rm -f "$c" >/dev/null 2>&1 || true
  # The shm size the role gives a container with a private IPC namespace (model_stack_shm_size).
  docker run -d --name "$c" --shm-size 8g -p "127.0.0.1:$port:$port" -e VLLM_CPU_KVCACHE_SPACE=1 "$image" \
    vllm serve "$model" --host 0.0.0.0 --port "$port" --served-model-name "$name" --max-model-len 1024 "$@" >/dev/null
  local start=$SECONDS
  until curl -fsS -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null; do
    if [[ $(docker inspect -f '{{.State.Running}}' "$c") != true ]] || ((SECONDS - start > 600)); then
      docker logs --tail 30 "$c" >&2
      docker rm -f "$c" >/dev/null
      echo "check: $name ($model) never turned healthy" >&2
      return 1
    fi
    sleep 1
  done
  echo "check: $name healthy after $((SECONDS - start)) s"
  python3 "$here/check_client.py" "http://127.0.0.1:$port" "$name" || {
    docker rm -f "$c" >/dev/null
    return 1
  }
  docker rm -f "$c" >/dev/null
}

check_one qwen2-tiny /models/qwen2-tiny "$port"
# vLLM's PaddleOCR-VL recipe less --trust-remote-code: this model is in transformers' own
# format (no remote code), and with that flag vLLM reads the Hub repository's processor
# attributes (max_pixels), which transformers' processor does not have.
check_one paddleocr-vl /models/paddleocr-vl-tiny "$((port + 1))" \
  --max-num-batched-tokens 16384 --no-enable-prefix-caching --mm-processor-cache-gb 0
echo "check: $image serves both models"
