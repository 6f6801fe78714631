#!/usr/bin/env bash
# The controller-side tests on the oldest ansible-core the collection claims to support
# (meta/runtime.yml's requires_ansible), in a second, small virtualenv: every task file of every
# role parsed, every playbook syntax-checked, then the unit tests and the offline preflight tests.
# The collection dependencies (community.docker, community.general, ansible.posix for the tests'
# json callback) come from the main virtualenv's `ansible` package, linked in, not installed twice.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
main_venv=${VENV:-.venv}
floor_venv=${FLOOR_VENV:-.cache/floor-venv}  # .cache/: ignored by git and the linters
floor=$(sed -n 's/^requires_ansible: *["'\'']>=\([0-9.]*\)["'\''].*/\1/p' meta/runtime.yml)
[[ -n $floor ]] || { echo "floor: no requires_ansible \">=X.Y.Z\" in meta/runtime.yml" >&2; exit 2; }
# The test tools at the same versions as the main toolchain (docker brings requests, which
# community.docker's modules need in the tests that drive a fake Docker engine).
pins=$(grep -E '^(pytest|nvidia-ml-py|docker)==' requirements-dev.txt | tr '\n' ' ')

want="ansible-core==$floor $pins"
if [[ ! -x $floor_venv/bin/python || "$(cat "$floor_venv/.stamp" 2>/dev/null)" != "$want" ]]; then
  rm -rf "$floor_venv"
  python3 -m venv "$floor_venv"
  # shellcheck disable=SC2086  # the pins are separate words
  "$floor_venv/bin/pip" install --quiet $want
  echo "$want" >"$floor_venv/.stamp"
fi
site=$("$floor_venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
main_site=$("$main_venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
ln -sfn "$main_site/ansible_collections" "$site/ansible_collections"

export PATH=$root/$floor_venv/bin:$PATH
export ANSIBLE_CONFIG=$root/ansible.cfg ANSIBLE_COLLECTIONS_PATH=$root/collections
version=$(python -c 'from ansible.release import __version__; print(__version__)')
echo "floor: ansible-core $version, $(command -v ansible-playbook) (meta/runtime.yml requires_ansible >=$floor)"
[[ $version == "$floor" ]] || { echo "floor: expected ansible-core $floor, found $version" >&2; exit 1; }

# Task files are loaded only when a play reaches them: import them all statically, so a
# keyword or module option the floor does not know fails here, not on a host.
work=$(mktemp -d /tmp/multillm-floor.XXXXXX)
trap 'rm -rf "$work"' EXIT
{
  printf -- '---\n- name: Parse every task and handler file of every role\n  hosts: localhost\n  gather_facts: false\n  tasks:\n'
  for f in roles/*/tasks/*.yml; do printf '    - ansible.builtin.import_tasks: %s\n' "$root/$f"; done
  printf '  handlers:\n'
  for f in roles/*/handlers/*.yml; do printf '    - ansible.builtin.import_tasks: %s\n' "$root/$f"; done
} >"$work/parse.yml"
ansible-playbook --syntax-check -i localhost, "$work/parse.yml" >"$work/parse.log" 2>&1 ||
  { cat "$work/parse.log" >&2; echo "floor: a role's task file does not load on ansible-core $floor" >&2; exit 1; }
echo "floor: $(grep -c import_tasks "$work/parse.yml") task and handler files load"
for p in playbooks/*.yml; do
  ansible-playbook --syntax-check -i inventories/lab "$p" >"$work/syntax.log" 2>&1 ||
    { cat "$work/syntax.log" >&2; echo "floor: $p does not load on ansible-core $floor" >&2; exit 1; }
done
echo "floor: playbooks/*.yml pass --syntax-check"

# The tests that use ansible-core (they import it or run an ansible command). The others test
# the roles' helper scripts, which run under the managed host's python3 whatever ansible-core
# the controller has: `make unit` runs them, here they would only cost time.
mapfile -t tests < <(grep -rlE --include='test_*.py' \
  'ansible-(playbook|galaxy|doc)|"ansible"|(from|import) ansible|ansible_collections|run_module|run_preflight' \
  tests/unit tests/preflight | sort)
echo "floor: ${#tests[@]} test files use ansible-core"
python -m pytest -q -p no:cacheprovider "${tests[@]}"
