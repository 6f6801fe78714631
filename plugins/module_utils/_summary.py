# -*- coding: utf-8 -*-
# Copyright: llmops.multillm contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The table the verify stage ends with, one per host. Pure functions on plain data.

verify_summary(facts) returns the lines of one host's table: each model, its GPU(s), health,
resting GiB against its expectation, KV capacity against its plan, its answer through the
gateway; then each GPU's line from vram_check, the gateway's URL with ready curl lines and an
OpenAI-client snippet. The master key is never an input: the lines read $LITELLM_MASTER_KEY.
A figure nobody measured shows as n/a. playbooks/verify.yml wires it (filter verify_summary).

Ansible's YAML result format (this project's ansible.cfg) folds a string longer than 80
characters at a single blank past that column, never at a run of blanks (PyYAML's writer).
So table cells and headers hold no single blank, and each row stays one line. The lines meant
to be pasted (curl, the client snippet, indented) would come out quoted ('' for '): for_display
joins each run of them into one multi-line item, which that format prints as a literal block,
as is.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import math
import re

NA = "n/a"
KEY_ENV = "LITELLM_MASTER_KEY"
PROMPT = "Hello!"
# Addresses a gateway bound to them answers on every interface of its host.
WILDCARD_BINDS = ("", "0.0.0.0", "::", "*", "[::]")
_SHELL_SAFE_RE = re.compile(r"[A-Za-z0-9_./:@%+=,-]+")


def _shell_quote(text):
    """Quote for a POSIX shell (single quotes), only where needed."""
    text = str(text)
    if _SHELL_SAFE_RE.fullmatch(text):
        return text
    return "'" + text.replace("'", "'\"'\"'") + "'"


def _num(value):
    """A float, or None for anything that is not a finite number (n/a, null, text)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _gib(value):
    num = _num(value)
    return NA if num is None else "%.1f" % num


def _tokens(value):
    num = _num(value)
    return NA if num is None else "{:,}".format(int(num))


def _status(code):
    """An HTTP status as the table shows it: ok for 200, else what came back."""
    num = _num(code)
    if num is None:
        return NA
    num = int(num)
    if num == 200:
        return "ok"
    if num < 0:
        return "no-answer"
    return "%d" % num


def gateway_url(gateway):
    """The base URL a client uses, from a gateway's host address, bind address and port.

    A wildcard bind answers on the host's address (ansible_host, else the inventory name);
    any other bind address is where it listens (127.0.0.1: on that host only)."""
    bind = str(gateway.get("bind_address") or "").strip()
    address = bind if bind not in WILDCARD_BINDS else str(gateway.get("address") or gateway.get("host") or "")
    if ":" in address and not address.startswith("["):
        address = "[%s]" % address
    return "http://%s:%s/v1" % (address, gateway.get("port"))


def render_table(header, rows):
    """Left-aligned columns two spaces apart, each as wide as its widest cell; no trailing blanks."""
    cells = [[str(c) for c in header]] + [[NA if c is None or c == "" else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]


def _gpus_cell(model, container, gpu_required):
    measured = container.get("gpus")
    if measured:
        return ",".join(str(g) for g in measured)
    if not gpu_required:
        return "none"
    planned = model.get("gpus")
    if planned:
        return ",".join(str(g) for g in planned)
    return "0"


def _gateway_cell(name, gateways):
    if not gateways:
        return NA
    seen = []
    for gw in gateways:
        status = gw.get("status")
        # The probe's own verdict (gateway_probe): a 200 without usage figures or without a
        # complete stream is not ok.
        problems = ((gw.get("details") or {}).get(name) or {}).get("problems")
        if status is None:
            seen.append(NA)
        elif name not in status:
            seen.append("absent")
        elif problems and _status(status[name]) == "ok":
            seen.append("failed")
        else:
            seen.append(_status(status[name]))
    seen = sorted(set(seen))
    return seen[0] if len(seen) == 1 else "/".join(seen)


def _model_rows(facts):
    verify = facts.get("verify") or {}
    vram = facts.get("vram") or {}
    vram_containers = vram.get("containers") or {}
    kv = (facts.get("kv") or {}).get("models") or {}
    gpu_required = facts.get("gpu_required", True)
    tolerance = _num(facts.get("tolerance_gib"))
    endpoints = dict((e.get("name"), e) for e in facts.get("endpoints") or [])
    failed = bool(facts.get("failures"))
    rows = []
    for model in facts.get("models") or []:
        name = model.get("name")
        seen = verify.get(name) or {}
        container = vram_containers.get((endpoints.get(name) or {}).get("container")) or {}
        health = _status(seen.get("health"))
        if health == NA and failed:
            health = "unchecked"
        used = seen.get("resting_gib")
        if _num(used) is None:
            used = container.get("used_gib")
        expected = _num(container.get("expected_gib"))
        if expected is None:
            expected = _num(model.get("resting_gib"))
        tol = _num(container.get("tolerance_gib"))
        tol = tolerance if tol is None else tol
        if expected is None:
            expectation = NA
        elif tol is None:
            expectation = "%.1f" % expected
        else:
            expectation = "%.1f±%.1f" % (expected, tol)
        verdict = NA
        if expected is not None and _num(used) is not None and tol is not None:
            verdict = "ok" if abs(_num(used) - expected) <= tol + 1e-9 else "OFF"
        kv_seen = seen.get("kv_tokens")
        if _num(kv_seen) is None:
            kv_seen = (kv.get(name) or {}).get("kv_tokens")
        rows.append([name, _gpus_cell(model, container, gpu_required), health, _gib(used), expectation,
                     verdict, _tokens(kv_seen), _tokens(model.get("kv_tokens")),
                     _gateway_cell(name, facts.get("gateways"))])
    return rows


def _host_line(facts, rows):
    host = facts.get("host")
    vram = facts.get("vram") or {}
    parts = ["host %s: %d model(s)" % (host, len(rows))]
    if not facts.get("gpu_required", True):
        parts.append("no GPU required here, resting VRAM not measured")
    elif not vram.get("cause") and _num(vram.get("used_gib")) is not None:  # cause: no GPU could be read
        target, tol = _num(facts.get("resting_vram_gib")), _num(facts.get("tolerance_gib"))
        text = "resting VRAM %.1f GiB" % _num(vram.get("used_gib"))
        if target is not None and tol is not None:
            text += " against %.1f ± %.1f GiB: %s" % (
                target, tol, "ok" if abs(_num(vram.get("used_gib")) - target) <= tol + 1e-9 else "OFF")
        parts.append(text)
    else:
        parts.append("resting VRAM n/a")
    parts.append("verify FAILED" if facts.get("failures") else "verify passed")
    return ", ".join(parts)


def _usage_lines(facts):
    names = [m.get("name") for m in facts.get("models") or []]
    gateways = facts.get("gateways") or []
    if not names and gateways:
        names = sorted(set(n for gw in gateways for n in (gw.get("status") or {})))
    example = names[0] if names else "MODEL"
    body = json.dumps({"model": example, "max_tokens": 32, "messages": [{"role": "user", "content": PROMPT}]},
                      separators=(",", ":"), sort_keys=False)
    lines = []
    if not gateways:
        lines.append("gateway: none fronts this host's models here (no gateway host ran verify);"
                     " each model answers on its own address, without a key:")
        for e in facts.get("endpoints") or []:
            lines.append("  %s  curl -s %s/models" % (e.get("name"), e.get("api_base")))
        return lines
    auth = '-H "Authorization: Bearer $%s"' % KEY_ENV
    for gw in gateways:
        url = gateway_url(gw)
        where = ""
        if str(gw.get("bind_address") or "").startswith("127.") or gw.get("bind_address") in ("localhost", "::1"):
            where = " (loopback: from that host only)"
        lines.append("gateway %s on %s%s; models: %s" % (url, gw.get("host"), where, ", ".join(names) or NA))
        lines.append("  # export %s=<litellm_gateway_master_key, from your vault>" % KEY_ENV)
        lines.append("  curl -s %s/models \\" % url)
        lines.append("    %s" % auth)
        lines.append("  curl -s %s/chat/completions \\" % url)
        lines.append("    %s \\" % auth)
        lines.append("    -H \"Content-Type: application/json\" \\")
        lines.append("    -d %s" % _shell_quote(body))
        lines.append("  # Python, with the openai package:")
        lines.append("  from openai import OpenAI; import os")
        lines.append("  client = OpenAI(api_key=os.environ[%s]," % json.dumps(KEY_ENV))
        lines.append("                  base_url=%s)" % json.dumps(url))
        lines.append("  reply = client.chat.completions.create(")
        lines.append("      model=%s," % json.dumps(example))
        lines.append("      messages=[{\"role\":\"user\",\"content\":%s}])" % json.dumps(PROMPT))
        lines.append("  print(reply.choices[0].message.content)")
    return lines


HEADER = ("model", "GPU(s)", "health", "resting-GiB", "expected-GiB", "VRAM", "KV-tokens", "KV-plan", "gateway")


def verify_summary(facts):
    """The lines of one host's summary table.

    facts (every key optional but host):
      host: inventory name; models: multillm_models; endpoints: model_stack_endpoints;
      verify: model_stack_verify ({name: {health, resting_gib, kv_tokens}});
      vram: vram_check's result (containers, used_gib, gpu_summary); kv: model_kv_check's result;
      gpu_required, resting_vram_gib, tolerance_gib: the host's multillm_* figures;
      gateways: [{host, address, bind_address, port, status: {model name: HTTP status}}]
        for each gateway host fronting this host's models ([] or missing: no gateway);
      failures: [messages] when the host's verify failed (shown under the table).
    """
    rows = _model_rows(facts)
    lines = [_host_line(facts, rows)]
    if rows:
        lines.extend(render_table(HEADER, rows))
    else:
        lines.append("no models on this host")
    for line in (facts.get("vram") or {}).get("gpu_summary") or []:
        lines.append(str(line))
    lines.extend(_usage_lines(facts))
    for msg in facts.get("failures") or []:
        lines.append("FAILED: %s" % msg)
    return lines


def for_display(lines):
    """The lines for one debug: each run of indented lines (what a user pastes) joined into one
    multi-line item without the indent, the others as they are."""
    out, block = [], []
    for line in list(lines) + [None]:
        if line is not None and line.startswith("  "):
            block.append(line[2:])
            continue
        if block:
            out.append("\n".join(block))
            block = []
        if line is not None:
            out.append(line)
    return out
