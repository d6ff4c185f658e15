"""Domain rules: usernames, stages, client images, name matching, creatives."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from adapters.demo_images import render_png
from domain.choices import make_unique, match_choices
from domain.creatives import Item, ItemType
from domain.errors import InvalidInput
from domain.experiment import Experiment, Stage, check_stage, check_username
from domain.images import normalise_image


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ({"$ne": None}, "must be a string"),
        (["alice"], "must be a string"),
        (42, "must be a string"),
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("a" * 65, "at most 64"),
        ("$where", "must not start with '$'"),
        ("bob\x00", "control characters"),
    ],
)
def test_bad_usernames_are_refused_with_the_rule(value: object, rule: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_username(value)
    assert caught.value.field == "username"
    assert rule in caught.value.rule


def test_good_username_is_trimmed() -> None:
    assert check_username("  参与者07 ") == "参与者07"
    assert check_username("a" * 64) == "a" * 64


def test_stage_must_be_a_front_end_stage() -> None:
    assert check_stage("深入发散") is Stage.DEEP_DIVERGENCE
    with pytest.raises(InvalidInput, match="must be one of"):
        check_stage("deep")


def test_save_replaces_named_stages_and_keeps_the_rest() -> None:
    rapid = ({"name": "a", "paths": []},)
    deep = ({"name": "b", "paths": [1, 2]},)
    experiment = Experiment("alice").with_saved_state(
        current_stage=Stage.RAPID_DIVERGENCE,
        design_task="task",
        schemes={Stage.RAPID_DIVERGENCE: rapid, Stage.DEEP_DIVERGENCE: deep},
        at=datetime.now(UTC),
    )
    later = experiment.with_saved_state(
        current_stage=None,
        design_task=None,
        schemes={Stage.DEEP_DIVERGENCE: ()},
        at=datetime.now(UTC),
    )
    assert later.schemes_of(Stage.RAPID_DIVERGENCE) == rapid
    assert later.schemes_of(Stage.DEEP_DIVERGENCE) == ()
    assert later.current_stage is Stage.RAPID_DIVERGENCE
    assert later.design_task == "task"


def _png_b64() -> str:
    return base64.b64encode(render_png(4, 4, 1)).decode()


def test_client_image_accepts_data_uri_and_bare_base64() -> None:
    payload = _png_b64()
    assert normalise_image(f"data:image/png;base64,{payload}", "f", 1 << 20).endswith(payload)
    assert normalise_image(payload, "f", 1 << 20) == f"data:image/png;base64,{payload}"


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("data:image/png;base64,!!!!", "PNG or JPEG data URI"),
        (base64.b64encode(b"GIF89a....").decode(), "PNG or JPEG image"),
        ("data:text/plain;base64,aGVsbG8=", "PNG or JPEG"),
    ],
)
def test_client_image_refused_with_rule(value: str, rule: str) -> None:
    with pytest.raises(InvalidInput, match=rule):
        normalise_image(value, "prompts.designImage", 1 << 20)


def test_client_image_size_checked_before_decoding() -> None:
    big = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(3 * 1024 * 1024)).decode()
    with pytest.raises(InvalidInput, match="at most 2 MB"):
        normalise_image(big, "prompts.designImage", 2 * 1024 * 1024)


def test_choices_match_loosely_without_repeats_or_strangers() -> None:
    names = ["智能水杯", "智能水杯Pro", "折叠雨伞"]
    answers = ["《智能水杯Pro》", "方案1：折叠雨伞", "折叠雨伞", "不存在的方案"]
    assert match_choices(answers, names, 3) == ["智能水杯Pro", "折叠雨伞"]
    assert match_choices(["智能水杯", "折叠雨伞"], names, 1) == ["智能水杯"]


def test_repeated_names_are_made_unique() -> None:
    assert make_unique(["杯", "杯", "伞", "杯"]) == ["杯", "杯2", "伞", "杯3"]
    assert make_unique(["杯2", "杯", "杯"]) == ["杯2", "杯", "杯3"]


def test_blank_stimuli_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="image bytes"):
        Item.image_item(ItemType.ABSTRACT_IMAGE, b"")
    with pytest.raises(ValueError, match="non-empty text"):
        Item.text_item(ItemType.CONCRETE_TEXT, "  ")
    with pytest.raises(ValueError, match="combinations"):
        Item(ItemType.GROUP_TYPE_TWO)
