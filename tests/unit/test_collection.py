"""The collection as users get it: FQCN resolution from a clone, the Galaxy tarball."""

import os
import pathlib
import subprocess
import tarfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
ENV = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")


def run(*cmd, cwd=ROOT):
    return subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)


def test_site_yml_resolves_the_collection_from_the_clone():
    proc = run("ansible-playbook", "site.yml", "-i", "inventories/h100", "--syntax-check")
    assert proc.returncode == 0, proc.stderr
    link = ROOT / "collections" / "ansible_collections" / "llmops" / "multillm"
    assert link.is_symlink() and link.resolve() == ROOT


def test_galaxy_tarball_holds_no_development_artefacts(tmp_path):
    proc = run("ansible-galaxy", "collection", "build", "--output-path", str(tmp_path), ".")
    assert proc.returncode == 0, proc.stderr
    (tarball,) = tmp_path.glob("llmops-multillm-*.tar.gz")
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    forbidden = (".venv", ".git", "collections", "molecule", "tests", "images", "scripts", "benchmarks", ".cache")
    leaked = [n for n in names if n.split("/")[0] in forbidden or "__pycache__" in n or n.endswith(".pyc")]
    assert leaked == []
    assert not any(n.endswith("vault-pass.example") for n in names)
    for needed in ("MANIFEST.json", "plugins/filter/multillm_contract_errors.py", "roles/multillm/tasks/main.yml",
                   "playbooks/site.yml", "meta/runtime.yml", "inventories/h100/hosts.yml"):
        assert needed in names, needed
