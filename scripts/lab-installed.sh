#!/usr/bin/env bash
# The lab run as a user of the Galaxy tarball runs it (`make lab-installed`): build the collection,
# install it into an empty collections path, and run `llmops.multillm.preflight` and
# `llmops.multillm.site` by FQCN from a directory outside the clone, with a copy of the lab
# inventory and ANSIBLE_COLLECTIONS_PATH naming ONLY that path (no ansible.cfg: the clone's
# `collections/` link back to the working tree is never on the path). Then one real completion
# through the gateway (scripts/lab-usage.sh).
#
# The collection's dependencies (community.docker, community.general) resolve from the `ansible`
# package of the virtualenv, as the README's Galaxy path says (`ansible-galaxy collection install`
# finds them installed and fetches nothing). The lab host itself (playbooks/lab_host.yml, not
# shipped) and the image archive are made as `make lab` makes them.
#   scripts/lab-installed.sh            # the work directory is removed at the end
#   KEEP=1 scripts/lab-installed.sh     # keep it (its path is printed)
set -euo pipefail
cd "$(dirname "$0")/.."
clone=$PWD
# The development virtualenv (`make venv`): ansible-core and the `ansible` package's collections.
[[ ! -d .venv/bin ]] || export PATH=$clone/.venv/bin:$PATH
stage=$clone/scripts/stage.sh

work=$(mktemp -d /tmp/multillm-installed.XXXXXX)
if [[ -z ${KEEP:-} ]]; then
  trap 'rm -rf "$work"' EXIT
fi
echo "work directory: $work"

images/export.sh multillm-vllm-cpu:latest .cache/images
$stage "lab host" ansible-playbook playbooks/lab_host.yml

# From here on: a user's environment, outside the clone.
# - no ANSIBLE_* setting of the Makefile (ANSIBLE_CONFIG names the clone's ansible.cfg);
# - the working directory holds no ansible.cfg, and neither ~/.ansible.cfg nor
#   /etc/ansible/ansible.cfg may exist (checked), so the collections path is only $work/collections;
# - pipelining on, as the clone's ansible.cfg has it: each module in one `docker exec`
#   (a user's setting, not a collection path).
for var in $(compgen -e | grep '^ANSIBLE_' || true); do unset "$var"; done
for cfg in "$HOME/.ansible.cfg" /etc/ansible/ansible.cfg; do
  [[ ! -e $cfg ]] || {
    echo "lab-installed: $cfg exists and could put other collections on the path; move it away" >&2
    exit 1
  }
done
export ANSIBLE_COLLECTIONS_PATH=$work/collections
export ANSIBLE_PIPELINING=true
export ANSIBLE_NOCOLOR=1
# The lab inventory finds the model-server image archive here (default: next to the clone's playbooks).
export MULTILLM_IMAGE_DIR=$clone/.cache/images
cd "$work"

$stage "build" ansible-galaxy collection build --output-path "$work/build" "$clone"
tarball=$(ls "$work"/build/llmops-multillm-*.tar.gz)
$stage "install" ansible-galaxy collection install "$tarball" -p "$work/collections"

# Proof of what runs: the config's collections path, and where llmops.multillm is found.
ansible-config dump --only-changed | grep -E '^(COLLECTIONS_PATHS|CONFIG_FILE)' || true
found=$(ansible-galaxy collection list llmops.multillm --format json)
python3 - "$found" "$work/collections/ansible_collections" <<'PY'
import json, sys
found = json.loads(sys.argv[1])
if list(found) != [sys.argv[2]]:
    sys.exit("lab-installed: llmops.multillm found in %s, expected only %s" % (list(found), sys.argv[2]))
print("llmops.multillm %s, only in %s" % (found[sys.argv[2]]["llmops.multillm"]["version"], sys.argv[2]))
PY
for dep in community.docker community.general; do
  ansible-galaxy collection list "$dep" --format json |
    python3 -c 'import json, sys; d = json.load(sys.stdin); print(sys.argv[1], "from", *d)' "$dep"
done

# The lab inventory is not shipped (it is the clone's): a copy, outside the clone.
cp -r "$clone/inventories/lab" "$work/inventory"

$stage "preflight (FQCN)" ansible-playbook llmops.multillm.preflight -i "$work/inventory"
$stage "site (FQCN)" ansible-playbook llmops.multillm.site -i "$work/inventory"

cd "$clone"
scripts/lab-usage.sh
