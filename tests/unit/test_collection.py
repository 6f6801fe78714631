"""The collection as users get it: FQCN resolution from a clone, the Galaxy tarball."""

import os
import pathlib
import re
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


def git(*args):
    return subprocess.run(("git",) + args, cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_raw_benchmark_output_has_one_ignored_home_and_none_is_tracked():
    # Every benchmark writes under benchmarks/results/ (git-ignored); nothing raw is committed.
    assert git("check-ignore", "-q", "benchmarks/results/reliability/2026-12-04/gateway/client.jsonl").returncode == 0
    tracked = git("ls-files", "benchmarks").stdout.split()
    raw = [p for p in tracked if "/results/" in p or p.endswith((".jsonl", ".log", "journal.txt"))]
    assert raw == []
    scripts = [p for p in tracked if p.endswith((".sh", ".py"))]
    wrong = [p for p in scripts if re.search(r"benchmarks/(?!results/)[a-z_]+/results", (ROOT / p).read_text())]
    assert wrong == []


def test_no_file_hard_codes_a_package_index_address():
    hits = git("grep", "-n", "-i", "-E", r"python[h]osted\.org|pyp[i]\.org|/simpl[e]/", "--", ".").stdout
    assert hits == ""
