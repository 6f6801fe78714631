#!/usr/bin/env bash
# Export a local image to an archive that roles can load on hosts without a
# registry (model_stack_image_archives). Re-exported only when the image changed.
#   images/export.sh IMAGE DIR   ->  DIR/<name>.tar
set -euo pipefail
image=$1
dir=$2
mkdir -p "$dir"
name=${image%%:*}
archive="$dir/${name##*/}.tar"
id=$(docker image inspect --format '{{.Id}}' "$image")
if [[ -f $archive && $(cat "$archive.id" 2>/dev/null) == "$id" ]]; then
  echo "image archive: $archive (current)"
  exit 0
fi
docker image save -o "$archive.tmp" "$image"
mv "$archive.tmp" "$archive"
echo "$id" >"$archive.id"
echo "image archive: $archive (exported)"
