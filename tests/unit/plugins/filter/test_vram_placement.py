"""The thin filter vram_placement calls _placement.vram_expectations."""

from ansible_collections.llmops.multillm.plugins.filter.multillm import FilterModule
from ansible_collections.llmops.multillm.plugins.module_utils._model_spec import model_specs


def test_the_filter_returns_the_options_of_vram_check():
    models = [{"name": "a", "model": "o/a", "port": 8001, "gpu_memory_utilization": 0.3, "gpus": [3]}]
    out = FilterModule().filters()["vram_placement"](model_specs(models, {}), models, 4)
    assert out == {"gpus": {"0": None, "1": None, "2": None, "3": None},
                   "containers": {"multillm-model-a": {"gpus": ["3"]}},
                   "present": {"0": None, "1": None, "2": None, "3": None}}
