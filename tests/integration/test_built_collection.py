"""The collection as users get it: the Galaxy tarball, installed into an empty collections path
and run by FQCN from outside the clone, and the execution environment's build context.

Needs the development virtualenv (ansible-galaxy, ansible-builder, bindep on PATH); `make
integration` runs it. No network: the collection's dependencies resolve from the `ansible`
package installed there, as they would from Galaxy.
"""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text())
# What a user's tarball may hold at its top level; anything new must be added here on purpose.
SHIPPED_TOP = {"MANIFEST.json", "FILES.json", "README.md", "LICENSE", "CHANGELOG.md", "changelogs", "docs",
               "inventories", "meta", "playbooks", "plugins", "roles", "requirements.txt", "requirements.yml",
               "bindep.txt"}
DEVELOPMENT = ("tests/", "molecule/", "images/", "scripts/", "benchmarks/", ".ci/", ".config/", "collections/",
               "build/", "Makefile", "ansible.cfg", "site.yml", "requirements-dev.txt", "execution-environment.yml",
               "playbooks/lab_host.yml", "inventories/lab/", "docs/development.md", "docs/benchmarks.md",
               ".gitignore", ".yamllint", ".ansible-lint")  # .ansible-lint-ignore too


def user_env(**extra):
    """The environment of a user outside the clone: none of the Makefile's Ansible settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_HOST_KEY_CHECKING="false", **extra)
    return env


def run(cmd, cwd, env, timeout=300):
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    proc = run(["ansible-galaxy", "collection", "build", "--output-path", str(out), str(ROOT)], out, user_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (path,) = out.glob("llmops-multillm-*.tar.gz")
    assert path.name == "llmops-multillm-%s.tar.gz" % GALAXY["version"]
    return path


@pytest.fixture(scope="module")
def installed(tarball, tmp_path_factory):
    """The tarball installed into an empty collections path, as `ansible-galaxy collection install` does."""
    home = tmp_path_factory.mktemp("user")
    dest = home / "collections"
    env = user_env(ANSIBLE_COLLECTIONS_PATH=str(dest))
    proc = run(["ansible-galaxy", "collection", "install", str(tarball), "-p", str(dest)], home, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return home, dest, env


def names_in(tarball):
    with tarfile.open(tarball) as tar:
        return [m.name + ("/" if m.isdir() else "") for m in tar.getmembers()]


def test_the_tarball_ships_what_users_run(tarball):
    names = names_in(tarball)
    top = {n.split("/")[0] for n in names}
    assert top <= SHIPPED_TOP, sorted(top - SHIPPED_TOP)
    roles = sorted(p.parent.parent.name for p in (ROOT / "roles").glob("*/tasks/main.yml"))
    needed = ["LICENSE", "meta/runtime.yml", "meta/execution-environment.yml", "requirements.txt", "bindep.txt",
              "CHANGELOG.md", "changelogs/changelog.yaml", "plugins/modules/vram_check.py",
              "plugins/filter/multillm.py", "plugins/filter/multillm_contract_errors.yml", "inventories/h100/hosts.yml"]
    playbooks = ("site", "preflight", "gpu_host", "models", "gateway", "verify", "reprovision")
    needed += ["playbooks/%s.yml" % p for p in playbooks]
    needed += ["roles/%s/tasks/main.yml" % r for r in roles]
    assert [n for n in needed if n not in names] == []


def test_the_tarball_holds_no_development_tooling_or_artefact(tarball):
    names = names_in(tarball)
    leaked = [n for n in names if n.startswith(DEVELOPMENT) or "__pycache__" in n or n.endswith((".pyc", ".tar.gz"))
              or n.endswith("vault-pass.example") or n.startswith("changelogs/.plugin-cache")]
    assert leaked == []


def test_the_manifest_declares_the_license_and_the_dependencies(tarball):
    with tarfile.open(tarball) as tar:
        info = json.load(tar.extractfile("MANIFEST.json"))["collection_info"]
    assert info["license"] == ["Apache-2.0"]
    assert "Apache License" in (ROOT / "LICENSE").read_text().split("\n", 3)[1]
    assert info["dependencies"] == GALAXY["dependencies"]
    # No URL that points nowhere: a field is left out until the project has a public home.
    assert not any("example.invalid" in str(v) for v in info.values())


def test_the_installed_collection_runs_its_preflight_by_fqcn_from_outside_the_clone(installed):
    home, dest, env = installed
    listing = run(["ansible-galaxy", "collection", "list", "llmops.multillm", "--format", "json"], home, env)
    assert listing.returncode == 0, listing.stderr
    found = json.loads(listing.stdout)
    assert list(found) == [str(dest / "ansible_collections")], found
    proc = run(["ansible-playbook", "llmops.multillm.preflight", "-i", str(ROOT / "inventories" / "lab")], home, env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert re.search(r"multillm-lab +: ok=\d+ +changed=0 +unreachable=0 +failed=0", proc.stdout), proc.stdout[-2000:]


def test_the_installed_preflight_refuses_a_bad_inventory(installed):
    home, _, env = installed
    lab = yaml.safe_load((ROOT / "inventories" / "lab" / "hosts.yml").read_text())
    group_vars = ROOT / "inventories" / "lab" / "group_vars"
    inv = home / "bad-inventory"
    shutil.copytree(group_vars, inv / "group_vars", dirs_exist_ok=True)
    (inv / "hosts.yml").write_text(yaml.safe_dump(lab))
    (inv / "host_vars").mkdir(exist_ok=True)
    host = sorted(_hosts(lab))[0]
    (inv / "host_vars" / ("%s.yml" % host)).write_text(yaml.safe_dump({"multillm_vram_strategy": "elastic"}))
    proc = run(["ansible-playbook", "llmops.multillm.preflight", "-i", str(inv)], home, env)
    assert proc.returncode != 0
    assert "multillm_vram_strategy" in proc.stdout + proc.stderr


def _hosts(group):
    for key, value in (group or {}).items():
        if key == "hosts":
            yield from (value or {})
        elif isinstance(value, dict):
            yield from _hosts(value)


def test_the_installed_site_playbook_loads_by_fqcn(installed):
    home, _, env = installed
    proc = run(["ansible-playbook", "llmops.multillm.site", "-i", str(ROOT / "inventories" / "lab"), "--syntax-check"],
               home, env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def dev_pin(name):
    (line,) = [x for x in (ROOT / "requirements-dev.txt").read_text().splitlines() if x.startswith(name + "==")]
    return line


@pytest.fixture(scope="module")
def ee_context(tarball, tmp_path_factory):
    """`ansible-builder create` on the repository's definition, with the tarball where `make build` puts it."""
    work = tmp_path_factory.mktemp("ee")
    for name in ("execution-environment.yml", "requirements.yml"):
        shutil.copy(ROOT / name, work / name)
    (work / "build").mkdir()
    shutil.copy(tarball, work / "build" / tarball.name)
    proc = run(["ansible-builder", "create", "-f", str(work / "execution-environment.yml"), "-c",
                str(work / "context"), "--output-filename", "Containerfile"], work, user_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return work / "context"


def test_the_ee_context_installs_the_tested_ansible_core_the_tarball_and_the_declared_collections(ee_context, tarball):
    containerfile = (ee_context / "Containerfile").read_text()
    refs = re.search(r'^ARG ANSIBLE_INSTALL_REFS="([^"]*)"', containerfile, re.M).group(1).split()
    assert dev_pin("ansible-core") in refs
    assert (ee_context / "_build" / "collections" / tarball.name).is_file()
    assert "/build/collections/llmops-multillm-*.tar.gz" in containerfile
    galaxy_reqs = yaml.safe_load((ee_context / "_build" / "requirements.yml").read_text())
    assert {c["name"]: c["version"] for c in galaxy_reqs["collections"]} == GALAXY["dependencies"]
    # No user-level Python or system list: those come from the collections' own metadata.
    assert not (ee_context / "_build" / "requirements.txt").exists()


def test_the_ee_gets_the_collections_runtime_needs_and_none_of_the_dev_toolchain(ee_context, installed, tmp_path):
    _, dest, _ = installed
    # The collections as the EE's galaxy stage leaves them: ours from the tarball, the
    # dependencies from the `ansible` package (what Galaxy would install).
    coll = tmp_path / "collections"
    shutil.copytree(dest, coll, symlinks=True)
    import ansible_collections  # the `ansible` package's collections, in this interpreter's site-packages
    site = pathlib.Path(list(ansible_collections.__path__)[-1])
    for dep in GALAXY["dependencies"]:
        ns, name = dep.split(".")
        (coll / "ansible_collections" / ns).mkdir(exist_ok=True)
        os.symlink(site / ns / name, coll / "ansible_collections" / ns / name)
    pip_out, bindep_out = tmp_path / "requirements.txt", tmp_path / "bindep.txt"
    proc = run([sys.executable, str(ee_context / "_build" / "scripts" / "introspect.py"), "introspect", str(coll),
                "--write-pip", str(pip_out), "--write-bindep", str(bindep_out)], tmp_path, user_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pip_lines = [x for x in pip_out.read_text().splitlines() if x.strip() and not x.startswith("#")]
    packages = {re.split(r"[<>=!\[ ;#]", x, maxsplit=1)[0].lower() for x in pip_lines}
    assert not packages & {"molecule", "molecule-plugins", "pytest", "pytest-testinfra", "openai", "jinja2",
                           "ansible-lint", "yamllint", "antsibull-changelog", "ansible-builder", "ansible"}
    assert not [x for x in pip_lines if "llmops.multillm" in x]  # the collection needs no Python package
    assert "requests" in packages  # community.docker's own, introspected the same way
    # Our bindep lines reach the image, but bindep installs only the unprofiled ones there.
    assert "llmops.multillm" in bindep_out.read_text()
    bindep = shutil.which("bindep", path=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    ee = run([bindep, "-f", str(bindep_out), "-l", "newline"], tmp_path, user_env())
    managed = run([bindep, "-f", str(ROOT / "bindep.txt"), "-l", "newline", "managed"], tmp_path, user_env())
    assert "openssh-client" in ee.stdout.split() and "systemd" not in ee.stdout.split(), ee.stdout + ee.stderr
    assert {"python3", "systemd", "sudo"} <= set(managed.stdout.split()), managed.stdout + managed.stderr


SHIPPED_PLAYBOOKS = sorted(p.stem for p in (ROOT / "playbooks").glob("*.yml") if p.name != "lab_host.yml")


@pytest.mark.parametrize("playbook", SHIPPED_PLAYBOOKS)
def test_every_shipped_playbook_resolves_by_fqcn_from_the_installed_collection(installed, tarball, playbook):
    """Each playbook in the tarball, named by FQCN outside the clone: its plays, roles and task files
    (static imports included) resolve against the lab inventory (--list-tasks parses them all)."""
    assert "playbooks/%s.yml" % playbook in names_in(tarball)
    home, _, env = installed
    proc = run(["ansible-playbook", "llmops.multillm." + playbook, "-i", str(ROOT / "inventories" / "lab"),
                "--list-tasks"], home, env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "play #1 (" in proc.stdout and "tasks:" in proc.stdout, proc.stdout[-2000:]
    assert "[WARNING]: Could not match supplied host pattern" not in proc.stderr, proc.stderr[-2000:]
