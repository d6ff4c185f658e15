"""Shipped templates all render; a broken one stops start-up, naming file and placeholder."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.filesystem_prompts import FilesystemPromptCatalog, TemplateError
from application.steps import (
    IMAGE_KINDS,
    PRODUCT_IMAGES,
    SCENE_IMAGES,
    TEXT_STEPS,
    StepSpec,
)
from tests.unit.conftest import catalog_of

_catalog = catalog_of


@pytest.mark.parametrize("spec", TEXT_STEPS, ids=lambda spec: spec.key)
def test_every_shipped_template_renders_every_variable(
    prompts: FilesystemPromptCatalog, spec: StepSpec
) -> None:
    variables = {name: f"<{name}-value>" for name in spec.allowed}
    rendered = prompts.render(spec.key, variables)
    for name in spec.required:
        assert f"<{name}-value>" in rendered
    assert "$" not in rendered
    if spec.required & {"num", "select_num"}:
        assert "#" in rendered, "a step asking for a list asks for a #-separated answer"


@pytest.mark.parametrize("kind", IMAGE_KINDS)
def test_image_templates_wrap_the_prompt_with_study_defaults(
    prompts: FilesystemPromptCatalog, kind: str
) -> None:
    request = prompts.image_template(kind).request_for("kitchen counter, morning light")
    assert "kitchen counter, morning light" in request.prompt
    assert "watermark" in request.negative_prompt and "text" in request.negative_prompt
    assert (request.width, request.height, request.steps) == (1024, 576, 30)
    assert request.cfg_scale == 5.0 and request.sampler_name == "DPM++ 2M SDE Karras"
    assert request.styles == ("photographic",) and request.checkpoint == "sd_xl_base_1.0"


def test_product_template_is_a_product_photo(prompts: FilesystemPromptCatalog) -> None:
    assert "white background" in prompts.image_template(PRODUCT_IMAGES).positive
    assert "white background" not in prompts.image_template(SCENE_IMAGES).positive


def test_unknown_placeholder_refuses_to_load(prompt_copy: Path) -> None:
    path = prompt_copy / "paint/rapid_divergence/places.txt"
    path.write_text(path.read_text(encoding="utf-8") + "\n$produts", encoding="utf-8")
    with pytest.raises(TemplateError) as caught:
        _catalog(prompt_copy)
    assert "places.txt" in str(caught.value) and "$produts" in str(caught.value)


def test_missing_placeholder_refuses_to_load(prompt_copy: Path) -> None:
    path = prompt_copy / "paint/deep_divergence/functions.txt"
    path.write_text("写 3 段功能说明，用 # 隔开：$products", encoding="utf-8")
    with pytest.raises(TemplateError, match=r"functions\.txt: missing placeholder \$num"):
        _catalog(prompt_copy)


def test_missing_file_refuses_to_load(prompt_copy: Path) -> None:
    (prompt_copy / "paint/converge_select/choose.txt").unlink()
    with pytest.raises(TemplateError, match=r"choose\.txt: template file is missing"):
        _catalog(prompt_copy)


def test_bad_image_option_refuses_to_load(prompt_copy: Path) -> None:
    options = prompt_copy / "paint/images/options.toml"
    options.write_text(options.read_text() + "\n[scene.extra]\n", encoding="utf-8")
    _catalog(prompt_copy)  # an extra table is allowed
    options.write_text('[scene]\nsteps = "thirty"\n', encoding="utf-8")
    with pytest.raises(TemplateError, match="option 'steps' must be int"):
        _catalog(prompt_copy)
    options.write_text("[product]\nsamplr = 'Euler'\n", encoding="utf-8")
    with pytest.raises(TemplateError, match="unknown option 'samplr'"):
        _catalog(prompt_copy)


def test_template_override_changes_the_request(prompt_copy: Path) -> None:
    options = prompt_copy / "paint/images/options.toml"
    options.write_text("[scene]\nwidth = 768\nsteps = 20\n", encoding="utf-8")
    request = _catalog(prompt_copy).image_template(SCENE_IMAGES).request_for("x")
    assert (request.width, request.height, request.steps) == (768, 576, 20)


def test_versions_name_the_file_and_change_only_with_its_content(prompt_copy: Path) -> None:
    before = _catalog(prompt_copy)
    products = "paint/rapid_divergence/products"
    assert before.version(products).path == "paint/rapid_divergence/products.txt"
    assert _catalog(prompt_copy).version(products) == before.version(products)
    path = prompt_copy / "paint/rapid_divergence/products.txt"
    path.write_text(path.read_text(encoding="utf-8") + "\n请简洁。", encoding="utf-8")
    options = prompt_copy / "paint/images/options.toml"
    text = options.read_text(encoding="utf-8")
    options.write_text(text.replace("[product]", "[product]\nsteps = 41"), encoding="utf-8")
    after = _catalog(prompt_copy)
    assert after.version(products).digest != before.version(products).digest
    places = "paint/rapid_divergence/places"
    assert after.version(places) == before.version(places)
    scene, product = (
        (before.image_template(kind).version, after.image_template(kind).version)
        for kind in (SCENE_IMAGES, PRODUCT_IMAGES)
    )
    assert scene[0] == scene[1] and scene[0] is not None and scene[0].path == SCENE_IMAGES
    assert product[0] != product[1]
