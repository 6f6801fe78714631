"""Every module and filter says in which release it came: a plugin of a release in
changelogs/changelog.yaml carries that release, any other the next minor release."""

from __future__ import annotations

import pathlib
import re

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHANGELOG = yaml.safe_load((ROOT / "changelogs" / "changelog.yaml").read_text())


def _version(text):
    return tuple(int(p) for p in text.split("."))


def _released():
    """{(kind, name): release} for every module and filter a release lists."""
    out = {}
    for release, body in CHANGELOG["releases"].items():
        for mod in body.get("modules") or []:
            out[("module", mod["name"])] = release
        for kind, plugins in (body.get("plugins") or {}).items():
            for plugin in plugins:
                out[(kind, plugin["name"])] = release
    return out


RELEASED = _released()
LAST = max(CHANGELOG["releases"], key=_version)
NEXT = "%d.%d.0" % (_version(LAST)[0], _version(LAST)[1] + 1)


def _plugins():
    for path in sorted((ROOT / "plugins" / "modules").glob("*.py")):
        found = re.search(r"^version_added: *['\"]?([0-9.]+)", path.read_text(), re.M)
        yield "module", path.stem, found.group(1) if found else None
    for path in sorted((ROOT / "plugins" / "filter").glob("*.yml")):
        doc = yaml.safe_load(path.read_text())["DOCUMENTATION"]
        yield "filter", doc["name"], str(doc.get("version_added"))
    for path in sorted((ROOT / "plugins" / "filter").glob("*.py")):
        found = re.search(r"^ *version_added: *['\"]?([0-9.]+)", path.read_text(), re.M)
        if found:  # a filter file documenting its one filter itself (multillm.py has sidecar YAML)
            yield "filter", path.stem, found.group(1)


@pytest.mark.parametrize("kind, name, added", list(_plugins()), ids=lambda v: str(v))
def test_version_added_is_the_release_that_brought_the_plugin(kind, name, added):
    assert added == RELEASED.get((kind, name), NEXT), (
        "%s %s says version_added %s; changelogs/changelog.yaml makes it %s"
        % (kind, name, added, RELEASED.get((kind, name), NEXT)))
