"""Every role's argument specs and defaults/main.yml say the same (issue 13.8): a default
documented in meta/argument_specs.yml equals the one the role really uses (a templated one
as the same template, or without a `default:`), and every default is documented. The Python
contract's defaults equal the roles' too."""

import pathlib
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROLES = sorted(p.parent.parent for p in ROOT.glob("roles/*/meta/argument_specs.yml")
               if (p.parent.parent / "defaults" / "main.yml").exists())

if str(ROOT / "collections") not in sys.path:
    sys.path.insert(0, str(ROOT / "collections"))


def load(path):
    with open(path) as f:
        return yaml.safe_load(f) or {}


def templated(value):
    return isinstance(value, str) and "{{" in value


def drifts(options, defaults, where):
    """Messages for every option whose documented default differs from the real one."""
    out = []
    for name, spec in sorted(options.items()):
        here = "%s.%s" % (where, name) if where else name
        if name not in defaults:
            if "default" in spec and where == "":
                out.append("%s: documented default %r, but defaults/main.yml does not set it" % (here, spec["default"]))
            continue
        real = defaults[name]
        if templated(real):
            # Documented as the template itself, or without a default (and said in words).
            if "default" in spec and spec["default"] != real:
                out.append("%s: documented default %r, but the real one is the template %r" % (here, spec["default"], real))
            continue
        if spec.get("options") and isinstance(real, dict):
            out.extend(drifts(spec["options"], real, here))
            continue
        if "default" not in spec:
            out.append("%s: defaults/main.yml sets %r, the argument specs document no default" % (here, real))
        elif spec["default"] != real or type(spec["default"]) is bool and type(real) is not bool:
            out.append("%s: documented default %r differs from defaults/main.yml %r" % (here, spec["default"], real))
    return out


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_argument_spec_defaults_equal_the_role_defaults(role):
    specs = load(role / "meta" / "argument_specs.yml")["argument_specs"]
    defaults = load(role / "defaults" / "main.yml")
    problems, documented = [], set()
    for entry, spec in sorted(specs.items()):
        options = spec.get("options") or {}
        documented |= set(options)
        problems += ["%s: %s" % (entry, p) for p in drifts(options, defaults, "")]
    undocumented = sorted(set(defaults) - documented)
    problems += ["%s: set in defaults/main.yml, missing from the argument specs" % n for n in undocumented]
    assert problems == [], "roles/%s:\n" % role.name + "\n".join(problems)


def test_there_are_roles_to_compare():
    assert {"multillm", "model_stack"} <= {r.name for r in ROLES}


def test_the_python_contract_defaults_equal_the_roles():
    from ansible_collections.llmops.multillm.plugins.module_utils import _contract
    for role, python in (("multillm", _contract.CONTRACT_DEFAULTS), ("model_stack", _contract.MODEL_STACK_DEFAULTS)):
        defaults = load(ROOT / "roles" / role / "defaults" / "main.yml")
        differ = {k: (v, defaults.get(k, "<missing>")) for k, v in python.items() if defaults.get(k, "<missing>") != v}
        assert differ == {}, "%s: Python default vs defaults/main.yml: %s" % (role, differ)


def test_the_contract_role_documents_every_model_key_the_contract_knows():
    from ansible_collections.llmops.multillm.plugins.module_utils import _contract
    specs = load(ROOT / "roles" / "multillm" / "meta" / "argument_specs.yml")["argument_specs"]
    documented = set(specs["main"]["options"]["multillm_models"]["options"])
    # The role's argument validation refuses a model key it does not list.
    assert documented == set(_contract.MODEL_KEYS_REQUIRED + _contract.MODEL_KEYS_OPTIONAL)
