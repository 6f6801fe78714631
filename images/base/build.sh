#!/usr/bin/env bash
# Build the systemd base image without a registry: debootstrap Debian 12, then
# `docker import`. The tag is a hash of this recipe, so an image is rebuilt only
# when the recipe changes; `multillm-base:bookworm` always names the current one.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
name=${MULTILLM_BASE_IMAGE:-multillm-base}
suite=bookworm
recipe_hash=$(cat "$here/build.sh" "$here/packages.txt" | sha256sum | cut -c1-12)
tag="$name:$suite-$recipe_hash"

if docker image inspect "$tag" >/dev/null 2>&1; then
  docker tag "$tag" "$name:$suite"
  echo "base image: $tag (cached)"
  exit 0
fi

mirror=${DEBIAN_MIRROR:-}
if [[ -z $mirror ]]; then
  # Take the mirror this machine already uses; fall back to Debian's CDN.
  mirror=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
    grep -v security | awk 'NR == 1 {print $2}' || true)
  [[ $mirror == http* ]] || mirror=http://deb.debian.org/debian
fi

pkgs=$(grep -vE '^\s*(#|$)' "$here/packages.txt" | paste -sd, -)
rootfs=$(mktemp -d /tmp/multillm-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT

echo "base image: debootstrap $suite from $mirror"
debootstrap --variant=minbase --include="$pkgs" "$suite" "$rootfs" "$mirror" >/tmp/multillm-debootstrap.log 2>&1 || {
  tail -n 40 /tmp/multillm-debootstrap.log >&2
  exit 1
}

# Units that make no sense in a container, and a clean machine-id per container.
for unit in systemd-remount-fs.service getty.target console-getty.service \
  systemd-logind.service systemd-udevd.service systemd-modules-load.service \
  sys-kernel-debug.mount sys-kernel-tracing.mount; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
: >"$rootfs/etc/machine-id"
# /tmp is a fresh tmpfs in every test container. Debian's tmp.conf empties it at
# boot ('D'), racing with the first task that uses it (apt-get update fails with
# "Unknown error executing apt-key" when its signature file vanishes).
echo 'd /tmp 1777 root root -' >"$rootfs/etc/tmpfiles.d/tmp.conf"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
# The mirror debootstrap used, so apt inside test hosts works as on a real host.
echo "deb $mirror $suite main" >"$rootfs/etc/apt/sources.list"

tar -C "$rootfs" -c . | docker import \
  --change 'ENV container=docker' \
  --change 'CMD ["/lib/systemd/systemd"]' \
  - "$tag" >/dev/null
docker tag "$tag" "$name:$suite"
echo "base image: $tag (built)"
