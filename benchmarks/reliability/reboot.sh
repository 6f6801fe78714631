#!/usr/bin/env bash
# Simulated host reboot (issue 8, Reliability 3). Needs the converged lab (`make lab`).
#   benchmarks/reliability/reboot.sh
# `docker restart multillm-lab`: Docker sends SIGTERM, which systemd as PID 1 does not treat as a
# shutdown, so after Docker's 10 s the whole host (systemd, its Docker engine, the models, the
# gateway) is SIGKILLed: a power cut, then a cold boot. Measures the time from the container's new
# start (power on) to the first 200 through the gateway, reads the boot order from the journal
# (unit start jobs and the stand-ins' own log lines), then runs playbooks/verify.yml.
set -euo pipefail
cd "$(dirname "$0")/../.."
LAB=${LAB:-multillm-lab}
MODEL=${MODEL:-paddleocr-vl}   # the last model of the chain: serving it means the whole chain is up
OUT=${OUT:-benchmarks/results/reliability/$(date -u +%F)/reboot}
KEY=$(awk '/^litellm_gateway_master_key:/{print $2}' inventories/lab/group_vars/all/main.yml)
mkdir -p "$OUT"
# shellcheck disable=SC1091
source .venv/bin/activate
export ANSIBLE_CONFIG=$PWD/ansible.cfg ANSIBLE_NOCOLOR=1
before=$(docker inspect -f '{{.State.StartedAt}}' "$LAB")
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/summary.txt"
t0=$(date +%s.%N)
docker restart "$LAB" > /dev/null &
rp=$!
# wait (at most 120 s) for the new start, then send one request every 0.2 s (at most 300 s)
for _ in $(seq 1 1200); do
  now=$(docker inspect -f '{{.State.StartedAt}}' "$LAB" 2>/dev/null || true)
  [ -n "$now" ] && [ "$now" != "$before" ] && break
  sleep 0.1
done
wait $rp
started=$(docker inspect -f '{{.State.StartedAt}}' "$LAB")
python3 benchmarks/reliability/client.py --key "$KEY" --model "$MODEL" --interval 0.2 --timeout 5 \
  --duration 300 --requests 100000 > "$OUT/client.jsonl" &
cp=$!
# stop the client at its first success (bounded by its own --duration)
for _ in $(seq 1 3000); do grep -q '"status": 200' "$OUT/client.jsonl" && break; sleep 0.1; done
kill "$cp" 2>/dev/null || true; wait "$cp" 2>/dev/null || true
python3 - "$t0" "$started" "$OUT/client.jsonl" <<'PY' | tee -a "$OUT/summary.txt"
import datetime, json, sys
t0 = float(sys.argv[1])
s = sys.argv[2]
start = datetime.datetime.fromisoformat(s[:26].rstrip("Z") + "+00:00").timestamp()
recs = [json.loads(x) for x in open(sys.argv[3]) if x.strip() and '"summary"' not in x]
ok = [r for r in recs if r.get("status") == 200]
print("docker restart issued at %.3f; container started (power on) at %s = +%.2f s" % (t0, s, start - t0))
if ok:
    t = ok[0]["t"] + ok[0]["dt"]
    print("first 200 through the gateway: +%.2f s after power on (+%.2f s after docker restart), %d failed tries before"
          % (t - start, t - t0, len([r for r in recs if r["t"] < ok[0]["t"]])))
else:
    print("NO successful request within the client's bound")
PY
docker exec "$LAB" systemctl is-system-running --wait >> "$OUT/summary.txt" 2>&1 || true
# not `journalctl -b`: a container shares the kernel's boot id, so -b also shows the boots before
since=$(date -u -d "$started" '+%F %T')
docker exec "$LAB" journalctl --since "$since" --no-pager -o short-iso-precise -u 'multillm-model-*' -u litellm-gateway -u docker \
  > "$OUT/journal.txt"
docker exec "$LAB" systemd-analyze blame --no-pager > "$OUT/blame.txt" 2>&1 || true
docker exec "$LAB" systemd-analyze critical-chain litellm-gateway.service --no-pager > "$OUT/critical-chain.txt" 2>&1 || true
echo "boot order (journal):" | tee -a "$OUT/summary.txt"
grep -E 'systemd\[1\]: (Starting|Started) |model-wait.* healthy|Listening at' "$OUT/journal.txt" \
  | cut -c1-200 | tee -a "$OUT/summary.txt" || true
echo "verify.yml:" | tee -a "$OUT/summary.txt"
rc=0; ansible-playbook -i inventories/lab playbooks/verify.yml > "$OUT/verify.log" 2>&1 || rc=$?
grep -A8 'Show the summary' "$OUT/verify.log" | grep -vE '^\s*$' | tee -a "$OUT/summary.txt" || true
grep -E '^multillm-lab' "$OUT/verify.log" | tee -a "$OUT/summary.txt"
echo "verify.yml rc=$rc" | tee -a "$OUT/summary.txt"
