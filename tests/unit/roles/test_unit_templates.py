"""Every systemd unit template of the collection puts one command-line flag per line
(issue 13 item 1): a changed flag shows as one changed line in a diff, and no rendered
unit grows a line of hundreds of characters."""

import glob
import os
import re

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
TEMPLATES = sorted(glob.glob(os.path.join(ROOT, "roles", "*", "templates", "*.service.j2")))
FLAG = re.compile(r"(?:^|\s)--?[A-Za-z]")


def test_there_are_unit_templates():
    names = [os.path.basename(t) for t in TEMPLATES]
    assert "model.service.j2" in names and "litellm-gateway.service.j2" in names, names


def test_each_line_of_a_unit_template_carries_at_most_one_flag():
    crowded = []
    for path in TEMPLATES:
        with open(path) as f:
            for number, line in enumerate(f, 1):
                if line.lstrip().startswith("#"):
                    continue
                if len(FLAG.findall(line)) > 1:
                    crowded.append("%s:%d: %s" % (os.path.relpath(path, ROOT), number, line.strip()))
    assert crowded == []


def test_continued_exec_lines_end_in_a_backslash():
    with open(os.path.join(ROOT, "roles", "litellm_gateway", "templates", "litellm-gateway.service.j2")) as f:
        lines = f.read().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("ExecStart="))
    block = []
    for line in lines[start:]:
        block.append(line)
        if not line.endswith("\\"):
            break
    assert len(block) == 6 and block[-1].strip().startswith("--num_workers"), block
