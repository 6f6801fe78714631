"""roles/litellm_gateway: the README's variable tables name exactly the role's variables
(defaults/main.yml and the options of meta/argument_specs.yml), so neither drifts alone."""

import os
import re

import yaml

ROLE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles", "litellm_gateway")


def load(*parts):
    with open(os.path.join(ROLE, *parts), encoding="utf-8") as f:
        return f.read()


def readme_variables():
    """First cells of the README's table rows; "`litellm_gateway_x` / `_y`" names x and y."""
    names = set()
    for line in load("README.md").splitlines():
        m = re.match(r"\| (`litellm_gateway_[^|]*)\|", line)
        if not m:
            continue
        for item in re.findall(r"`([a-z_]+)`", m.group(1)):
            names.add(item if item.startswith("litellm_gateway_") else "litellm_gateway" + item)
    return names


def spec_options():
    specs = yaml.safe_load(load("meta", "argument_specs.yml"))["argument_specs"]
    return {name for entry in specs.values() for name in entry.get("options", {})}


def test_readme_names_every_variable_and_no_other():
    defaults = set(yaml.safe_load(load("defaults", "main.yml")))
    documented = readme_variables()
    assert defaults - documented == set(), "in defaults/main.yml, not in the README"
    assert documented - defaults - spec_options() == set(), "in the README, not a variable of the role"


def test_argument_specs_cover_every_default():
    assert set(yaml.safe_load(load("defaults", "main.yml"))) - spec_options() == set()
