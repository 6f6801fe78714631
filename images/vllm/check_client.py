#!/usr/bin/env python3
"""What a client of a served model asks, with what it must get back (images/vllm/check.sh).

    check_client.py BASE_URL SERVED_NAME

/v1/models lists the name; a chat completion reports prompt and completion tokens; a
streamed one sends content chunks and ends with [DONE]; a model with an image processor
(the OCR slot) answers a message with an image, which costs more prompt tokens than the
text alone. Python standard library only. Exit 1 with the reason on the first failure.
"""

import base64
import json
import sys
import urllib.request
import zlib


def call(url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    return urllib.request.urlopen(req, timeout=120)


def png(width, height):
    """A plain red PNG, written by hand (no imaging library on the caller's side)."""
    def chunk(kind, payload):
        return (len(payload).to_bytes(4, "big") + kind + payload
                + zlib.crc32(kind + payload).to_bytes(4, "big"))
    rows = b"".join(b"\x00" + b"\xc8\x1e\x1e" * width for _ in range(height))
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + b"\x08\x02\x00\x00\x00"
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def chat(base, name, content, stream=False):
    body = {"model": name, "messages": [{"role": "user", "content": content}], "max_tokens": 8,
            "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    return call(base + "/v1/chat/completions", body)


def main(base, name):
    ids = [m["id"] for m in json.load(call(base + "/v1/models"))["data"]]
    if name not in ids:
        return "/v1/models lists %s, not %s" % (ids, name)

    answer = json.load(chat(base, name, "hello"))
    usage = answer["usage"]
    if usage["prompt_tokens"] <= 0 or usage["completion_tokens"] <= 0:
        return "no token counts in %s" % usage
    print("check: %s chat: %s -> %r" % (name, usage, answer["choices"][0]["message"]["content"]))

    chunks, done, final_usage = 0, False, None
    for line in chat(base, name, "hello", stream=True):
        line = line.decode().strip()
        if line == "data: [DONE]":
            done = True
        elif line.startswith("data: "):
            event = json.loads(line[len("data: "):])
            if event.get("usage"):
                final_usage = event["usage"]
            if any(c.get("delta", {}).get("content") for c in event.get("choices", [])):
                chunks += 1
    if not done or chunks == 0 or not final_usage or final_usage["completion_tokens"] <= 0:
        return "stream: %d content chunks, done=%s, usage %s" % (chunks, done, final_usage)
    print("check: %s stream: %d content chunks, usage %s" % (name, chunks, final_usage))

    if "paddleocr" in name:
        url = "data:image/png;base64," + base64.b64encode(png(64, 48)).decode()
        content = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "OCR:"}]
        with_image = json.load(chat(base, name, content))["usage"]
        text_only = json.load(chat(base, name, "OCR:"))["usage"]
        if with_image["prompt_tokens"] <= text_only["prompt_tokens"]:
            return "the image added no prompt tokens: %s against %s" % (with_image, text_only)
        print("check: %s image: %d prompt tokens (text alone: %d)"
              % (name, with_image["prompt_tokens"], text_only["prompt_tokens"]))
    return None


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    error = main(sys.argv[1].rstrip("/"), sys.argv[2])
    if error:
        sys.exit("check: %s: %s" % (sys.argv[2], error))
