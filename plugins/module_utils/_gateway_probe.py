# -*- coding: utf-8 -*-
# Copyright: llmops.multillm contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Real serving through an OpenAI-compatible gateway, per model (module gateway_probe).

For each model: one chat completion whose ``usage`` holds prompt_tokens > 0, completion_tokens
> 0 and total_tokens = their sum, and one streamed chat completion (``stream_options:
include_usage``) that yields at least one content delta, carries usage and ends with
``data: [DONE]``. Every problem is a sentence that names the model and what was wrong; the
key is only ever sent, never part of a result (an error body that quotes it is redacted).

Standard library only (urllib), no proxy: the gateway is probed where it runs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re
import time

from urllib.error import HTTPError, URLError
from urllib.request import ProxyHandler, Request, build_opener

DEFAULT_PROMPT = "multillm verify: say ok"
_BODY_CHARS = 300
# LiteLLM's 401 quotes the key it was sent in part ("Received API Key = sk-...6789").
_KEY_FIELD_RE = re.compile(r"(?i)(api[ _-]?key\s*[=:]\s*)\S+")
_BEARER_RE = re.compile(r"(?i)(bearer\s+)\S+")


def redact(text, key):
    """Text from the gateway with the key, and anything quoted as a key, taken out."""
    text = str(text)
    if key:
        text = text.replace(key, "<key>")
    text = _KEY_FIELD_RE.sub(r"\1<redacted>", text)
    return _BEARER_RE.sub(r"\1<redacted>", text)


def error_text(raw, key):
    """What an error answer says: its error.message (OpenAI's and LiteLLM's form), else its text."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    text = raw
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if isinstance(body, dict):
        err = body.get("error", body.get("detail"))
        if isinstance(err, dict) and err.get("message"):
            text = err["message"]
        elif isinstance(err, str) and err:
            text = err
    text = " ".join(redact(text, key).split())
    if len(text) > _BODY_CHARS:
        text = text[:_BODY_CHARS] + "..."
    return text or "(empty body)"


def _open(url, key, payload, timeout):
    """(status, response or None, why not). status: the HTTP status, -1 without an answer."""
    headers = {"Authorization": "Bearer " + key, "Accept": "application/json, text/event-stream"}
    data = None
    if payload is not None:
        data = json.dumps(payload).encode("utf-8")
        headers["Content-Type"] = "application/json"
    opener = build_opener(ProxyHandler({}))
    try:
        resp = opener.open(Request(url, data=data, headers=headers), timeout=timeout)
    except HTTPError as exc:
        try:
            raw = exc.read()
        except OSError:
            raw = b""
        return exc.code, None, "HTTP %d: %s" % (exc.code, error_text(raw, key))
    except URLError as exc:
        return -1, None, "no answer from %s: %s" % (url, redact(exc.reason, key))
    except (OSError, ValueError) as exc:  # a timeout while waiting for the headers, a bad URL
        return -1, None, "no answer from %s: %s" % (url, redact(exc, key) or type(exc).__name__)
    return resp.status, resp, None


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool)


def usage_problems(usage, what):
    """What is wrong with a usage object: figures that say no real tokens were served."""
    if not isinstance(usage, dict):
        return ["%s carries no usage figures" % what]
    out = []
    for field in ("prompt_tokens", "completion_tokens"):
        value = usage.get(field)
        if not _is_count(value) or value <= 0:
            out.append("%s reports %s=%s, not a count > 0" % (what, field, json.dumps(value)))
    prompt, completion, total = usage.get("prompt_tokens"), usage.get("completion_tokens"), usage.get("total_tokens")
    if _is_count(prompt) and _is_count(completion) and total != prompt + completion:
        out.append("%s reports total_tokens=%s, not prompt + completion tokens = %d"
                   % (what, json.dumps(total), prompt + completion))
    return out


def _figures(usage):
    usage = usage if isinstance(usage, dict) else {}
    return {k: usage.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}


def _request_body(model, prompt, max_tokens):
    return {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens}


def probe_completion(base_url, key, model, prompt=DEFAULT_PROMPT, max_tokens=16, timeout=120, clock=time.monotonic):
    """One chat completion: its status, latency, usage figures and problems."""
    out = {"status": None, "latency_s": None, "problems": []}
    out.update(_figures(None))
    what = "the completion"
    start = clock()
    status, resp, why = _open(base_url + "/v1/chat/completions", key, _request_body(model, prompt, max_tokens), timeout)
    out["status"] = status
    if resp is None:
        out["problems"].append("%s: %s" % (what, why))
        return out
    try:
        with resp:
            raw = resp.read()
    except OSError as exc:
        out["problems"].append("%s broke off: %s" % (what, redact(exc, key) or type(exc).__name__))
        return out
    out["latency_s"] = round(clock() - start, 3)
    try:
        body = json.loads(raw.decode("utf-8", "replace"))
    except ValueError:
        body = None
    if not isinstance(body, dict):
        out["problems"].append("%s is not a JSON object: %s" % (what, error_text(raw, key)))
        return out
    if not body.get("choices"):
        out["problems"].append("%s has no choices" % what)
    out.update(_figures(body.get("usage")))
    out["problems"].extend(usage_problems(body.get("usage"), what))
    return out


def _content_pieces(chunk):
    pieces = 0
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict) and isinstance(delta.get("content"), str) and delta["content"]:
            pieces += 1
    return pieces


def probe_stream(base_url, key, model, prompt=DEFAULT_PROMPT, max_tokens=16, timeout=120, clock=time.monotonic):
    """One streamed chat completion asking for usage: its status, chunks, content chunks, time to
    the first content, latency, usage figures, whether it ended with [DONE], and problems."""
    out = {"status": None, "chunks": 0, "content_chunks": 0, "done": False, "first_content_s": None,
           "latency_s": None, "problems": []}
    out.update(_figures(None))
    what = "the streamed completion"
    payload = _request_body(model, prompt, max_tokens)
    payload.update(stream=True, stream_options={"include_usage": True})
    start = clock()
    status, resp, why = _open(base_url + "/v1/chat/completions", key, payload, timeout)
    out["status"] = status
    if resp is None:
        out["problems"].append("%s: %s" % (what, why))
        return out
    usage = None
    try:
        with resp:
            for raw in resp:
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data:"):
                    continue  # blank separators, comments (":"), event:/id: fields
                data = line[len("data:"):].strip()
                if data == "[DONE]":
                    out["done"] = True
                    break
                try:
                    chunk = json.loads(data)
                except ValueError:
                    chunk = None
                if not isinstance(chunk, dict):
                    out["problems"].append("%s sent a chunk that is not a JSON object: %s" % (what, error_text(data, key)))
                    break
                out["chunks"] += 1
                if chunk.get("error"):
                    out["problems"].append("%s carried an error: %s" % (what, error_text(json.dumps(chunk), key)))
                pieces = _content_pieces(chunk)
                if pieces and out["first_content_s"] is None:
                    out["first_content_s"] = round(clock() - start, 3)
                out["content_chunks"] += pieces
                if isinstance(chunk.get("usage"), dict):
                    usage = chunk["usage"]
    except OSError as exc:  # a timeout or a reset in the middle of the stream
        out["problems"].append("%s broke off after %d chunks: %s" % (what, out["chunks"], redact(exc, key) or type(exc).__name__))
    out["latency_s"] = round(clock() - start, 3)
    out.update(_figures(usage))
    if not out["content_chunks"]:
        out["problems"].append("%s yielded no content delta in %d chunks" % (what, out["chunks"]))
    if not out["done"]:
        out["problems"].append("%s ended without data: [DONE] after %d chunks" % (what, out["chunks"]))
    if usage is None:
        out["problems"].append("%s carries no usage figures (asked for with stream_options.include_usage)" % what)
    else:
        out["problems"].extend(usage_problems(usage, what))
    return out


def list_models(base_url, key, timeout=30):
    """(the model ids the gateway lists, None) or (None, why not)."""
    url = base_url + "/v1/models"
    status, resp, why = _open(url, key, None, timeout)
    if resp is None:
        return None, "the gateway's model list (GET %s): %s" % (url, why)
    try:
        with resp:
            body = json.loads(resp.read().decode("utf-8", "replace"))
        ids = sorted(set(m["id"] for m in body["data"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, "the gateway's model list (GET %s) is not an OpenAI model list: %s" % (url, type(exc).__name__)
    return ids, None


def _tokens(fig):
    if not all(_is_count(fig.get(k)) for k in ("prompt_tokens", "completion_tokens", "total_tokens")):
        return "tokens n/a"
    return "%d+%d=%d tokens" % (fig["prompt_tokens"], fig["completion_tokens"], fig["total_tokens"])


def _secs(value):
    return "n/a" if value is None else "%.3f s" % value


def model_line(name, result):
    """One line per model for a person; no run of blanks (Ansible's YAML output folds at one)."""
    comp, stream = result["completion"], result["stream"]
    verdict = "ok" if not result["problems"] else "FAILED"
    return ("%s: %s | completion %s in %s, %s | stream %s: %d content chunks of %d, first after %s, %s, %s, %s"
            % (name, verdict, comp["status"], _secs(comp["latency_s"]), _tokens(comp), stream["status"],
               stream["content_chunks"], stream["chunks"], _secs(stream["first_content_s"]),
               _secs(stream["latency_s"]), _tokens(stream), "[DONE]" if stream["done"] else "no [DONE]"))


def probe_gateway(base_url, key, models=None, prompt=DEFAULT_PROMPT, max_tokens=16, timeout=120, clock=time.monotonic):
    """Probe every model the gateway lists (or the named ones, each of which must be listed).

    Returns {models: {name: {completion, stream, status, problems}}, status: {name: HTTP status,
    the first that is not 200}, lines: [one per model], problems: ["model X: ...", ...]}.
    """
    base_url = base_url.rstrip("/")
    result = {"models": {}, "status": {}, "lines": [], "problems": []}
    served, why = list_models(base_url, key, timeout=min(timeout, 60))
    if served is None:
        result["problems"].append(why)
        return result
    names = sorted(set(models)) if models else served
    if not names:
        result["problems"].append("the gateway at %s lists no model" % base_url)
        return result
    for name in names:
        if name not in served:
            result["problems"].append("model %s: the gateway does not list it (it lists: %s)"
                                      % (name, ", ".join(served) or "none"))
            result["status"][name] = 404
            continue
        comp = probe_completion(base_url, key, name, prompt, max_tokens, timeout, clock)
        stream = probe_stream(base_url, key, name, prompt, max_tokens, timeout, clock)
        problems = comp.pop("problems") + stream.pop("problems")
        status = comp["status"] if comp["status"] != 200 else stream["status"]
        one = {"completion": comp, "stream": stream, "status": status, "problems": problems}
        result["models"][name] = one
        result["status"][name] = status
        result["lines"].append(model_line(name, one))
        result["problems"].extend("model %s: %s" % (name, p) for p in problems)
    return result
