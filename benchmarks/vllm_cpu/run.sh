#!/usr/bin/env bash
# Real vLLM (CPU build) in the lab (issue 14, item 6). Needs a converged `make lab`; runs
# everything inside the lab host, with the lab's own image, models and gateway:
#   1. start to healthy of each model ALONE: `docker run` of the role's argv (same image,
#      shm, KV space), the lab's model units stopped; RUNS times each;
#   2. the gated boot: every model unit stopped, then systemd starts the chain; total =
#      unit start to the last model healthy; ratio = total / sum of the single starts' means;
#   3. resident memory of each model server (every process of its container, from ps);
#   4. gateway overhead with `vllm bench serve` (ships with vLLM; run from the image): the
#      first model directly on its port and through the gateway, alternating, one connection.
#      Its openai-chat client always streams (its --no-stream is about loading the data set):
#      time to first token, and the end-to-end latency of the whole completion (e2el).
# Heavy: run it under the shared lock. Raw output: benchmarks/results/vllm_cpu/<UTC time>/.
#   benchmarks/vllm_cpu/run.sh [RUNS] [PROMPTS] [STEPS]   (defaults 2, 40, "single boot rss bench")
# STEPS picks the steps, e.g. "rss bench" for memory and the gateway overhead alone. Each bench
# pair (direct, then through the gateway) runs back to back with the same settings, so both
# paths see the same machine load; the summary gives the difference per pair and its median.
set -euo pipefail
runs=${1:-2}
prompts=${2:-40}
steps=" ${3:-single boot rss bench} "
step() { [[ $steps == *" $1 "* ]]; }
root=$(cd "$(dirname "$0")/../.." && pwd)
lab=${MULTILLM_LAB_NAME:-multillm-lab}
image=multillm-vllm-cpu:latest
prefix=multillm-model-
vars=$root/inventories/lab/group_vars/all/main.yml
gw_port=$(awk '/^litellm_gateway_port:/ {print $2}' "$vars")
key=$(awk '/^litellm_gateway_master_key:/ {print $2}' "$vars")
out=$root/benchmarks/results/vllm_cpu/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
lx() { docker exec "$lab" "$@"; }

# The models as the role runs them: name, port, argv (read from the lab's own containers).
mapfile -t names < <(lx docker ps -a --format '{{.Names}}' | sed -n "s/^$prefix//p" | sort)
((${#names[@]})) || {
  echo "vllm_cpu: no model container in $lab; run make lab first" >&2
  exit 1
}
# Boot order = unit chain order: a unit that wants no other model unit comes first.
order=()
for n in "${names[@]}"; do
  prev=$(lx systemctl show -p Wants --value "$prefix$n.service" | tr ' ' '\n' | sed -n "s/^$prefix\(.*\)\.service$/\1/p")
  order+=("${prev:-_}:$n")
done
sorted=()
want=_
for _ in "${order[@]}"; do
  for pair in "${order[@]}"; do
    [[ ${pair%%:*} == "$want" ]] && { sorted+=("${pair#*:}"); want=${pair#*:}; break; }
  done
done
echo "vllm_cpu: models in boot order: ${sorted[*]}" >&2

stop_all() {
  for ((i = ${#sorted[@]} - 1; i >= 0; i--)); do lx systemctl stop "$prefix${sorted[i]}.service"; done
}
wait_healthy() { # URL START -> seconds from START (epoch) until /health answered 200
  local deadline=$((SECONDS + 600))
  until lx curl -fsS -o /dev/null "$1" 2>/dev/null; do
    ((SECONDS < deadline)) || { echo "vllm_cpu: $1 not healthy after 600 s" >&2; exit 1; }
    sleep 0.2
  done
  python3 -c "import time, sys; print('%.1f' % (time.time() - float(sys.argv[1])))" "$2"
}

# 1. Single starts.
declare -A single_sum
step single && stop_all
step single && for n in "${sorted[@]}"; do
  args=$(lx docker inspect -f '{{json .Config.Cmd}}' "$prefix$n")
  port=$(python3 -c 'import json, sys; a = json.loads(sys.argv[1]); print(a[a.index("--port") + 1])' "$args")
  total=0
  for r in $(seq 1 "$runs"); do
    lx docker rm -f bench-single >/dev/null 2>&1 || true
    start=$(date +%s.%N)
    # shellcheck disable=SC2046
    lx docker run -d --name bench-single --network host --shm-size 8g -e VLLM_CPU_KVCACHE_SPACE=1 "$image" \
      $(python3 -c 'import json, sys; print(" ".join(json.loads(sys.argv[1])))' "$args") >/dev/null
    t=$(wait_healthy "http://127.0.0.1:$port/health" "$start")
    lx docker rm -f bench-single >/dev/null
    echo "single $n run $r: $t s" | tee -a "$out/singles.txt" >&2
    total=$(python3 -c "print(${total} + ${t})")
  done
  single_sum[$n]=$(python3 -c "print('%.1f' % (${total} / ${runs}))")
done

# 2. Gated boot: starting the last unit starts the chain (Wants=), each model behind the gate.
gated=()
step boot && for r in $(seq 1 "$runs"); do
  stop_all
  start=$(date +%s.%N)
  lx systemctl start --no-block "$prefix${sorted[-1]}.service"
  line="boot run $r:"
  for n in "${sorted[@]}"; do
    args=$(lx docker inspect -f '{{json .Config.Cmd}}' "$prefix$n")
    port=$(python3 -c 'import json, sys; a = json.loads(sys.argv[1]); print(a[a.index("--port") + 1])' "$args")
    line+=" $n healthy at $(wait_healthy "http://127.0.0.1:$port/health" "$start") s;"
  done
  echo "$line" | tee -a "$out/boot.txt" >&2
  gated+=("$(sed -E 's/.* ([0-9.]+) s;$/\1/' <<<"$line")")
done
lx bash -c "until systemctl is-active --quiet $prefix${sorted[-1]}.service; do sleep 1; done"

# 3. Resident memory per model server (all processes of the container).
step rss && for n in "${sorted[@]}"; do
  rss=$(lx docker top "$prefix$n" -o pid,rss | awk 'NR > 1 {s += $2} END {printf "%.2f", s / 1048576}')
  echo "rss $n: $rss GiB" | tee -a "$out/rss.txt" >&2
done

# 4. Gateway overhead: the first model, directly and through the gateway, alternating.
first=${sorted[0]}
args=$(lx docker inspect -f '{{json .Config.Cmd}}' "$prefix$first")
port=$(python3 -c 'import json, sys; a = json.loads(sys.argv[1]); print(a[a.index("--port") + 1])' "$args")
model_dir=$(python3 -c 'import json, sys; a = json.loads(sys.argv[1]); print(a[a.index("serve") + 1])' "$args")
bench() { # label base_url
  lx docker run --rm --network host -e OPENAI_API_KEY="$key" -v /tmp:/results "$image" \
    vllm bench serve --backend openai-chat --base-url "$2" --endpoint /v1/chat/completions \
    --model "$first" --tokenizer "$model_dir" --dataset-name random --random-input-len 64 \
    --random-output-len 16 --ignore-eos --num-prompts "$prompts" --max-concurrency 1 --num-warmups 4 \
    --seed 1 --percentile-metrics ttft,tpot,itl,e2el --disable-tqdm \
    --save-result --result-dir /results --result-filename "bench-$1.json" >"$out/bench-$1.log" 2>&1 || { tail -n 20 "$out/bench-$1.log" >&2; exit 1; }
  lx cat "/tmp/bench-$1.json" >"$out/bench-$1.json"
}
step bench && for r in $(seq 1 "$runs"); do
  bench "direct-$r" "http://127.0.0.1:$port"
  bench "gateway-$r" "http://127.0.0.1:$gw_port"
done

python3 - "$out" "${#sorted[@]}" "${sorted[@]}" <<PY | tee "$out/summary.md"
import glob, json, os, statistics, sys
out, n = sys.argv[1], int(sys.argv[2])
names = sys.argv[3:3 + n]
keys, vals = "${!single_sum[*]}".split(), "${single_sum[*]}".split()
singles = {k: float(v) for k, v in zip(keys, vals)}
gated = [float(x) for x in "${gated[*]}".split()]
if singles:
    print("| model | start to healthy, alone (mean of $runs) |")
    print("|---|---|")
    for m in names:
        print("| %s | %.1f s |" % (m, singles[m]))
if singles and gated:
    total = sum(singles.values())
    print("\ngated boot: %s s; sum of single starts %.1f s; ratio %s"
          % (", ".join("%.1f" % g for g in gated), total, ", ".join("%.3f" % (g / total) for g in gated)))
def load(path, r):
    f = os.path.join(out, "bench-%s-%d.json" % (path, r))
    return json.load(open(f)) if os.path.exists(f) else None
rows = [(r, load("direct", r), load("gateway", r)) for r in range(1, $runs + 1)]
rows = [row for row in rows if row[1] and row[2]]
if rows:
    print("\n| pair | completion (e2el) median, direct | through the gateway | overhead "
          "| TTFT median, direct | through the gateway | overhead | requests completed (direct/gateway) |")
    print("|---|---|---|---|---|---|---|---|")
    e_over, t_over = [], []
    for r, d, g in rows:
        eo = g["median_e2el_ms"] - d["median_e2el_ms"]
        to = g["median_ttft_ms"] - d["median_ttft_ms"]
        e_over.append(eo)
        t_over.append(to)
        print("| %d | %.1f ms | %.1f ms | %+.1f ms | %.1f ms | %.1f ms | %+.1f ms | %d/%d |"
              % (r, d["median_e2el_ms"], g["median_e2el_ms"], eo, d["median_ttft_ms"], g["median_ttft_ms"], to,
                 d["completed"], g["completed"]))
    print("\nmedian gateway overhead over %d pairs: E2E %+.1f ms, TTFT %+.1f ms"
          % (len(rows), statistics.median(e_over), statistics.median(t_over)))
PY
echo "vllm_cpu: raw output in $out" >&2
