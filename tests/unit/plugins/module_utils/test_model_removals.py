"""model_removals (plugins/module_utils/_model_spec.py): the models a host still has that left the
list, named as model_spec names a listed model's unit, container and env file."""

from ansible_collections.llmops.multillm.plugins.filter.multillm import FilterModule
from ansible_collections.llmops.multillm.plugins.module_utils import _model_spec as ms

QWEN = {"name": "qwen2.5-14b-instruct", "model": "Qwen/Qwen2.5-14B-Instruct", "port": 8001, "gpu_memory_utilization": 0.5}
UNITS = "/etc/systemd/system/"


def test_a_model_that_left_the_list_is_named_as_its_spec_named_it():
    old = dict(QWEN, name="old", port=8002)
    spec = ms.model_specs([old], {"model_stack_name_prefix": "llm-", "model_stack_config_dir": "/etc/m"})[0]
    out = ms.model_removals([QWEN], [UNITS + spec["unit"]], ["/" + spec["container"]],
                            {"model_stack_name_prefix": "llm-", "model_stack_config_dir": "/etc/m"})
    assert out == [{"name": "old", "unit": spec["unit"], "unit_file": UNITS + spec["unit"],
                    "container": spec["container"], "env_file": spec["env_file"]}]
    assert (spec["unit"], spec["container"], spec["env_file"]) == ("llm-old.service", "llm-old", "/etc/m/old.env")


def test_listed_models_stay_and_a_unit_or_a_container_alone_is_enough():
    units = [UNITS + "multillm-model-qwen2.5-14b-instruct.service", UNITS + "multillm-model-b.service"]
    containers = ["/multillm-model-qwen2.5-14b-instruct", "/multillm-model-a", "/multillm-model-b"]
    out = ms.model_removals([QWEN], units, containers)
    assert [(r["name"], r["unit_file"]) for r in out] == [("a", None), ("b", UNITS + "multillm-model-b.service")]
    assert out[0]["unit"] == "multillm-model-a.service" and out[0]["env_file"] == "/etc/multillm/models/a.env"


def test_names_without_the_prefix_are_not_this_hosts_models():
    units = [UNITS + "other.service", UNITS + "multillm-model-.service", UNITS + "multillm-model-x.service.d"]
    containers = ["/registry", "/multillm-model-", "/llm-x"]
    assert ms.model_removals([QWEN], units, containers) == []
    # a prefix with regex characters is matched as text
    assert [r["name"] for r in ms.model_removals([], [UNITS + "m.x-a.service", UNITS + "mZx-b.service"], [],
                                                 {"model_stack_name_prefix": "m.x-"})] == ["a"]


def test_nothing_on_the_host_nothing_to_remove():
    assert ms.model_removals([QWEN], [], []) == []


def test_the_filter_is_model_removals():
    assert FilterModule().filters()["model_removals"] is ms.model_removals
