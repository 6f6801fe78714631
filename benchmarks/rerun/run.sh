#!/usr/bin/env bash
# Re-run time of site.yml on the converged lab host (issue 8 item 3, issue 13).
#   benchmarks/rerun/run.sh [RUNS]        # default 3; needs `make lab` first
# Runs `ansible-playbook -i $INVENTORY site.yml` RUNS times with the profile_tasks and
# profile_roles callbacks, records wall time, the PLAY RECAP (changed must be 0) and the time
# per stage (play), and writes everything to benchmarks/results/rerun/<date>/ (git-ignored).
# LAB (default multillm-lab) and INVENTORY (default inventories/lab) name another lab host,
# e.g. a copy of the lab inventory pointing at a second lab container for a before/after pair;
# TREE (default this clone) runs another checkout of the collection with this clone's venv.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
TREE=${TREE:-$here}
RUNS=${1:-3}
LAB=${LAB:-multillm-lab}
INVENTORY=${INVENTORY:-inventories/lab}
OUT=${OUT:-$here/benchmarks/results/rerun/$(date -u +%F)}
mkdir -p "$OUT"
# shellcheck disable=SC1091
source "$here/.venv/bin/activate"
cd "$TREE"
export ANSIBLE_CONFIG=$TREE/ansible.cfg ANSIBLE_COLLECTIONS_PATH=$TREE/collections
export ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks,ansible.posix.profile_roles
export PROFILE_TASKS_TASK_OUTPUT_LIMIT=25 ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1
docker exec "$LAB" systemctl is-active litellm-gateway >/dev/null
{
  echo "date: $(date -u +%FT%TZ)"; echo "host: $(uname -n) $(nproc) cores"
  echo "tree: $TREE at $(git -C "$TREE" rev-parse --short HEAD 2>/dev/null || cat "$TREE/.headsha" 2>/dev/null || echo unknown)"
  echo "command: ansible-playbook -i $INVENTORY site.yml (x$RUNS)"
} > "$OUT/summary.txt"
for i in $(seq 1 "$RUNS"); do
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  t0=$(date +%s.%N)
  rc=0
  ansible-playbook -i "$INVENTORY" site.yml > "$OUT/run$i.log" 2>&1 || rc=$?
  t1=$(date +%s.%N)
  wall=$(python3 -c "print(round($t1-$t0,1))")
  recap=$(grep -E "^$LAB |^localhost " "$OUT/run$i.log" | tr -s ' ' | sort -u | tr '\n' ';')
  echo "run $i: rc=$rc wall_s=$wall loadavg_before=$load recap: $recap" | tee -a "$OUT/summary.txt"
  python3 "$here/benchmarks/rerun/stages.py" "$OUT/run$i.log" | tee -a "$OUT/summary.txt"
done
python3 - "$OUT/summary.txt" <<'PY' | tee -a "$OUT/summary.txt"
import re, statistics, sys
w = [float(m) for m in re.findall(r"wall_s=([0-9.]+)", open(sys.argv[1]).read())]
print("median wall_s: %.1f (runs: %s)" % (statistics.median(w), ", ".join(map(str, w))))
PY
