#!/usr/bin/env bash
# Security checks on the converged lab (issue 8, Reliability 4).
#   benchmarks/reliability/security.sh
# 1. listening sockets inside the lab host (ss -ltnp): only the gateway beyond loopback
# 2. modes of the secret files (model env files, gateway secrets.env): 0600
# 3. no secret in play output: site.yml with -vvv twice into log files, first with a dummy
#    Hugging Face token (so the token path runs: env files change, models restart), then with the
#    lab's own variables (restores the lab); count occurrences of the master key and of the token
# 4. systemd-analyze security of the gateway unit and of each model unit
set -euo pipefail
cd "$(dirname "$0")/../.."
LAB=${LAB:-multillm-lab}
OUT=${OUT:-benchmarks/results/reliability/$(date -u +%F)/security}
KEY=$(awk '/^litellm_gateway_master_key:/{print $2}' inventories/lab/group_vars/all/main.yml)
TOKEN=hf_reliabilityDummyToken$(date +%s)
mkdir -p "$OUT"
# shellcheck disable=SC1091
source .venv/bin/activate
export ANSIBLE_CONFIG=$PWD/ansible.cfg ANSIBLE_NOCOLOR=1
lab() { docker exec "$LAB" "$@"; }
{
  echo "== listening TCP sockets in the lab host (ss -ltnp)"
  lab ss -ltnp
  echo "== beyond loopback (not 127.0.0.1 / [::1]):"
  lab ss -ltnpH | awk '$4 !~ /^(127\.0\.0\.1|\[::1\]):/' 
  echo "== secret files"
  lab sh -c 'stat -c "%a %U:%G %n" /etc/multillm/models/*.env /etc/litellm-gateway/secrets.env'
} | tee "$OUT/summary.txt"
echo "== secrets in -vvv play output" | tee -a "$OUT/summary.txt"
ansible-playbook -vvv -i inventories/lab site.yml -e "multillm_hf_token=$TOKEN" > "$OUT/site-vvv-token.log" 2>&1 || echo "run with token failed rc=$?" | tee -a "$OUT/summary.txt"
lab sh -c "grep -c '^HF_TOKEN=\|^HUGGING_FACE_HUB_TOKEN=' /etc/multillm/models/*.env" | sed 's/^/token lines in env files during run 1: /' | tee -a "$OUT/summary.txt" || true
ansible-playbook -vvv -i inventories/lab site.yml > "$OUT/site-vvv.log" 2>&1 || echo "restore run failed rc=$?" | tee -a "$OUT/summary.txt"
for f in site-vvv-token.log site-vvv.log; do
  echo "$f: $(wc -l < "$OUT/$f") lines; master key: $(grep -c -- "$KEY" "$OUT/$f" || true); dummy HF token: $(grep -c -- "$TOKEN" "$OUT/$f" || true); recap: $(grep -E '^multillm-lab +:' "$OUT/$f" | tr -s ' ')" | tee -a "$OUT/summary.txt"
done
echo "journal of the lab host, master key: $(lab journalctl --no-pager | grep -c -- "$KEY" || true); dummy HF token: $(lab journalctl --no-pager | grep -c -- "$TOKEN" || true)" | tee -a "$OUT/summary.txt"
# the logs hold no secret (counted above) but are large (~400 KB): keep the counts, a head and the recap
for f in site-vvv-token.log site-vvv.log; do head -c 20000 "$OUT/$f" > "$OUT/$f.head"; grep -E "^(PLAY RECAP|multillm-lab +:)" "$OUT/$f" >> "$OUT/$f.head"; rm "$OUT/$f"; done
echo "== systemd-analyze security" | tee -a "$OUT/summary.txt"
for u in litellm-gateway.service $(lab systemctl list-units --plain --no-legend 'multillm-model-*' | awk '{print $1}'); do
  lab systemd-analyze security --no-pager "$u" > "$OUT/analyze-$u.txt" 2>&1 || true
  echo "$u: $(grep -i 'overall exposure' "$OUT/analyze-$u.txt")" | tee -a "$OUT/summary.txt"
done
