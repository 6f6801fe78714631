"""The adversarial set (tests/preflight/adversarial/cases.yml) through the real preflight.

Each broken inventory must fail on exactly the hosts its case names, each with exactly the
rule ids it lists; each unusual-but-valid one must pass. The messages the playbook prints
must be the ones plugins/module_utils/_contract.py gives for the same variables, so the
contract document (generated from the same function, see test_contract_doc.py) shows what
a user sees.
"""

import concurrent.futures
import copy
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
PREFLIGHT = ROOT / "playbooks" / "preflight.yml"
CASES_FILE = pathlib.Path(__file__).resolve().parent / "adversarial" / "cases.yml"
DATA = yaml.safe_load(CASES_FILE.read_text())
CASES = DATA["cases"]
RULE_ID_RE = re.compile(r"\[([a-z0-9-]+)\]\Z")
GATEWAY_VARS = ("litellm_gateway_port", "litellm_gateway_bind_address", "litellm_gateway_master_key",
                "litellm_gateway_version", "litellm_gateway_extra_env")

sys.path.insert(0, str(ROOT / "collections"))
from ansible_collections.llmops.multillm.plugins.module_utils import _contract  # noqa: E402


def merged(case):
    """A case of one host `h` in both groups runs with the other such cases in one inventory,
    its host named after the case: each is its own machine and its own gateway's only backend."""
    return sorted(case.get("hosts") or {}) == ["h"] and "gpu" not in case and "gateway" not in case


def host_name(case, name):
    return case["id"] if merged(case) else name


def host_vars(case, n0=0):
    """host -> its variables, as the inventory of the case sets them."""
    out = {}
    for n, (name, spec) in enumerate(sorted((case.get("hosts") or {}).items()), n0):
        name = host_name(case, name)
        spec = dict(spec or {})
        hv = copy.deepcopy(DATA["base"])
        # Documentation addresses (RFC 5737): nobody answers there.
        hv["ansible_host"] = "%s.%d" % (("192.0.2", "198.51.100", "203.0.113")[n // 250], n % 250 + 1)
        if merged(case):
            hv["litellm_gateway_backend_hosts"] = [name]
        hv.update(spec.pop("vars", None) or {})
        for i in (0, 1):
            for key, value in (spec.pop("model%d" % i, None) or {}).items():
                if value is None:
                    hv["multillm_models"][i].pop(key, None)
                else:
                    hv["multillm_models"][i][key] = value
        hv.update(spec)
        out[name] = hv
    return out


def groups(case):
    names = sorted(host_name(case, h) for h in case.get("hosts") or {})
    return case.get("gpu", names), case.get("gateway", names)


def inventory(cases):
    hosts, gpu, gateway = {}, [], []
    for case in cases:
        hosts.update(host_vars(case, len(hosts)))
        gpu += groups(case)[0]
        gateway += groups(case)[1]
    inv = {"all": {"hosts": hosts}, "multillm_gpu_hosts": {"hosts": dict((h, None) for h in gpu)}}
    if gateway:
        inv["multillm_gateway"] = {"hosts": dict((h, None) for h in gateway)}
    return inv


def contract_messages(case):
    """What the contract says about the case, computed in Python as preflight.yml collects it."""
    hosts = host_vars(case)
    gpu, gateway = groups(case)
    collected = {}
    for name, hv in hosts.items():
        contract = dict((k, v) for k, v in hv.items() if k.startswith("multillm_"))
        if name in gateway:
            contract.update((k, hv[k]) for k in GATEWAY_VARS if k in hv)
        collected[name] = {
            "contract": contract,
            "model_stack": dict((k, v) for k, v in hv.items() if k.startswith("model_stack_")),
            "machine": {"address": hv.get("ansible_host", name), "port": hv.get("ansible_port", ""),
                        "connection": hv.get("ansible_connection", "ssh")},
            "backends": hv.get("litellm_gateway_backend_hosts", gpu),
        }
    return _contract.preflight_errors(collected, gpu, gateway)


def run_cases(cases, tmp):
    path = tmp / ("%s.yml" % cases[0]["id"])
    path.write_text(yaml.safe_dump(inventory(cases), allow_unicode=True))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
               ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(["ansible-playbook", "-i", str(path), str(PREFLIGHT)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    return proc


def failures_of(proc):
    result = json.loads(proc.stdout[proc.stdout.index("{"):])
    failures = {}
    for play in result["plays"]:
        for task in play["tasks"]:
            for host, res in task["hosts"].items():
                if res.get("failed") or res.get("unreachable"):
                    msg = res.get("msg")
                    failures.setdefault(host, []).extend(msg if isinstance(msg, list) else [str(msg)])
    return failures, result["stats"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("adversarial")
    units = [[c for c in CASES if merged(c)]] + [[c] for c in CASES if not merged(c)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        procs = list(pool.map(lambda u: run_cases(u, tmp), units))
    return dict((c["id"], p) for unit, p in zip(units, procs) for c in unit)


def test_the_set_holds_fifty_broken_and_five_valid_inventories():
    broken = [c for c in CASES if c.get("expect")]
    valid = [c for c in CASES if not c.get("expect")]
    assert len(broken) >= 50 and len(valid) >= 5
    assert len(set(c["id"] for c in CASES)) == len(CASES)


def test_every_rule_has_a_broken_inventory():
    covered = set(r for c in CASES for ids in (c.get("expect") or {}).values() for r in ids)
    assert covered == set(_contract.RULE_IDS)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case(runs, case):
    proc = runs[case["id"]]
    failures, stats = failures_of(proc)
    # Nothing is contacted: every host's address is unreachable documentation space.
    assert all(s.get("unreachable", 0) == 0 for s in stats.values())
    expect = dict((host_name(case, h), rules) for h, rules in (case.get("expect") or {}).items())
    mine = set(groups(case)[0] + groups(case)[1] + ["localhost"])
    failures = dict((h, m) for h, m in failures.items() if h in mine)
    if not merged(case):
        assert (proc.returncode != 0) is bool(expect), proc.stdout[-3000:] + proc.stderr[-2000:]
    assert sorted(failures) == sorted(expect), failures
    python = contract_messages(case)
    for host, rules in expect.items():
        header, errors = failures[host][0], failures[host][1:]
        if host != "localhost":
            assert header == "The multillm inventory is broken on %s (%d errors):" % (host, len(errors))
            # The playbook says what the contract says, message for message.
            assert errors == python[host]
            assert all(e.startswith("host %s: " % host) for e in errors)
        else:
            errors = failures[host]
        ids = [RULE_ID_RE.search(e).group(1) for e in errors]
        assert sorted(ids) == sorted(rules), errors


def test_no_secret_of_the_set_reaches_the_output(runs):
    secrets = ["hf_adversarialtoken000", "hf_listinenvsecret0000", "hf_unknownfieldsecret00",
               "sk-adversarial-base-key-0001", "sk-abc def ghij klmno", "hf_abc def", "sk-0123456789abcd\\\"ef",
               "sk-AbC+/=0123456789_~.-xyz", "hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345"]
    for case_id, proc in runs.items():
        for secret in secrets:
            assert secret not in proc.stdout + proc.stderr, (case_id, secret)
