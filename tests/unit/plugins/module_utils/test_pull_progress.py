"""Bytes of a pull from the Docker Engine's /images/create stream, and the reader's view of it
(the stream lines are the engine's shapes: Docker Engine API, CreateImageInfo/ProgressDetail)."""

import subprocess
import sys

from ansible_collections.llmops.multillm.plugins.module_utils import _pull_progress as pp
from ansible_collections.llmops.multillm.plugins.modules import image_pull_status

IMAGE = "vllm/vllm-openai:v0.11.0"


def feed(progress, events, t):
    for event in events:
        progress.feed(event, t)


def test_bytes_count_downloads_only_and_the_line_reads_as_the_issue_asks():
    p = pp.PullProgress(IMAGE, 100.0)
    feed(p, [{"status": "Pulling from vllm/vllm-openai", "id": "v0.11.0"},
             {"status": "Pulling fs layer", "progressDetail": {}, "id": "a"},
             {"status": "Pulling fs layer", "progressDetail": {}, "id": "b"},
             {"status": "Already exists", "progressDetail": {}, "id": "c"}], 100.0)
    snap = p.snapshot(100.0)
    assert (snap["current"], snap["total"], snap["layers"], snap["layers_unsized"]) == (0, 0, 2, 2)
    assert pp.progress_line(snap, 101.0) == IMAGE + ": waiting for the registry (2 layers announced), 1 s"

    feed(p, [{"status": "Downloading", "id": "a", "progressDetail": {"current": 1_000_000_000, "total": 3_000_000_000}},
             {"status": "Downloading", "id": "b", "progressDetail": {"current": 700_000_000, "total": 6_400_000_000}}], 110.0)
    # "Extracting" repeats bytes already downloaded: layer a counts its total once, not twice
    feed(p, [{"status": "Download complete", "progressDetail": {}, "id": "a"},
             {"status": "Extracting", "id": "a", "progressDetail": {"current": 2_000_000_000, "total": 3_000_000_000}}],
         120.0)
    snap = p.snapshot(120.0)
    assert (snap["current"], snap["total"], snap["layers_present"]) == (3_700_000_000, 9_400_000_000, 1)
    # 3.7 GB in the 10 s window that ends at 120 s (the sample at 110 s held 1.7 GB)
    assert pp.progress_line(snap, 142.0) == IMAGE + ": 3.7 of 9.4 GB, 200.0 MB/s, 42 s"


def test_a_layer_not_sized_yet_is_said_and_the_error_is_the_registrys():
    p = pp.PullProgress(IMAGE, 0.0)
    feed(p, [{"status": "Pulling fs layer", "id": "a"}, {"status": "Waiting", "id": "b"},
             {"status": "Downloading", "id": "a", "progressDetail": {"current": 5_000_000, "total": 20_000_000}}], 1.0)
    assert pp.progress_line(p.snapshot(1.0), 2.0) == IMAGE + ": 5.0 of 20.0 MB, 5.0 MB/s, 2 s, 1 more layers not sized yet"
    p.feed({"errorDetail": {"message": "toomanyrequests: rate limit"}, "error": "toomanyrequests: rate limit"}, 3.0)
    assert pp.progress_line(p.snapshot(3.0, done=True), 3.0) == IMAGE + ": failed after 3 s: toomanyrequests: rate limit"


def test_human_bytes_in_the_unit_of_the_total():
    assert pp.human_bytes(9_400_000_000) == ("9.4", "GB")
    assert pp.human_bytes(3_100_000_000, "GB") == ("3.1", "GB")
    assert pp.human_bytes(85_000_000) == ("85.0", "MB")
    assert pp.human_bytes(12) == ("12", "B")


def test_the_reader_sees_the_writers_file_and_a_pull_whose_process_died(tmp_path):
    path = str(tmp_path / "pulls" / "x.json")
    assert image_pull_status.status(path, IMAGE, 5.0)["line"] == IMAGE + ": starting"
    p = pp.PullProgress(IMAGE, 0.0)
    p.feed({"status": "Downloading", "id": "a", "progressDetail": {"current": 1_000_000_000, "total": 2_000_000_000}}, 4.0)
    pp.write_snapshot(path, p.snapshot(4.0, pid=None))
    seen = image_pull_status.status(path, IMAGE, 5.0)
    assert not seen["done"] and seen["line"].startswith(IMAGE + ": 1.0 of 2.0 GB, ") and seen["total"] == 2_000_000_000
    # a writer that is gone without writing done: ended, and said so
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pp.write_snapshot(path, p.snapshot(4.0, pid=int(dead.stdout)))
    seen = image_pull_status.status(path, IMAGE, 5.0)
    assert seen["done"] and "ended without a result" in seen["error"]
