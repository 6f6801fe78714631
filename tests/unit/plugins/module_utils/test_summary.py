"""The verify stage's summary table (_summary.verify_summary), on plain data."""

import re

import pytest
import yaml

from ansible_collections.llmops.multillm.plugins.filter.multillm import FilterModule
from ansible_collections.llmops.multillm.plugins.module_utils._summary import for_display, gateway_url, render_table, verify_summary

QWEN, OCR = "qwen2.5-14b-instruct", "paddleocr-vl"
GATEWAY = {"host": "h100-01", "address": "192.0.2.10", "bind_address": "0.0.0.0", "port": 4001,
           "status": {QWEN: 200, OCR: 200}}


def endpoint(name, port, host="127.0.0.1"):
    return {"name": name, "model": "o/" + name, "unit": "multillm-model-%s.service" % name,
            "container": "multillm-model-" + name, "host": host, "port": port,
            "api_base": "http://%s:%d/v1" % (host, port)}


def one_gpu(**over):
    facts = {
        "host": "h100-01", "gpu_required": True, "resting_vram_gib": 37.0, "tolerance_gib": 3.0,
        "models": [{"name": QWEN, "resting_gib": 31.8, "kv_tokens": 53760}, {"name": OCR, "resting_gib": 4.5}],
        "endpoints": [endpoint(QWEN, 8001), endpoint(OCR, 8002)],
        "verify": {QWEN: {"port": 8001, "health": 200, "resting_gib": 31.62, "kv_tokens": 55952},
                   OCR: {"port": 8002, "health": 200, "resting_gib": 4.9, "kv_tokens": "n/a"}},
        "vram": {"used_gib": 36.52, "containers": {
            "multillm-model-" + QWEN: {"gpus": [0], "used_gib": 31.62, "expected_gib": 31.8, "tolerance_gib": 3.0},
            "multillm-model-" + OCR: {"gpus": [0], "used_gib": 4.9, "expected_gib": 4.5, "tolerance_gib": 3.0}},
            "gpu_summary": ["GPU 0 36.52 GiB: ok; multillm-model-qwen2.5-14b-instruct 31.62 GiB"]},
        "gateways": [dict(GATEWAY)],
        "failures": [],
    }
    facts.update(over)
    return facts


def table(lines):
    """The header and model rows, split into cells on runs of 2+ blanks."""
    start = next(i for i, line in enumerate(lines) if line.startswith("model "))
    rows = []
    for line in lines[start:]:
        if not re.match(r"^\S", line) or line.startswith(("GPU ", "gateway", "FAILED")):
            break
        rows.append(re.split(r"\s{2,}", line))
    return rows


def row(lines, name):
    header, rows = table(lines)[0], table(lines)[1:]
    return dict(zip(header, next(r for r in rows if r[0] == name)))


def test_one_gpu_host_shows_each_model_its_figures_and_the_verdicts():
    lines = verify_summary(one_gpu())
    assert lines[0] == "host h100-01: 2 model(s), resting VRAM 36.5 GiB against 37.0 ± 3.0 GiB: ok, verify passed"
    assert row(lines, QWEN) == {"model": QWEN, "GPU(s)": "0", "health": "ok", "resting-GiB": "31.6",
                                "expected-GiB": "31.8±3.0", "VRAM": "ok", "KV-tokens": "55,952",
                                "KV-plan": "53,760", "gateway": "ok"}
    assert row(lines, OCR)["KV-tokens"] == "n/a" and row(lines, OCR)["KV-plan"] == "n/a"
    assert "GPU 0 36.52 GiB: ok; multillm-model-qwen2.5-14b-instruct 31.62 GiB" in lines


def test_columns_are_aligned_and_as_wide_as_their_widest_cell():
    out = render_table(("a", "bb"), [["long cell", None], ["x", "y"]])
    assert out == ["a          bb", "long cell  n/a", "x          y"]
    lines = verify_summary(one_gpu())
    rows = [line for line in lines if line.startswith(("model ", QWEN, OCR))]
    starts = [[m.start() for m in re.finditer(r"(?<=  )\S", line)] for line in rows]
    assert starts[0] == starts[1] == starts[2]
    assert all(line == line.rstrip() for line in lines)


def test_several_gpus_show_each_models_gpus_as_measured_and_each_gpu_line():
    facts = one_gpu(
        models=[{"name": "llama-70b", "gpus": [0, 1, 2, 3], "tensor_parallel_size": 4, "resting_gib": 280},
                {"name": "small-a", "gpus": [4]}, {"name": "small-b", "gpus": [4]}],
        endpoints=[endpoint("llama-70b", 8001), endpoint("small-a", 8002), endpoint("small-b", 8003)],
        verify={"llama-70b": {"health": 200, "resting_gib": 281.0}, "small-a": {"health": 200},
                "small-b": {"health": 200}},
        vram={"used_gib": 300.0, "containers": {"multillm-model-llama-70b": {"gpus": [0, 1, 2, 3], "used_gib": 281.0}},
              "gpu_summary": ["GPU %d line" % i for i in range(5)]},
        gateways=[dict(GATEWAY, status={"llama-70b": 200, "small-a": 200, "small-b": 200})])
    lines = verify_summary(facts)
    assert row(lines, "llama-70b")["GPU(s)"] == "0,1,2,3"       # measured
    assert row(lines, "small-a")["GPU(s)"] == "4"                # planned: no process seen
    assert row(lines, "llama-70b")["expected-GiB"] == "280.0±3.0"
    assert row(lines, "small-b")["resting-GiB"] == "n/a"
    assert ["GPU %d line" % i for i in range(5)] == [line for line in lines if line.startswith("GPU ")]


def test_a_failed_model_shows_its_status_and_the_reason_under_the_table():
    facts = one_gpu(failures=["host h100-01: model paddleocr-vl answered /health with 503, not 200."])
    facts["verify"][OCR]["health"] = 503
    facts["gateways"][0]["status"] = {QWEN: 200}
    lines = verify_summary(facts)
    assert lines[0].endswith("verify FAILED")
    assert row(lines, OCR)["health"] == "503"
    assert row(lines, OCR)["gateway"] == "absent"
    assert lines[-1] == "FAILED: host h100-01: model paddleocr-vl answered /health with 503, not 200."


def test_a_host_whose_checks_stopped_early_shows_n_a_not_made_up_figures():
    lines = verify_summary(one_gpu(verify={}, vram={}, gateways=[dict(GATEWAY, status=None)], failures=["boom"]))
    r = row(lines, QWEN)
    assert (r["health"], r["resting-GiB"], r["VRAM"], r["KV-tokens"], r["gateway"]) == (
        "unchecked", "n/a", "n/a", "n/a", "n/a")
    assert r["expected-GiB"] == "31.8±3.0"
    assert "resting VRAM n/a" in lines[0]


def test_a_host_whose_gpu_could_not_be_read_shows_no_figure():
    vram = {"used_gib": 0.0, "used_mib": 0, "gpus": [], "containers": {}, "cause": "no_library"}
    lines = verify_summary(one_gpu(vram=vram, failures=["no GPU can be read"]))
    assert "resting VRAM n/a" in lines[0] and "OFF" not in lines[0]


def test_vram_off_target_says_off():
    facts = one_gpu()
    facts["vram"]["used_gib"] = 45.0
    facts["verify"][QWEN]["resting_gib"] = 40.0
    lines = verify_summary(facts)
    assert "against 37.0 ± 3.0 GiB: OFF" in lines[0]
    assert row(lines, QWEN)["VRAM"] == "OFF"


def test_a_200_without_usage_or_a_whole_stream_is_not_ok_in_the_gateway_column():
    facts = one_gpu()
    facts["gateways"][0]["status"] = {QWEN: 200, OCR: 200}
    facts["gateways"][0]["details"] = {
        QWEN: {"status": 200, "problems": []},
        OCR: {"status": 200, "problems": ["model paddleocr-vl: the stream ended without data: [DONE]"]}}
    lines = verify_summary(facts)
    assert row(lines, QWEN)["gateway"] == "ok"
    assert row(lines, OCR)["gateway"] == "failed"


def test_the_gateway_lines_are_ready_to_paste_and_read_the_key_from_the_environment():
    lines = verify_summary(one_gpu())
    url = "http://192.0.2.10:4001/v1"
    at = lines.index("  curl -s %s/models \\" % url)
    assert lines[at + 1] == '    -H "Authorization: Bearer $LITELLM_MASTER_KEY"'
    at = lines.index("  curl -s %s/chat/completions \\" % url)
    assert lines[at + 1:at + 4] == ['    -H "Authorization: Bearer $LITELLM_MASTER_KEY" \\', '    -H "Content-Type: application/json" \\',
                                    """    -d '{"model":"qwen2.5-14b-instruct","max_tokens":32,"messages":[{"role":"user","content":"Hello!"}]}'"""]
    at = lines.index('  client = OpenAI(api_key=os.environ["LITELLM_MASTER_KEY"],')
    assert lines[at + 1:at + 4] == ['                  base_url="%s")' % url, "  reply = client.chat.completions.create(",
                                    '      model="qwen2.5-14b-instruct",']


def test_no_key_is_printed_even_when_one_travels_with_the_facts():
    secret = "sk-SENTINEL-0123456789abcdef"
    facts = one_gpu(gateways=[dict(GATEWAY, master_key=secret, litellm_gateway_master_key=secret)])
    facts["models"][0]["env"] = {"HF_TOKEN": secret}
    assert not [line for line in verify_summary(facts) if "SENTINEL" in line]


def test_no_gateway_host_points_at_each_models_own_address():
    lines = verify_summary(one_gpu(gateways=[]))
    assert row(lines, QWEN)["gateway"] == "n/a"
    assert not [line for line in lines if "LITELLM_MASTER_KEY" in line]
    assert any(line.startswith("gateway: none") for line in lines)
    assert "  qwen2.5-14b-instruct  curl -s http://127.0.0.1:8001/v1/models" in lines


def test_a_host_without_gpu_says_so():
    facts = one_gpu(gpu_required=False, vram={})
    lines = verify_summary(facts)
    assert "no GPU required here, resting VRAM not measured" in lines[0]
    assert row(lines, QWEN)["GPU(s)"] == "none"


def test_a_gateway_only_host_lists_the_models_it_serves():
    lines = verify_summary({"host": "gw", "gateways": [dict(GATEWAY, host="gw")]})
    assert lines[0].startswith("host gw: 0 model(s)")
    assert "no models on this host" in lines
    assert any(line.startswith("gateway http://192.0.2.10:4001/v1 on gw; models: paddleocr-vl, qwen2.5-14b-instruct")
               for line in lines)


@pytest.mark.parametrize("gateway, url", [
    ({"host": "a", "address": "192.0.2.10", "bind_address": "0.0.0.0", "port": 4001}, "http://192.0.2.10:4001/v1"),
    ({"host": "a", "bind_address": "::", "port": 4001}, "http://a:4001/v1"),
    ({"host": "a", "address": "10.0.0.5", "bind_address": "127.0.0.1", "port": 4100}, "http://127.0.0.1:4100/v1"),
    ({"host": "a", "address": "2001:db8::5", "bind_address": "0.0.0.0", "port": 4001}, "http://[2001:db8::5]:4001/v1"),
])
def test_gateway_url(gateway, url):
    assert gateway_url(gateway) == url


def test_a_loopback_gateway_says_where_it_answers():
    lines = verify_summary(one_gpu(gateways=[dict(GATEWAY, bind_address="127.0.0.1")]))
    assert any(line.startswith("gateway http://127.0.0.1:4001/v1 on h100-01 (loopback: from that host only)") for line in lines)


def test_a_model_name_with_a_quote_stays_one_shell_word():
    facts = one_gpu(models=[{"name": "it's"}], endpoints=[], verify={})
    lines = verify_summary(facts)
    assert """    -d '{"model":"it'"'"'s","max_tokens":32,"messages":[{"role":"user","content":"Hello!"}]}'""" in lines


def test_the_filter_gives_the_lines_with_each_paste_block_as_one_item():
    lines = verify_summary(one_gpu(failures=["boom"]))
    shown = FilterModule().filters()["verify_summary"](one_gpu(failures=["boom"]))
    assert shown == for_display(lines)
    assert shown[-1] == "FAILED: boom"
    block = next(item for item in shown if "\n" in item)
    assert block.splitlines() == [line[2:] for line in lines if line.startswith("  ")]
    assert block.splitlines()[1] == "curl -s http://192.0.2.10:4001/v1/models \\"
    assert [item for item in shown if "\n" not in item] == [line for line in lines if not line.startswith("  ")]


def test_a_paste_block_prints_as_is_in_ansibles_yaml_result_format(tmp_path):
    import json
    import os
    import pathlib
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parents[4]
    (tmp_path / "facts.json").write_text(json.dumps({"facts": one_gpu()}))
    (tmp_path / "p.yml").write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.debug:\n        msg: \"{{ facts | llmops.multillm.verify_summary }}\"\n")
    env = dict(os.environ, ANSIBLE_CONFIG=str(root / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(root / "collections"),
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default", ANSIBLE_CALLBACK_RESULT_FORMAT="yaml",
               ANSIBLE_NOCOLOR="1")
    playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    run = subprocess.run([playbook, "-i", "localhost,", "-c", "local", "-e", "@" + str(tmp_path / "facts.json"),
                          str(tmp_path / "p.yml")], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    block = next(item for item in FilterModule().filters()["verify_summary"](one_gpu()) if "\n" in item)
    pasted = [line.strip() for line in block.splitlines()]
    out = [line.strip() for line in run.stdout.splitlines()]
    at = out.index(pasted[0])
    assert out[at:at + len(pasted)] == pasted
    row = next(line for line in out if QWEN in line and "55,952" in line)
    assert re.split(r"\s{2,}", row)[:4] == ["- qwen2.5-14b-instruct", "0", "ok", "31.6"]
