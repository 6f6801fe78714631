#!/usr/bin/env bash
# Print how to call the lab gateway once `make lab` has converged.
set -euo pipefail
cd "$(dirname "$0")/.."
vars=inventories/lab/group_vars/all/main.yml
port=$(awk '/^litellm_gateway_port:/ {print $2}' "$vars")
key=$(awk '/^litellm_gateway_master_key:/ {print $2}' "$vars")
models=$(curl -fsS "http://127.0.0.1:$port/v1/models" -H "Authorization: Bearer $key" |
  python3 -c 'import json, sys; print("\n".join("  - " + m["id"] for m in json.load(sys.stdin)["data"]))')
cat <<MSG

The lab gateway answers on http://127.0.0.1:$port (models are STAND-IN servers, not LLMs).
Models:
$models

  curl -s http://127.0.0.1:$port/v1/chat/completions \\
    -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \\
    -d '{"model": "qwen2.5-14b-instruct", "messages": [{"role": "user", "content": "hello"}]}'

Remove the lab with: make lab-down
MSG
