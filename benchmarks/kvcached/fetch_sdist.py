#!/usr/bin/env python3
"""Download one pinned sdist from the package index pip is configured to use.

`pip download` cannot fetch kvcached's sdists without a CUDA build of torch: it runs the
sdist's setup.py to read its metadata, and that setup.py builds a CUDAExtension at import.
This reads the same index pip reads (PIP_INDEX_URL, then pip's configured index-url, then
pip's own default; the extra-index-url entries after it) through its simple API (PEP 691
JSON or PEP 503 HTML), downloads the named file and checks its sha256. No index address is
written here.

    python3 fetch_sdist.py DEST FILENAME SHA256     e.g. .cache/kvc kvcached-0.1.5.tar.gz 1c82...
"""
import hashlib
import html.parser
import json
import os
import re
import subprocess
import sys
import urllib.parse
import urllib.request


def pip_config(key):
    proc = subprocess.run([sys.executable, "-m", "pip", "config", "get", key],
                          capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def indexes():
    """The index URLs pip would read, in pip's order."""
    main = os.environ.get("PIP_INDEX_URL") or pip_config("global.index-url") or pip_config("download.index-url")
    if not main:
        from pip._internal.models.index import PyPI  # pip's own default index
        main = PyPI.simple_url
    extra = os.environ.get("PIP_EXTRA_INDEX_URL") or pip_config("global.extra-index-url")
    return [main] + extra.split()


class Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs.extend(v for k, v in attrs if k == "href" and v)


def file_urls(index, project):
    """filename -> absolute URL of every file the index lists for the project."""
    page = index.rstrip("/") + "/" + re.sub(r"[-_.]+", "-", project).lower() + "/"
    req = urllib.request.Request(page, headers={
        "Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            body = resp.read()
            kind = resp.headers.get("Content-Type", "") if hasattr(resp, "headers") else ""
    except (OSError, ValueError):
        return {}
    if "json" in kind:
        files = json.loads(body)["files"]
        return {f["filename"]: urllib.parse.urljoin(page, f["url"]) for f in files}
    parser = Links()
    parser.feed(body.decode("utf-8", "replace"))
    urls = (urllib.parse.urljoin(page, h) for h in parser.hrefs)
    return {urllib.parse.unquote(u.split("#")[0].rsplit("/", 1)[-1]): u.split("#")[0] for u in urls}


def main(dest, filename, sha256):
    os.makedirs(dest, exist_ok=True)
    path = os.path.join(dest, filename)
    project = filename.rsplit("-", 1)[0]
    if not os.path.exists(path):
        tried = indexes()
        for index in tried:
            url = file_urls(index, project).get(filename)
            if url:
                with urllib.request.urlopen(url, timeout=300) as resp, open(path + ".part", "wb") as out:
                    out.write(resp.read())
                os.replace(path + ".part", path)
                break
        else:
            sys.exit("fetch_sdist: %s is on none of pip's indexes (%s)" % (filename, ", ".join(tried)))
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if digest != sha256:
        os.remove(path)
        sys.exit("fetch_sdist: %s has sha256 %s, expected %s (file removed)" % (filename, digest, sha256))
    print("%s: OK" % path)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
