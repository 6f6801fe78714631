"""The collection from a clone: FQCN resolution, what it declares (dependencies, the ansible-core
floor), where raw output goes. The built tarball: tests/integration/test_built_collection.py."""

import os
import pathlib
import re
import subprocess

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
ENV = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")


def run(*cmd, cwd=ROOT):
    return subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300, check=False)


def test_site_yml_resolves_the_collection_from_the_clone():
    proc = run("ansible-playbook", "site.yml", "-i", "inventories/h100", "--syntax-check")
    assert proc.returncode == 0, proc.stderr
    link = ROOT / "collections" / "ansible_collections" / "llmops" / "multillm"
    assert link.is_symlink() and link.resolve() == ROOT


def git(*args):
    return subprocess.run(("git",) + args, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


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


def used_collections():
    """Namespaces.names of the FQCNs the shipped content calls (not ansible.builtin, not itself)."""
    used = set()
    for folder in ("roles", "plugins", "playbooks"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".yml", ".yaml", ".py", ".j2") and path.is_file():
                used.update(re.findall(r"\b([a-z_]+\.[a-z_]+)\.[a-z_]+", path.read_text()))
    known = {c for c in used if c.split(".")[0] in ("community", "ansible", "containers", "kubernetes")}
    # ansible.<package>.<name>: ansible-core's own Python packages, imported by the plugins
    return known - {"ansible.builtin", "ansible.module_utils", "ansible.plugins", "ansible.errors",
                    "ansible.parsing", "ansible.template"}


def test_declared_collection_dependencies_are_exactly_the_used_ones():
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    requirements = yaml.safe_load((ROOT / "requirements.yml").read_text())
    declared = set(galaxy["dependencies"])
    assert declared == used_collections()
    assert {c["name"]: c["version"] for c in requirements["collections"]} == galaxy["dependencies"]


def version(text):
    return tuple(int(x) for x in text.split("."))


def test_the_ansible_core_floor_is_the_one_the_floor_stage_installs_and_no_role_asks_for_more():
    floor = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())["requires_ansible"]
    assert re.fullmatch(r">=\d+\.\d+\.\d+", floor), floor  # scripts/floor.sh installs exactly this release
    for meta in (ROOT / "roles").glob("*/meta/main.yml"):
        role_min = str(yaml.safe_load(meta.read_text())["galaxy_info"]["min_ansible_version"])
        assert version(role_min) <= version(floor[2:])[: len(version(role_min))], (meta, role_min, floor)


def test_the_docs_name_only_make_targets_that_exist():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.M))
    named = {}
    for path in git("ls-files", "*.md", "*.sh", "*.yml", "*.py", ".ci/run").stdout.split():
        if (ROOT / path).is_file():
            for target in re.findall(r"`make ([a-z][a-z-]*)", (ROOT / path).read_text()):
                named.setdefault(target, path)
    assert {t: p for t, p in named.items() if t not in targets} == {}
    assert re.search(r"^SCENARIO \?=\s*$", makefile, re.M)  # no default scenario: `make scenario` needs one named
