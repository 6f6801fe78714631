#!/usr/bin/env bash
# Gateway faults under load (issue 8, Reliability 2). Needs the converged lab (`make lab`).
#   benchmarks/reliability/gateway_kill.sh [worker|main|restart|recycle ...]   # default: all four
#   worker   SIGKILL to one Gunicorn worker, under 4 closed-loop connections
#   main     SIGKILL to the unit's main process (Gunicorn arbiter): systemd restarts the unit
#   restart  `systemctl restart litellm-gateway` (what the role does for a new release or secret)
#   recycle  gateway.yml rerun with MAX_REQUESTS_BEFORE_RESTART=$RECYCLE_EVERY (jitter $RECYCLE_JITTER),
#            $RECYCLE_REQUESTS requests on 4 connections with client.py (no retry) and with
#            gateway_overhead/loadgen.py --retry-stale, then gateway.yml again with the defaults.
# No request is retried by client.py: every broken connection or non-200 answer counts as failed.
set -euo pipefail
cd "$(dirname "$0")/../.."
LAB=${LAB:-multillm-lab}
MODEL=${MODEL:-qwen2.5-14b-instruct}
OUT=${OUT:-benchmarks/results/reliability/$(date -u +%F)/gateway}
RECYCLE_EVERY=${RECYCLE_EVERY:-100} RECYCLE_JITTER=${RECYCLE_JITTER:-20} RECYCLE_REQUESTS=${RECYCLE_REQUESTS:-3000}
KEY=$(awk '/^litellm_gateway_master_key:/{print $2}' inventories/lab/group_vars/all/main.yml)
mkdir -p "$OUT"
# shellcheck disable=SC1091
source .venv/bin/activate
export ANSIBLE_CONFIG=$PWD/ansible.cfg ANSIBLE_NOCOLOR=1
lab() { docker exec "$LAB" "$@"; }
# Requests the model server finished (its /metrics counter): requests that reached it. Real vLLM
# (the lab since 2026-12-04): vllm:request_success_total, summed over its finished_reason labels;
# the fault injector (the lab before): fault_injector_requests_total of 200 chat completions.
# Prints nothing when the server has neither counter.
served() { lab curl -s "http://127.0.0.1:$(lab systemctl show "multillm-model-$MODEL.service" -p Description --value | sed 's/.*://')/metrics" \
  | awk '/^vllm:request_success_total\{/ || /^fault_injector_requests_total\{path="\/v1\/chat\/completions",status="200"\}/ {
      n += $NF; found = 1 } END { if (found) printf "%d\n", n }'; }
# "completions answered by the backend meanwhile" since the count $1 (unknown without a counter)
served_since() { local n; n=$(served); if [[ -n $1 && -n $n ]]; then echo $((n - $1)); else echo "unknown (no request counter on /metrics)"; fi; }
procs() { lab ps -o pid,ppid,etimes,rss,args --ppid "$(lab systemctl show -p MainPID --value litellm-gateway)" -p "$(lab systemctl show -p MainPID --value litellm-gateway)"; }
poll() { docker exec -i "$LAB" python3 - 0.05 "$1" http://127.0.0.1:4001/health/liveliness \
  < benchmarks/reliability/health_poll.py > "$2/health.log"; }
fault() {  # name, command run in the lab host 5 s into 40 s of load
  local d=$OUT/$1; mkdir -p "$d"
  echo "== $1 ($(date -u +%T), load $(cut -d' ' -f1-3 /proc/loadavg))"
  procs > "$d/procs-before.txt"
  lab systemctl show litellm-gateway -p MainPID,NRestarts,ActiveEnterTimestamp > "$d/systemd-before.txt"
  local since; since=$(date -u '+%F %T')
  local n0; n0=$(served)
  python3 benchmarks/reliability/client.py --key "$KEY" --model "$MODEL" --connections 4 --interval 0.02 \
    --duration 40 > "$d/client.jsonl" &
  local c=$!
  poll 40 "$d" &
  local p=$!
  sleep 5
  local t; t=$(date +%s.%N)
  lab sh -c "$2" > "$d/event-output.txt" 2>&1
  echo "$t $2" > "$d/event.txt"; echo "   fault at $t: $2"
  wait $c $p || true
  procs > "$d/procs-after.txt" || true
  lab systemctl show litellm-gateway -p MainPID,NRestarts,ActiveEnterTimestamp > "$d/systemd-after.txt"
  lab journalctl --no-pager -o short-iso-precise --since "$since" -u litellm-gateway > "$d/journal.txt" || true
  python3 benchmarks/reliability/summarize.py --event "$t" "$d/client.jsonl" | tee "$d/summary.txt"
  echo "   completions answered by the backend meanwhile: $(served_since "$n0")" | tee -a "$d/summary.txt"
  awk -v ev="$t" '{printf "   health %+7.2f s  %s %s\n", $1-ev, $2, $3}' "$d/health.log" | tee -a "$d/summary.txt"
  sleep 5
}
worker_cmd='w=$(ps -o pid= --ppid $(systemctl show -p MainPID --value litellm-gateway) | head -1); echo worker $w; kill -9 $w'
main_cmd='m=$(systemctl show -p MainPID --value litellm-gateway); echo main $m; kill -9 $m'
restart_cmd='systemctl restart litellm-gateway; echo restarted'

for what in "${@:-worker main restart recycle}"; do for w in $what; do case $w in
  worker) fault worker "$worker_cmd" ;;
  main) fault main "$main_cmd" ;;
  restart) fault restart "$restart_cmd" ;;
  recycle)
    d=$OUT/recycle; mkdir -p "$d"
    echo "== recycle every $RECYCLE_EVERY (+0..$RECYCLE_JITTER) requests ($(date -u +%T))"
    ansible-playbook -i inventories/lab playbooks/gateway.yml -e "litellm_gateway_max_requests_before_restart=$RECYCLE_EVERY" \
      -e "litellm_gateway_max_requests_before_restart_jitter=$RECYCLE_JITTER" > "$d/gateway-small.log" 2>&1
    tail -4 "$d/gateway-small.log" | grep multillm-lab | tee "$d/summary.txt"
    lab systemctl show litellm-gateway -p Environment | tr ' ' '\n' | grep MAX_REQUESTS | tee -a "$d/summary.txt"
    since=$(date -u '+%F %T')
    echo "client.py, 4 connections, $RECYCLE_REQUESTS requests, no retry (load $(cut -d' ' -f1-3 /proc/loadavg))" | tee -a "$d/summary.txt"
    n0=$(served)
    python3 benchmarks/reliability/client.py --key "$KEY" --model "$MODEL" --connections 4 --interval 0 \
      --requests "$RECYCLE_REQUESTS" --duration 300 > "$d/client.jsonl"
    python3 benchmarks/reliability/summarize.py "$d/client.jsonl" | tee -a "$d/summary.txt"
    echo "   completions answered by the backend meanwhile: $(served_since "$n0")" | tee -a "$d/summary.txt"
    n0=$(served)
    echo "loadgen.py --retry-stale, 4 connections, $RECYCLE_REQUESTS requests (load $(cut -d' ' -f1-3 /proc/loadavg))" | tee -a "$d/summary.txt"
    python3 benchmarks/gateway_overhead/loadgen.py --url http://127.0.0.1:4001/v1/chat/completions --model "$MODEL" \
      --key "$KEY" --connections 4 --requests "$RECYCLE_REQUESTS" --warmup 0 --retry-stale | tee -a "$d/summary.txt" || true
    echo "   completions answered by the backend meanwhile: $(served_since "$n0")" | tee -a "$d/summary.txt"
    lab journalctl --no-pager -o short-iso-precise --since "$since" -u litellm-gateway > "$d/journal.txt" || true
    echo "worker recycles in the journal (Gunicorn 'Maximum request limit ... exceeded'): $(grep -c 'Maximum request limit' "$d/journal.txt")" | tee -a "$d/summary.txt"
    grep -i 'autorestart\|booting worker\|max requests' "$d/journal.txt" | head -3 | tee -a "$d/summary.txt" || true
    ansible-playbook -i inventories/lab playbooks/gateway.yml > "$d/gateway-restore.log" 2>&1
    tail -4 "$d/gateway-restore.log" | grep multillm-lab | tee -a "$d/summary.txt"
    lab systemctl show litellm-gateway -p Environment | tr ' ' '\n' | grep MAX_REQUESTS | tee -a "$d/summary.txt"
    ;;
  *) echo "unknown: $w" >&2; exit 2 ;;
esac; done; done
python3 benchmarks/reliability/compact.py "$OUT"
