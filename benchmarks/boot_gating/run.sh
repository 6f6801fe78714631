#!/usr/bin/env bash
# Boot gating overhead (issue 8, item 1): playbooks/models.yml boots three STAND-IN models
# with load delays of 5, 10 and 15 s on a systemd test host that runs its own Docker engine
# (as in molecule/model_stack). For each boot it reports
#   - total boot time / sum of the delays (target <= 1.03), where the boot runs from systemd
#     starting the first model's unit to the last model being healthy;
#   - per model handover, the gap from the previous model turning healthy (its own log line)
#     to systemd starting the next unit (target < 0.5 s), and to the next model's process
#     starting to load (this one includes `docker start` of the container);
#   - the wall time of the whole ansible-playbook run, for reference;
#   - the container runtime's own share: `docker start` to the stand-in loading, alone.
# Usage: benchmarks/boot_gating/run.sh [RUNS]   (default 3; the first run also creates the containers)
#        MULTILLM_ROOT=<checkout> benchmarks/boot_gating/run.sh [RUNS]
#   boots the models with the collection of another checkout (e.g. `git worktree add /tmp/old
#   <commit>`), measured by this script: a baseline for a change to model_stack.
# Needs: Docker, the venv (make venv), about 2 minutes plus 31 s per run. Writes
# benchmarks/results/boot_gating-<UTC time>.json and prints a Markdown table.
set -euo pipefail

runs=${1:-3}
root=$(cd "$(dirname "$0")/../.." && pwd)
host=multillm-bench-boot-gating
work=$(mktemp -d /tmp/multillm-boot-gating.XXXXXX)
trap 'docker rm -f -v "$host" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
# shellcheck disable=SC1091
source "$root/.venv/bin/activate"
collection=$(cd "${MULTILLM_ROOT:-$root}" && pwd)
export ANSIBLE_CONFIG=$collection/ansible.cfg ANSIBLE_COLLECTIONS_PATH=$collection/collections ANSIBLE_FORCE_COLOR=0

"$root/images/base/build.sh" >/dev/null
"$root/images/fault-injector/build.sh" >/dev/null

echo "boot_gating: starting the test host $host" >&2
docker rm -f -v "$host" >/dev/null 2>&1 || true
# /var/lib/docker on an anonymous volume: the inner engine can use overlay2 there (it cannot
# stack overlay on the container's own overlay root and would fall back to vfs).
docker run -d --name "$host" --hostname bootgating \
  --cap-add SYS_ADMIN --cap-add NET_ADMIN \
  --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
  --cgroupns host -v /sys/fs/cgroup:/sys/fs/cgroup:rw -v /var/lib/docker \
  --tmpfs /run --tmpfs /run/lock --tmpfs /tmp -e container=docker \
  multillm-base:bookworm /lib/systemd/systemd >/dev/null
until docker exec "$host" systemctl is-system-running 2>/dev/null | grep -qE 'running|degraded'; do sleep 1; done
echo "boot_gating: installing Docker in the test host and loading the fault-injector image" >&2
docker exec "$host" bash -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
  --no-install-recommends docker.io iptables python3-requests >/dev/null && systemctl is-active --quiet docker'
docker save multillm-fault-injector:latest | docker exec -i "$host" docker load -q >/dev/null

cat >"$work/inventory.yml" <<INV
all:
  hosts:
    $host:
      ansible_connection: community.docker.docker
  vars:
    multillm_vram_strategy: static
    multillm_gpu_required: false
    model_stack_server: fault_injector
    model_stack_image_pull: never
    multillm_models:
      - {name: m5, model: injector/m5, port: 18201, gpu_memory_utilization: 0.3, health_timeout_s: 60, extra_args: [--load-delay, "5"]}
      - {name: m10, model: injector/m10, port: 18202, gpu_memory_utilization: 0.3, health_timeout_s: 60, extra_args: [--load-delay, "10"]}
      - {name: m15, model: injector/m15, port: 18203, gpu_memory_utilization: 0.3, health_timeout_s: 60, extra_args: [--load-delay, "15"]}
INV

cmd="ansible-playbook -i $work/inventory.yml playbooks/models.yml"
results=()
for run in $(seq 1 "$runs"); do
  if [[ $run -gt 1 ]]; then
    # Stop the models, last first, so the next play boots all three again.
    docker exec "$host" systemctl stop multillm-model-m15 multillm-model-m10 multillm-model-m5
  fi
  echo "boot_gating: run $run of $runs: $cmd" >&2
  start=$(date +%s.%N)
  (cd "$collection" && $cmd >"$work/play-$run.log" 2>&1) || { tail -n 40 "$work/play-$run.log" >&2; exit 1; }
  end=$(date +%s.%N)
  docker cp "$root/benchmarks/boot_gating/collect.py" "$host:/root/collect.py"
  results+=("$(docker exec "$host" python3 /root/collect.py --play-start "$start" --play-end "$end" \
    --models m5:5 m10:10 m15:15)")
done

docker cp "$root/benchmarks/boot_gating/floor.py" "$host:/root/floor.py"
floor=$(docker exec "$host" python3 /root/floor.py)

mkdir -p "$root/benchmarks/results"
out=$root/benchmarks/results/boot_gating-$(date -u +%Y%m%dT%H%M%SZ).json
printf '%s\n' "${results[@]}" | python3 "$root/benchmarks/boot_gating/report.py" \
  --command "${MULTILLM_ROOT:+MULTILLM_ROOT=$MULTILLM_ROOT }benchmarks/boot_gating/run.sh $runs (collection at $(git -C "$collection" rev-parse --short HEAD)$(git -C "$collection" diff --quiet HEAD -- roles playbooks || echo ' + local changes'))" --json "$out" --floor "$floor"
echo "boot_gating: raw figures in $out" >&2
