# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.multillm
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Bytes of an image pull, from the Docker Engine's POST /images/create stream.

The engine answers a pull with one JSON object per line: per layer (``id``) a ``status``
("Pulling fs layer", "Waiting", "Downloading", "Verifying Checksum", "Download complete",
"Extracting", "Pull complete", "Already exists") and, while it downloads, ``progressDetail``
``{current, total}`` in bytes; a failed pull is still HTTP 200 and ends with ``errorDetail``
(``error`` holds the same text). Only download bytes are counted ("Extracting" repeats the
same bytes); a layer's size is known from its first "Downloading" line, so the total grows
while layers wait. Plain data in, plain data out: the modules image_pull (writer) and
image_pull_status (reader) do the I/O.
"""

from __future__ import annotations

import json
import os
import tempfile

# A layer's bytes are all downloaded once the engine says one of these.
_DOWNLOADED = ("Verifying Checksum", "Download complete", "Extracting", "Pull complete")
_LAYER_STATES = ("Pulling fs layer", "Waiting", "Downloading", "Retrying", "Already exists") + _DOWNLOADED
RATE_WINDOW_S = 10.0


def stream_error(event):
    """The registry's own message of an error line, or None."""
    detail = event.get("errorDetail") or {}
    return detail.get("message") or event.get("error") or None


class PullProgress(object):
    """Folds stream lines into bytes downloaded, bytes known and a recent rate."""

    def __init__(self, image, now):
        self.image, self.started = image, now
        self.layers = {}  # id -> {"current": int, "total": int or None, "present": bool}
        self.samples = [(now, 0)]
        self.error = None

    def feed(self, event, now):
        error = stream_error(event)
        if error:
            self.error = error
            return
        status, layer_id = event.get("status") or "", event.get("id")
        if not layer_id or not status.startswith(_LAYER_STATES):
            return  # "Pulling from ...", "Digest: ...", "Status: ..." name no layer
        layer = self.layers.setdefault(layer_id, {"current": 0, "total": None, "present": False})
        detail = event.get("progressDetail") or {}
        if status.startswith("Already exists"):
            layer["present"] = True
        elif status == "Downloading":
            if detail.get("total"):
                layer["total"] = int(detail["total"])
            if detail.get("current") is not None:
                layer["current"] = int(detail["current"])
        elif status in _DOWNLOADED and layer["total"]:
            layer["current"] = layer["total"]
        self._sample(now)

    def _sample(self, now):
        current = self.current()
        self.samples.append((now, current))
        # keep the window plus one older sample, so the rate spans the whole window
        while len(self.samples) > 2 and self.samples[1][0] <= now - RATE_WINDOW_S:
            self.samples.pop(0)

    def current(self):
        return sum(lay["current"] for lay in self.layers.values() if not lay["present"])

    def snapshot(self, now, done=False, pid=None):
        """What the reader needs, JSON-ready."""
        fetched = [lay for lay in self.layers.values() if not lay["present"]]
        first_t, first_b = self.samples[0]
        span = now - first_t
        rate = (self.current() - first_b) / span if span > 0 else 0.0
        return {
            "image": self.image,
            "pid": pid,
            "started": self.started,
            "updated": now,
            "current": self.current(),
            "total": sum(lay["total"] or 0 for lay in fetched),
            "layers": len(fetched),
            "layers_unsized": sum(1 for lay in fetched if not lay["total"]),
            "layers_present": len(self.layers) - len(fetched),
            "rate": max(rate, 0.0),
            "done": done,
            "error": self.error,
        }


def human_bytes(value, unit=None):
    """Decimal units, as the docker CLI shows a pull: (number text, unit)."""
    units = (("GB", 1e9), ("MB", 1e6), ("kB", 1e3), ("B", 1))
    for name, size in units:
        if unit == name or (unit is None and value >= size):
            return ("%.1f" % (value / size) if size > 1 else "%d" % value), name
    return "%d" % value, "B"


def progress_line(snap, now):
    """'<image>: 3.1 of 9.4 GB, 85 MB/s, 42 s' (and what is still unsized or already there)."""
    ended = snap["updated"] if snap["done"] else now  # a finished pull's time stops at its end
    elapsed = "%d s" % max(0, ended - snap["started"])
    image = snap["image"]
    if snap.get("error"):
        return "%s: failed after %s: %s" % (image, elapsed, snap["error"])
    if not snap["total"]:
        if snap["done"] and not snap["layers"]:
            return "%s: nothing to download (%d layers present), %s" % (image, snap["layers_present"], elapsed)
        if snap["layers_present"] and not snap["layers"]:
            return "%s: all %d layers already present, %s" % (image, snap["layers_present"], elapsed)
        return "%s: waiting for the registry (%d layers announced), %s" % (image, snap["layers"], elapsed)
    total, unit = human_bytes(snap["total"])
    current = human_bytes(snap["current"], unit)[0]
    rate, rate_unit = human_bytes(snap["rate"])
    parts = ["%s of %s %s" % (current, total, unit), "%s %s/s" % (rate, rate_unit), elapsed]
    if snap["layers_unsized"]:
        parts.append("%d more layers not sized yet" % snap["layers_unsized"])
    if snap["done"]:
        parts.append("done")
    return "%s: %s" % (image, ", ".join(parts))


def write_snapshot(path, snap):
    """Replace the progress file at once (a reader never sees half a file)."""
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".pull-")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(snap, handle)
        os.chmod(tmp, 0o644)  # bytes and an image name: nothing secret
        os.rename(tmp, path)
    except Exception:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_snapshot(path):
    """The last snapshot, or None while the pull has not written one."""
    try:
        with open(path) as handle:
            return json.load(handle)
    except (IOError, OSError, ValueError):
        return None


def process_alive(pid):
    if not pid:
        return True  # not known: trust the file
    try:
        os.kill(int(pid), 0)
    except OSError as exc:
        return exc.errno == 1  # EPERM: it exists, owned by someone else
    return True
