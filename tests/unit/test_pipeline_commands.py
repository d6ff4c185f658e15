"""The pipelines' rules live in their commands: every edge and every test builds through them."""

from __future__ import annotations

import base64

import pytest

from adapters.demo_images import render_png
from application.pipeline import MAX_TEXT_CHARS, Limits, pictures_of
from application.use_cases.converge_expand import ConvergeExpandCommand
from application.use_cases.converge_select import ConvergeSelectCommand, ConvergeSelectResult
from application.use_cases.deep_divergence import DeepDivergenceCommand
from application.use_cases.rapid_divergence import RapidDivergenceCommand
from domain.errors import InvalidInput

LIMITS = Limits(max_num=4, max_image_bytes=1024 * 1024)
SKETCH = "data:image/png;base64," + base64.b64encode(render_png(16, 12, 1)).decode()


def _refusal(build: object) -> tuple[str, str]:
    with pytest.raises(InvalidInput) as refused:
        build()  # type: ignore[operator]
    return refused.value.field, refused.value.rule


def test_rapid_divergence_needs_a_task_and_a_num_within_the_limit() -> None:
    command = RapidDivergenceCommand.build("  厨房  ", 4, LIMITS, "p1")
    assert (command.task, command.num, command.username) == ("厨房", 4, "p1")
    assert _refusal(lambda: RapidDivergenceCommand.build(" ", 2, LIMITS)) == (
        "task",
        "must not be empty",
    )
    assert _refusal(lambda: RapidDivergenceCommand.build("t", 5, LIMITS)) == (
        "num",
        "must be between 1 and 4",
    )


def test_deep_divergence_checks_notes_and_sketch_by_their_paths() -> None:
    command = DeepDivergenceCommand.build("t", ["a"], SKETCH, 0, LIMITS)
    assert command.design_image is not None and command.design_image.startswith("data:image/png")
    too_long = ["x" * (MAX_TEXT_CHARS + 1)]
    field, _ = _refusal(lambda: DeepDivergenceCommand.build("t", too_long, None, 0, LIMITS))
    assert field == "design_texts[0]"
    field, rule = _refusal(lambda: DeepDivergenceCommand.build("t", ["a"], "nope", 0, LIMITS))
    assert field == "design_image" and "PNG or JPEG" in rule
    field, _ = _refusal(lambda: DeepDivergenceCommand.build("t", [" "], None, 0, LIMITS))
    assert field == "design_texts"


def test_converge_select_bounds_its_schemes() -> None:
    schemes = [(["a"], SKETCH), ([], None)]
    command = ConvergeSelectCommand.build("t", 1, schemes, LIMITS)
    assert [s.design_image is not None for s in command.schemes] == [True, False]
    assert _refusal(lambda: ConvergeSelectCommand.build("t", 0, schemes, LIMITS))[0] == "select_num"
    many = [(["a"], None)] * 17
    assert _refusal(lambda: ConvergeSelectCommand.build("t", 1, many, LIMITS)) == (
        "schemes",
        "must list at most 16 schemes",
    )
    bad = [(["a"], None), (["a"], "junk")]
    assert _refusal(lambda: ConvergeSelectCommand.build("t", 1, bad, LIMITS))[0] == (
        "schemes[1].design_image"
    )
    assert pictures_of(ConvergeSelectResult(("a",), ("a",))) == {}


def test_converge_expand_bounds_pictures_of_each_kind() -> None:
    assert ConvergeExpandCommand.build([["a"], ["b"]], 2, LIMITS).num == 2
    field, rule = _refusal(lambda: ConvergeExpandCommand.build([["a"]] * 4, 4, LIMITS))
    assert field == "selected_schemes" and "at most 12 (asked 16)" in rule
    assert _refusal(lambda: ConvergeExpandCommand.build([], 1, LIMITS))[0] == "selected_schemes"
