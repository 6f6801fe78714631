#!/usr/bin/env bash
# ansible-test wants the collection at .../ansible_collections/<ns>/<name>; run it
# on a copy of the tracked (and new, not ignored) files so no venv or cache leaks in.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/multillm-sanity.XXXXXX)
trap 'rm -rf "$work"' EXIT
dest=$work/ansible_collections/llmops/multillm
mkdir -p "$dest"
(cd "$root" && git ls-files -z --cached --others --exclude-standard | grep -zv '^collections/' |
  xargs -0 -I{} cp --parents -P {} "$dest"/)
cd "$dest"
# Tests that need a registry, network or tools we do not ship are left out and named here.
#   shellcheck: not installed on the CI image (our shell scripts are linted by bash -n below)
skip=(--skip-test shellcheck)
ansible-test sanity --venv --python "${SANITY_PYTHON:-3.11}" "${skip[@]}" --color no "$@"
for f in $(git -C "$root" ls-files '*.sh' .ci/run); do bash -n "$root/$f"; done
