#!/usr/bin/env bash
# Gateway overhead: the same chat completion sent straight to a stand-in backend and through
# LiteLLM, as llmops.multillm.litellm_gateway ships it, with LiteLLM's defaults (uvicorn, one
# worker) and with LiteLLM's defaults but the role's 2 Gunicorn workers, all in one systemd
# container on this machine, measured in interleaved rounds.
#
#   benchmarks/gateway_overhead/run.sh [ROUNDS]      (default 3 rounds; KEEP=1 keeps the container)
#
# Per round and target: p50/p99 latency over 1,000 requests on 1 connection, and requests/s
# over 15 s on 16 connections (closed loop, keep-alive), with the CPU time the server's process
# tree spent per request meanwhile (robust to other load). The load generator runs inside the
# container, on loopback, like the gateway's clients on the host would. Figures are medians
# over rounds; raw results go to benchmarks/results/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
name=multillm-bench-gateway-$$
out=benchmarks/results/gateway_overhead-$(date -u +%Y%m%dT%H%M%SZ).jsonl
mkdir -p benchmarks/results .cache/wheels/litellm_gateway
# shellcheck disable=SC1091
source .venv/bin/activate
export ANSIBLE_CONFIG=$PWD/ansible.cfg ANSIBLE_COLLECTIONS_PATH=$PWD/collections

images/base/build.sh >/dev/null
cleanup() {
  rm -f "${inventory:-}"
  [[ ${KEEP:-0} == 1 ]] || docker rm -f "$name" >/dev/null 2>&1 || true
}
trap cleanup EXIT
docker run -d --name "$name" --hostname gateway-bench \
  --cap-add SYS_ADMIN --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
  --cgroupns host -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock --tmpfs /tmp \
  -v /etc/ssl/certs:/etc/ssl/certs:ro -v "$PWD/.cache/wheels/litellm_gateway:/var/cache/multillm-wheels:rw" \
  -e container=docker multillm-base:bookworm /lib/systemd/systemd >/dev/null
until docker exec "$name" systemctl is-system-running 2>/dev/null | grep -qE 'running|degraded'; do sleep 1; done

inventory=$(mktemp /tmp/gateway-bench-inventory.XXXXXX)
printf 'bench ansible_connection=community.docker.docker ansible_host=%s\n' "$name" >"$inventory"
ansible-playbook -i "$inventory" benchmarks/gateway_overhead/bench.yml >/tmp/gateway-bench-$$.log 2>&1 || {
  tail -40 /tmp/gateway-bench-$$.log >&2
  exit 1
}

key=sk-benchmark-key-0123456789
declare -A url=(
  [direct]=http://127.0.0.1:8001/v1/chat/completions
  [shipped]=http://127.0.0.1:4001/v1/chat/completions
  [litellm_defaults]=http://127.0.0.1:4002/v1/chat/completions
  [litellm_gunicorn]=http://127.0.0.1:4003/v1/chat/completions
)
declare -A unit=([direct]=multillm-model-bench [shipped]=litellm-gateway [litellm_defaults]=litellm-defaults
  [litellm_gunicorn]=litellm-gunicorn)
targets=(direct shipped litellm_defaults litellm_gunicorn)
lg() { docker exec "$name" python3 /opt/gateway-bench/loadgen.py --url "${url[$1]}" --model bench --key "$key" "${@:2}"; }
# CPU time (clock ticks) of a unit's main process and its children (the Gunicorn workers;
# uvicorn with one worker serves from the main process). The main process's cutime/cstime hold
# the time of the workers it has reaped, so a worker recycled during a run still counts.
ticks() {
  docker exec "$name" bash -c 'm=$(systemctl show -p MainPID --value '"${unit[$1]}"'.service)
    { cut -d" " -f14-17 /proc/$m/stat; for p in $(pgrep -P "$m"); do cut -d" " -f14,15 /proc/$p/stat; done; } |
      awk "{for (i = 1; i <= NF; i++) t += \$i} END {print t}"'
}
hz=$(docker exec "$name" getconf CLK_TCK)

{
  echo "{\"date\": \"$(date -u +%FT%TZ)\", \"cpus\": $(nproc), \"cpu\": \"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\", \"loadavg_before\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}"
  for r in $(seq "$rounds"); do
    for t in "${targets[@]}"; do
      echo "{\"round\": $r, \"target\": \"$t\", \"kind\": \"c1\", \"result\": $(lg "$t" --connections 1 --requests 1000 --warmup 100)}"
      t0=$(ticks "$t")
      res=$(lg "$t" --connections 16 --duration 15 --warmup 100)
      t1=$(ticks "$t")
      echo "{\"round\": $r, \"target\": \"$t\", \"kind\": \"c16\", \"cpu_s\": $(awk -v a="$t0" -v b="$t1" -v hz="$hz" 'BEGIN {print (b - a) / hz}'), \"result\": $res}"
    done
  done
  echo "{\"loadavg_after\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}"
} | tee "$out"

python3 - "$out" "${targets[@]}" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
meta = rows[0]
by = {}
for r in rows:
    if "target" in r:
        by.setdefault((r["target"], r["kind"]), []).append(r["result"])
med = lambda xs: statistics.median(xs)
print()
print("%s, %d CPUs (%s), load average before %s, after %s" % (
    meta["date"], meta["cpus"], meta["cpu"], meta["loadavg_before"], rows[-1]["loadavg_after"]))
print("| target | p50 ms (1 conn) | p99 ms (1 conn) | req/s (16 conn) | CPU ms/request (16 conn) | failed |")
print("| --- | --- | --- | --- | --- | --- |")
targets = sys.argv[2:]
for t in targets:
    c1, c16 = by[(t, "c1")], by[(t, "c16")]
    failed = sum(x["failed"] for x in c1 + c16)
    cpu = med([r["cpu_s"] * 1000 / max(1, r["result"]["ok"]) for r in rows
               if r.get("target") == t and r.get("kind") == "c16"])
    print("| %s | %.2f | %.2f | %.0f | %.2f | %d |" % (t, med([x["p50_ms"] for x in c1]), med([x["p99_ms"] for x in c1]),
                                                    med([x["rps"] for x in c16]), cpu, failed))
d = med([x["p50_ms"] for x in by[("direct", "c1")]])
for t in targets[1:]:
    print("%s: p50 overhead %.2f ms" % (t, med([x["p50_ms"] for x in by[(t, "c1")]]) - d))
rps = {t: med([x["rps"] for x in by[(t, "c16")]]) for t in targets}
for t in targets[2:]:
    print("throughput ratio shipped / %s: %.2f" % (t, rps["shipped"] / rps[t]))
# The machine's speed can drift between rounds (a shared host): the ratio within each round,
# measured minutes apart at most, is the figure that drift moves least.
for t in targets[2:]:
    per = [a["result"]["rps"] / b["result"]["rps"] for a, b in zip(
        [r for r in rows if r.get("target") == "shipped" and r.get("kind") == "c16"],
        [r for r in rows if r.get("target") == t and r.get("kind") == "c16"])]
    print("per round, throughput ratio shipped / %s: %s (median %.2f)" % (
        t, ", ".join("%.2f" % x for x in per), statistics.median(per)))
# A 2-worker server whose 16 connections all went to one worker uses one core: show it per round.
print("per round, 16 connections: req/s (cores used by the server)")
for t in targets[1:]:
    print("  %s: %s" % (t, ", ".join("%.0f (%.2f)" % (r["result"]["rps"], r["cpu_s"] / r["result"]["seconds"])
                                  for r in rows if r.get("target") == t and r.get("kind") == "c16")))
PY
