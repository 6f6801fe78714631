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
# The collections galaxy.yml depends on, beside the copy (ansible-test finds them in the same
# collection root): image_pull's documentation and imports use community.docker's.
main_site=$("$root/${VENV:-.venv}/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mkdir -p "$work/ansible_collections/community"
cp -a "$main_site/ansible_collections/community/docker" "$work/ansible_collections/community/docker"
cd "$dest"
# ansible-test bootstraps pip into each sanity venv with a get-pip script from
# ci-files.testing.ansible.com, which is unreachable here. Stand in for it: the
# stdlib's ensurepip, then pip installs the exact packages ansible-test asks for
# (pip==24.2 ...) from PyPI. Only written when no real script is cached.
for v in 24_2; do  # the pip version ansible-test 2.19 pins
  cached=~/.ansible/test/cache/get_pip_$v.py
  # a real get-pip script, when someone cached one, wins over the stand-in
  [[ -s $cached ]] && ! grep -q '^"""Stand-in for get-pip' "$cached" && continue
  mkdir -p "$(dirname "$cached")"
  cat >"$cached" <<'PY'
"""Stand-in for get-pip.py: ensurepip, then `pip install` of the arguments."""
import ensurepip
import os
import subprocess
import sys

env = dict(os.environ)  # ensurepip blanks pip's configuration (PIP_CONFIG_FILE=/dev/null) in os.environ
ensurepip.bootstrap(upgrade=True)
# --no-setuptools/--no-wheel are get-pip's own flags; pip install has no such options.
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + args, env=env))
PY
done
# Tests that need a registry, network or tools we do not ship are left out and named here.
#   shellcheck: not installed on the CI image (our shell scripts are linted by bash -n below)
skip=(--skip-test shellcheck)
# pylint and shebang encode Ansible's conventions for the Python that Ansible itself loads
# (modules keep #!/usr/bin/python, no `_` names, ...). They run on plugins/ only: the rest is
# standalone Python (tests, benchmarks, image and role helper scripts) that runs as python3 on
# hosts without a `python`, and keeps every other sanity test (compile, pep8, import, ...).
common=(--venv --python "${SANITY_PYTHON:-3.11}" --color no)
rc=0
ansible-test sanity "${common[@]}" "${skip[@]}" --skip-test pylint --skip-test shebang "$@" || rc=$?
ansible-test sanity "${common[@]}" --test pylint --test shebang "$@" plugins/ || rc=$?
for f in $(git -C "$root" ls-files '*.sh' .ci/run); do bash -n "$root/$f" || rc=$?; done
exit $rc
