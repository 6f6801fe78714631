"""This scenario's fixtures come from tests/support/molecule_fixtures.py (shared by the GPU-host scenarios)."""
import os
import sys

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "tests", "support"))

from molecule_fixtures import recap, run_playbook  # noqa: E402,F401  pylint: disable=wrong-import-position
