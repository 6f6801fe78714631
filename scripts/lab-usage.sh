#!/usr/bin/env bash
# Once `make lab` has converged: say what the lab runs, send one real completion through
# the gateway (the end of `make lab`: it fails when the serving path does), print how to
# call it.
set -euo pipefail
cd "$(dirname "$0")/.."
vars=inventories/lab/group_vars/all/main.yml
port=$(awk '/^litellm_gateway_port:/ {print $2}' "$vars")
key=$(awk '/^litellm_gateway_master_key:/ {print $2}' "$vars")
lab=${MULTILLM_LAB_NAME:-multillm-lab}
prefix=multillm-model-

models=$(curl -fsS "http://127.0.0.1:$port/v1/models" -H "Authorization: Bearer $key" |
  python3 -c 'import json, sys; print("\n".join(m["id"] for m in json.load(sys.stdin)["data"]))')
[[ -n $models ]] || {
  echo "lab: the gateway lists no model" >&2
  exit 1
}

echo
echo "The lab runs REAL vLLM (CPU build) behind LiteLLM, with tiny random-weight models:"
echo "the answers are noise, the serving path is real."
for name in $models; do
  # What the model server itself says: its vLLM version, the model directory, the architecture.
  info=$(docker exec "$lab" docker exec "$prefix$name" python3 -c '
import json, sys, urllib.request
argv = open("/proc/1/cmdline", "rb").read().split(b"\0")
model = argv[argv.index(b"serve") + 1].decode()
arch = json.load(open(model + "/config.json"))["architectures"][0]
port = argv[argv.index(b"--port") + 1].decode()
version = json.load(urllib.request.urlopen("http://127.0.0.1:%s/version" % port))["version"]
print("vLLM %s, %s (%s)" % (version, model, arch))' 2>/dev/null) || info="(not inspectable)"
  printf '  - %-22s %s\n' "$name" "$info"
done

first=$(head -n 1 <<<"$models")
body=$(printf '{"model": "%s", "max_tokens": 12, "messages": [{"role": "user", "content": "hello"}]}' "$first")
start=$(date +%s.%N)
answer=$(curl -fsS "http://127.0.0.1:$port/v1/chat/completions" -H "Authorization: Bearer $key" \
  -H 'Content-Type: application/json' -d "$body") || {
  echo "lab: no completion from $first through the gateway" >&2
  exit 1
}
took=$(python3 -c "import sys; print('%.3f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$start" "$(date +%s.%N)")
python3 - "$answer" "$took" <<'PY'
import json, sys
a = json.loads(sys.argv[1])
u = a["usage"]
if not (u["prompt_tokens"] > 0 and u["completion_tokens"] > 0):
    sys.exit("lab: the completion reports no tokens: %s" % u)
print("\nA completion through the gateway (%s s): model %s, %d prompt + %d completion tokens:\n  %r"
      % (sys.argv[2], a["model"], u["prompt_tokens"], u["completion_tokens"], a["choices"][0]["message"]["content"]))
PY

cat <<MSG

The lab gateway answers on http://127.0.0.1:$port
  curl -s http://127.0.0.1:$port/v1/chat/completions \\
    -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \\
    -d '{"model": "$first", "messages": [{"role": "user", "content": "hello"}]}'

Remove the lab with: make lab-down
MSG
