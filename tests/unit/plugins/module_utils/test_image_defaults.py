"""The default images: each one shown to exist, or built by a documented command."""


# Issue 15 item 4: no default that cannot be shown to exist. kvcached documents only `:latest`,
# so its default is a local image the README builds from kvcached's own Dockerfile and ships
# through model_stack_image_archives; the vLLM default is the release model_stack_vllm_version names.
def test_the_kvcached_default_is_the_local_build_the_readme_documents():
    import pathlib
    import yaml
    from ansible_collections.llmops.multillm.plugins.module_utils import _contract as c
    root = pathlib.Path(__file__).resolve().parents[4]
    image = c.MODEL_STACK_DEFAULTS["model_stack_image_kvcached"]
    assert "/" not in image.split(":")[0], "a registry image nobody verified"
    readme = (root / "README.md").read_text()
    assert "docker build -f docker/Dockerfile.vllm -t %s docker" % image in readme
    assert "docker image save -o /srv/images/kvcached-vllm.tar %s" % image in readme
    defaults = yaml.safe_load((root / "roles" / "model_stack" / "defaults" / "main.yml").read_text())
    assert defaults["model_stack_image_kvcached"] == image
    vllm = c.MODEL_STACK_DEFAULTS["model_stack_vllm_version"]
    assert c.MODEL_STACK_DEFAULTS["model_stack_image_static"] == "vllm/vllm-openai:v" + vllm
    assert image.endswith("-vllm-v" + vllm) and ("kvcached-v%s-" % c.MODEL_STACK_DEFAULTS["model_stack_kvcached_version"]) in image
