#!/usr/bin/env bash
# The Molecule scenarios `make test` runs, in order: those listed in molecule/ORDER
# first, then any other scenario directory, so a new scenario is never forgotten.
cd "$(dirname "$0")/../molecule" || exit 1
listed=$(grep -vE '^\s*(#|$)' ORDER 2>/dev/null)
others=$(for d in */molecule.yml; do s=${d%/molecule.yml}; grep -qx "$s" <<<"$listed" || echo "$s"; done)
echo $listed $others
