#!/usr/bin/env python3
"""STAND-IN for kvcached's `kvctl` (no GPU, no kvcached): reads and rewrites the 24-byte
/dev/shm/<ipc> segment (int64 limit, used, prealloc) that images/standin/standin.py
writes, so the role's `kvctl limit` step can be tested without a GPU.
Supports `kvctl limit <ipc> <size>` (512M, 2G, bytes) and `kvctl list [--json]`."""

import json
import os
import struct
import sys

UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def size(text):
    text = text.strip().upper().rstrip("B")
    if text and text[-1] in UNITS:
        return int(float(text[:-1]) * UNITS[text[-1]])
    return int(text)


def main(argv):
    if len(argv) == 3 and argv[0] == "limit":
        path = os.path.join("/dev/shm", argv[1])
        if not os.path.exists(path):
            print(f"kvctl (stand-in): no segment {path}", file=sys.stderr)
            return 1
        with open(path, "r+b") as f:
            _, used, prealloc = struct.unpack("<qqq", f.read(24))
            f.seek(0)
            f.write(struct.pack("<qqq", size(argv[2]), used, prealloc))
        print(f"kvctl (stand-in): {argv[1]} limit set to {size(argv[2])} bytes")
        return 0
    if argv and argv[0] == "list":
        rows = []
        for name in sorted(os.listdir("/dev/shm")):
            try:
                with open(os.path.join("/dev/shm", name), "rb") as f:
                    data = f.read(25)
            except OSError:
                continue
            if len(data) == 24:
                limit, used, _ = struct.unpack("<qqq", data)
                rows.append({"ipc": name, "limit_bytes": limit, "used_bytes": used})
        print(json.dumps(rows) if "--json" in argv else "\n".join(f"{r['ipc']} {r['limit_bytes']} {r['used_bytes']}" for r in rows))
        return 0
    print("usage: kvctl limit <ipc> <size> | kvctl list [--json]   (stand-in)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
