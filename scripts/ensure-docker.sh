#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine: install the distribution's
# docker.io when no daemon binary exists, start dockerd when nothing answers.
# Used by `make lab`, `make test` and CI; safe to run again and again.
set -euo pipefail

log=${DOCKERD_LOG:-/var/log/multillm-dockerd.log}

if docker info >/dev/null 2>&1; then
  exit 0
fi

need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need_pkgs+=(debootstrap)
if ((${#need_pkgs[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "ensure-docker: need ${need_pkgs[*]} installed; run as root or install them first" >&2
    exit 1
  fi
  echo "ensure-docker: installing ${need_pkgs[*]} from the distribution"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${need_pkgs[@]}" ca-certificates iptables
fi

if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
  systemctl start docker || true
fi

if ! docker info >/dev/null 2>&1; then
  echo "ensure-docker: starting dockerd (log: $log)"
  nohup dockerd >"$log" 2>&1 &
fi

for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    echo "ensure-docker: engine $(docker version --format '{{.Server.Version}}') answers"
    exit 0
  fi
  sleep 1
done
echo "ensure-docker: dockerd did not answer within 60 s; last log lines:" >&2
tail -n 30 "$log" >&2 || true
exit 1
