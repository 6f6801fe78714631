#!/usr/bin/env python3
"""Step 1, on a machine with pip access: gather what the GPU test machine lacks to run vLLM.

Writes into DEST (default .cache/gpu_vllm, git-ignored), through pip's configured index:
- vLLM VLLM_VERSION's wheel for CPython 3.12 / Linux x86_64, unpacked and repacked as one
  tar.xz WITHOUT two files a dense bf16 model on Hopper never loads (saves three transfers):
  vllm_flash_attn/_vllm_fa2_C.abi3.so (FlashAttention 2; vLLM picks FA3 on compute capability
  9.x, vllm/v1/attention/backends/fa_utils.py) and vllm-rs (the Rust front end, used only with
  VLLM_USE_RUST_FRONTEND=1). The dist-info stays, so `importlib.metadata.version("vllm")`
  answers and `vllm serve` runs;
- every distribution vLLM requires that the machine lacks (device_packages.txt lists what it
  has), and their own requirements, transitively, as wheels; the large GPU-kernel packages
  that a dense model on FA3 does not import, and two that clash with the machine's versions,
  are left out (SKIP below, each with its reason);
- kvcached KVCACHED_VERSION's sdist (hash checked against the index's) and posix_ipc (its one
  requirement the machine lacks), built there (device.sh install);
- ansible-core (the version requirements.txt pins), to run the collection's vram_check module;
- the two model directories (make_models.py: configs and tokenizers, no weights).

Then it packs all of it into carry folders DEST/carry/c1, c2, ... of at most --cap MiB each
(the device tool carries 64 MiB a call, the work tree included): c1 holds everything but
the vLLM archive's later pieces, so device.sh can install the dependencies and build kvcached
while the rest travels.

    python3 benchmarks/gpu_vllm/gather.py [--dest .cache/gpu_vllm] [--cap 56]
"""

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile

from pip._vendor.packaging.requirements import Requirement
from pip._vendor.packaging.utils import canonicalize_name

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VLLM_VERSION = "0.26.0"  # the newest release whose torch pin (2.11.0) is the GPU machine's torch
KVCACHED_VERSION = "0.1.6"
DROP_FROM_VLLM = ("vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so", "vllm/vllm-rs")
PLATFORMS = ["manylinux1_x86_64", "manylinux2010_x86_64", "manylinux2014_x86_64"] + [
    "manylinux_2_%d_x86_64" % n for n in range(5, 40)] + ["linux_x86_64"]
# The machine's python3: CPython 3.12.3 on Linux x86_64.
ENV = {"python_version": "3.12", "python_full_version": "3.12.3", "platform_machine": "x86_64",
       "platform_system": "Linux", "sys_platform": "linux", "os_name": "posix",
       "implementation_name": "cpython", "platform_python_implementation": "CPython"}
SKIP = {
    # GPU-kernel packages (hundreds of MB) that a dense bf16 model on FlashAttention 3 does not
    # import; vLLM imports each lazily, on the paths that use it.
    "flashinfer-python": "sampler off with VLLM_USE_FLASHINFER_SAMPLER=0; FA3 is the attention backend",
    "flashinfer-cubin": "comes with flashinfer-python", "flashinfer-jit-cache": "comes with flashinfer-python",
    "tilelang": "kernels of other models", "nvidia-cutlass-dsl": "FA4 / CuTe DSL kernels (Blackwell)",
    "quack-kernels": "CuTe DSL kernels", "humming-kernels": "kernels of other models",
    "tokenspeed-mla": "MLA models only", "nvidia-cudnn-frontend": "cuDNN attention paths",
    "pynvvideocodec": "video inputs", "torchcodec": "video/audio inputs", "fastsafetensors": "a load format",
    "nvtx": "profiling ranges",
    # Present there in another version; vLLM runs with the machine's (checked on the GPU).
    "numba": "the machine has 0.68.0 (vLLM pins 0.65.0); only the n-gram proposer uses it",
    "setuptools": "the machine has 81.0.0 (vLLM wants < 81); used at build time only",
    # The machine's own torch stack is the one vLLM 0.26.0 pins (2.11.0).
    "torch": "on the machine", "torchvision": "on the machine", "torchaudio": "on the machine",
    "triton": "on the machine",
}


# Requirements that clash: vLLM 0.26.0 pins apache-tvm-ffi==0.1.10, while xgrammar 0.2.9 (the
# newest its range admits) imports tvm_ffi features of >= 0.1.11. The GPU run used 0.1.15.post2.
OVERRIDE = {"apache-tvm-ffi": ">=0.1.11"}


def run(cmd):
    print("+ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def pip_download(reqs, dest, binary=True):
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", dest]
    if binary:
        cmd += ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp", "--abi", "cp312",
                "--abi", "abi3", "--abi", "none"]
        for p in PLATFORMS:
            cmd += ["--platform", p]
    run(cmd + list(reqs))


def wheel_name(filename):
    return canonicalize_name(filename.split("-")[0])


def requires(wheel_path, extras):
    """Requirements of a wheel for the machine's Python, with the given extras."""
    with zipfile.ZipFile(wheel_path) as z:
        meta = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")][0]
        text = z.read(meta).decode("utf-8")
    out = []
    for line in text.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        req = Requirement(line.split(":", 1)[1].strip())
        if req.marker is not None:
            if not any(req.marker.evaluate(dict(ENV, extra=e)) for e in (sorted(extras) or [""])):
                continue
        out.append(req)
    return out


def device_has():
    with open(os.path.join(HERE, "device_packages.txt"), encoding="utf-8") as f:
        return {canonicalize_name(x.strip()) for x in f if x.strip() and not x.startswith("#")}


def gather_dependencies(vllm_wheel, wheels):
    """Download, round by round, every requirement the machine lacks; returns {name: reason} skipped."""
    have, fetched, skipped = device_has(), {}, {}
    pending = [(r, set(r.extras)) for r in requires(vllm_wheel, set())]
    while pending:
        wanted = {}
        for req, extras in pending:
            name = canonicalize_name(req.name)
            if name in have or name in fetched or name == "vllm":
                if name in fetched and extras - fetched[name]["extras"]:
                    # a new extra of a fetched wheel: follow its extra requirements too
                    fetched[name]["extras"] |= extras
                    wanted.setdefault(name, {"specs": [], "extras": set(), "refetch": True})["extras"] |= extras
                continue
            if name in SKIP:
                skipped[name] = SKIP[name]
                continue
            w = wanted.setdefault(name, {"specs": [], "extras": set()})
            if str(req.specifier):
                w["specs"].append(str(req.specifier))
            w["extras"] |= extras
        new = {n: w for n, w in wanted.items() if not w.get("refetch")}
        if new:
            pip_download(["%s%s" % (n, OVERRIDE.get(n, ",".join(w["specs"]))) for n, w in sorted(new.items())],
                         wheels)
        pending = []
        files = {wheel_name(f): f for f in os.listdir(wheels) if f.endswith(".whl")}
        for name, w in wanted.items():
            if name not in files:
                sys.exit("no wheel of %s after download" % name)
            if not w.get("refetch"):
                fetched[name] = {"extras": set(w["extras"]), "file": files[name]}
            pending += [(r, set(r.extras)) for r in requires(os.path.join(wheels, files[name]), w["extras"])]
    return fetched, skipped


def kvcached_sdist(dest):
    """kvcached's sdist from pip's configured index (pip download would build its metadata, which
    needs torch and CUDA); the file's sha256 must match the index's."""
    from pip._internal.commands import create_command
    cmd = create_command("download")
    opts, _ = cmd.parse_args(["--no-deps", "--no-binary", ":all:", "kvcached==" + KVCACHED_VERSION])
    with cmd.main_context():
        session = cmd.get_default_session(opts)
        finder = cmd._build_package_finder(options=opts, session=session, target_python=None,
                                           ignore_requires_python=True)
        cands = [c for c in finder.find_best_candidate("kvcached").iter_applicable()
                 if str(c.version) == KVCACHED_VERSION and c.link.filename.endswith(".tar.gz")]
        if not cands:
            sys.exit("kvcached %s: no sdist on the configured index" % KVCACHED_VERSION)
        link = cands[0].link
        path = os.path.join(dest, link.filename)
        if not os.path.exists(path):
            resp = session.get(link.url_without_fragment)
            resp.raise_for_status()
            with open(path, "wb") as f:
                f.write(resp.content)
        with open(path, "rb") as f:
            digest = hashlib.new(link.hash_name, f.read()).hexdigest()
        if digest != link.hash:
            sys.exit("kvcached sdist: %s %s, the index says %s" % (link.hash_name, digest, link.hash))
        print("kvcached sdist %s %s=%s (as the index lists it)" % (link.filename, link.hash_name, digest))
        return path


def repack_vllm(wheel, out):
    """The wheel's files less DROP_FROM_VLLM, as one tar.xz (xz packs the kernels tighter than zip)."""
    if os.path.exists(out):
        return out
    dropped = 0
    with zipfile.ZipFile(wheel) as z, tarfile.open(out + ".part", "w:xz", preset=6) as t:
        for info in z.infolist():
            if info.is_dir():
                continue
            if info.filename in DROP_FROM_VLLM:
                dropped += info.file_size
                continue
            ti = tarfile.TarInfo(info.filename)
            ti.size = info.file_size
            ti.mode = 0o755 if (info.external_attr >> 16) & 0o111 else 0o644
            with z.open(info) as src:
                t.addfile(ti, src)
    os.rename(out + ".part", out)
    print("%s: %.1f MiB (dropped %.1f MiB unpacked: %s)" % (
        out, os.path.getsize(out) / 2**20, dropped / 2**20, ", ".join(DROP_FROM_VLLM)))
    return out


def ansible_core_pin():
    with open(os.path.join(ROOT, "requirements.txt"), encoding="utf-8") as f:
        for line in f:
            m = re.match(r"\s*ansible-core\s*==\s*([0-9][^\s;#]*)", line)
            if m:
                return m.group(1)
    return "2.19.14"


def pack(dest, small, archive, cap_mib):
    """Carry folders: c1 = the small files + the archive's first piece; then one piece each."""
    carry = os.path.join(dest, "carry")
    shutil.rmtree(carry, ignore_errors=True)
    c1 = os.path.join(carry, "c1")
    os.makedirs(os.path.join(c1, "small"))
    used = 0
    for src in small:
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(c1, "small", os.path.basename(src)))
            used += sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(src) for f in fs)
        else:
            shutil.copy2(src, os.path.join(c1, "small"))
            used += os.path.getsize(src)
    cap = cap_mib * 2**20
    if used >= cap:
        sys.exit("the small files alone take %.1f MiB, over the cap" % (used / 2**20))
    size = os.path.getsize(archive)
    first = cap - used
    with open(archive, "rb") as f:
        n, left, part = 1, size, first
        while left > 0:
            folder = os.path.join(carry, "c%d" % n)
            os.makedirs(folder, exist_ok=True)
            chunk = f.read(min(part, left))
            with open(os.path.join(folder, "vllm.tar.xz.%02d" % n), "wb") as out:
                out.write(chunk)
            left -= len(chunk)
            n, part = n + 1, cap
    with open(archive, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    with open(os.path.join(c1, "small", "vllm.tar.xz.sha256"), "w", encoding="utf-8") as f:
        f.write("%s  vllm.tar.xz\n" % digest)
    for c in sorted(os.listdir(carry)):
        total = sum(os.path.getsize(os.path.join(d, x)) for d, _, xs in os.walk(os.path.join(carry, c)) for x in xs)
        print("carry %s: %.1f MiB" % (c, total / 2**20))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dest", default=os.path.join(ROOT, ".cache", "gpu_vllm"))
    p.add_argument("--cap", type=float, default=56, help="MiB per carry folder")
    a = p.parse_args()
    wheels, vdir, kvc = (os.path.join(a.dest, x) for x in ("wheels", "vllm", "kvc"))
    for d in (wheels, vdir, kvc):
        os.makedirs(d, exist_ok=True)
    if not [f for f in os.listdir(vdir) if f.startswith("vllm-%s-" % VLLM_VERSION)]:
        pip_download(["vllm==" + VLLM_VERSION], vdir)
    vllm_wheel = os.path.join(vdir, [f for f in os.listdir(vdir) if f.startswith("vllm-%s-" % VLLM_VERSION)
                                     and f.endswith(".whl")][0])
    fetched, skipped = gather_dependencies(vllm_wheel, wheels)
    pip_download(["posix_ipc", "ansible-core==" + ansible_core_pin()], kvc)
    sdist = kvcached_sdist(kvc)
    names = {}
    for f in os.listdir(wheels) + os.listdir(kvc):
        if f.endswith(".whl"):
            names.setdefault(wheel_name(f), []).append(f)
    double = {n: fs for n, fs in names.items() if len(fs) > 1}
    if double:
        sys.exit("two versions of one distribution: %s" % double)
    print("%d dependency wheels, %.1f MiB; left out: %s" % (
        len(fetched), sum(os.path.getsize(os.path.join(wheels, f)) for f in os.listdir(wheels)) / 2**20,
        "; ".join("%s (%s)" % kv for kv in sorted(skipped.items()))))
    models = os.path.join(a.dest, "models")
    run([sys.executable, os.path.join(HERE, "make_models.py"), models])
    archive = repack_vllm(vllm_wheel, os.path.join(a.dest, "vllm.tar.xz"))
    small = [wheels, models, sdist] + [os.path.join(kvc, f) for f in os.listdir(kvc) if f.endswith(".whl")]
    pack(a.dest, small, archive, a.cap)


if __name__ == "__main__":
    main()
