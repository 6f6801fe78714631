#!/usr/bin/env bash
# Model killed while serving (issue 8, Reliability 1). Needs the converged lab (`make lab`).
#   benchmarks/reliability/model_kill.sh [MODEL]     # default: the first model of the chain
# Three faults, one after the other, each under a trickle of requests through the gateway
# (10/s to the killed model, 5/s to the other one) and a /health poller inside the lab host:
#   docker-kill  `docker kill <container>` inside the lab host (SIGKILL to the container)
#   kill-server  SIGKILL to the container's main process (the model server, PID 1 of the container)
#   kill-client  SIGKILL to the unit's main process (`docker start --attach`, the container survives)
# Writes per case: client logs, poller log, journal of every model unit and the gateway, and
# systemd's view (NRestarts, ActiveEnterTimestamp) before and after.
set -euo pipefail
cd "$(dirname "$0")/../.."
LAB=${LAB:-multillm-lab}
MODEL=${1:-qwen2.5-14b-instruct}
OTHER=${OTHER:-paddleocr-vl}
OUT=${OUT:-benchmarks/results/reliability/$(date -u +%F)/model_kill}
KEY=$(awk '/^litellm_gateway_master_key:/{print $2}' inventories/lab/group_vars/all/main.yml)
# POST: seconds watched after the fault. Real vLLM's CPU build (the lab since 2026-12-04) takes
# 28-75 s from a container start to healthy on 2 busy cores, so a killed model needs more than
# the 45 s that covered the fault injector's restart.
PRE=5 POST=${POST:-150}
mkdir -p "$OUT"
lab() { docker exec "$LAB" "$@"; }
units=$(lab systemctl list-units --plain --no-legend 'multillm-model-*' | awk '{print $1}')
show() { for u in $units litellm-gateway.service; do
  echo "$u $(lab systemctl show "$u" -p ActiveState,SubState,NRestarts,MainPID,ActiveEnterTimestamp --value | tr '\n' ' ')"; done; }
port() { lab systemctl show "multillm-model-$1.service" -p Description --value | sed 's/.*:\([0-9]*\)$/\1/'; }

for case in docker-kill kill-server kill-client; do
  d=$OUT/$case; mkdir -p "$d"
  echo "== $case ($(date -u +%T), load $(cut -d' ' -f1-3 /proc/loadavg))"
  show > "$d/systemd-before.txt"
  since=$(date -u '+%F %T')
  python3 benchmarks/reliability/client.py --key "$KEY" --model "$MODEL" --interval 0.1 \
    --duration $((PRE + POST)) > "$d/client-$MODEL.jsonl" &
  c1=$!
  python3 benchmarks/reliability/client.py --key "$KEY" --model "$OTHER" --interval 0.2 \
    --duration $((PRE + POST)) > "$d/client-$OTHER.jsonl" &
  c2=$!
  docker exec -i "$LAB" python3 - 0.05 $((PRE + POST)) "http://127.0.0.1:$(port "$MODEL")/health" \
    "http://127.0.0.1:$(port "$OTHER")/health" http://127.0.0.1:4001/health/readiness \
    < benchmarks/reliability/health_poll.py > "$d/health.log" &
  c3=$!
  sleep $PRE
  case $case in
    docker-kill) cmd="docker kill multillm-model-$MODEL" ;;
    kill-server) cmd="kill -9 $(lab docker inspect -f '{{.State.Pid}}' "multillm-model-$MODEL")" ;;
    kill-client) cmd="kill -9 $(lab systemctl show -p MainPID --value "multillm-model-$MODEL.service")" ;;
  esac
  t=$(date +%s.%N); lab sh -c "$cmd" > /dev/null
  echo "$t $cmd" > "$d/event.txt"
  echo "   fault at $t: $cmd"
  wait $c1 $c2 $c3 || true
  show > "$d/systemd-after.txt"
  lab journalctl --no-pager -o short-iso-precise --since "$since" -u 'multillm-model-*' -u litellm-gateway \
    > "$d/journal.txt" || true
  python3 benchmarks/reliability/summarize.py --event "$t" "$d"/client-*.jsonl | tee "$d/summary.txt"
  python3 - "$t" "$d/health.log" <<'PY' | tee -a "$d/summary.txt"
import sys
ev = float(sys.argv[1])
for line in open(sys.argv[2]):
    ts, url, res = line.split()
    print("   health %+7.2f s  %-40s %s" % (float(ts) - ev, url, res))
PY
  diff "$d/systemd-before.txt" "$d/systemd-after.txt" | tee -a "$d/summary.txt" || true
  sleep 5
done
python3 benchmarks/reliability/compact.py "$OUT"
