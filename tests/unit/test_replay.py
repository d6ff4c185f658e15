"""Replay: a recorded generation's requests sent again, compared step by step."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from adapters.demo_images import DemoImageGenerator, render_png
from adapters.demo_text import DemoTextGenerator
from adapters.filesystem_prompts import FilesystemPromptCatalog
from adapters.memory_repository import InMemoryExperimentRepository
from application.generation_run import ModelGateway
from application.ports import ImageRequest, TextAnswer, TextGenerator, TextRequest
from application.study import Condition, Study
from application.use_cases.converge_expand import ConvergeExpand, ConvergeExpandCommand
from application.use_cases.converge_select import (
    ConvergeSelect,
    ConvergeSelectCommand,
    SchemeSketch,
)
from application.use_cases.deep_divergence import DeepDivergenceCommand, GenerateDeepDivergence
from application.use_cases.rapid_divergence import GenerateRapidDivergence, RapidDivergenceCommand
from application.use_cases.replay import NotReplayable, ReplayGeneration
from domain.generation import DEFAULT_CONDITION, GenerationRecord
from tests.unit.fakes import TickingClock

SKETCH = "data:image/png;base64," + base64.b64encode(render_png(40, 30, 5)).decode()
OTHER_SKETCH = "data:image/png;base64," + base64.b64encode(render_png(40, 30, 6)).decode()


@dataclass
class SeenText(TextGenerator):
    """The demo model, keeping every request; `changed` steps get a different answer."""

    changed: set[str] = field(default_factory=set)
    requests: list[TextRequest] = field(default_factory=list)

    async def complete(self, request: TextRequest) -> TextAnswer:
        self.requests.append(request)
        answer = await DemoTextGenerator().complete(request)
        if request.step.rsplit("/", 1)[-1] in self.changed:
            return TextAnswer(answer.text.replace("#", "#新", 1), "demo-v2")
        return answer


class ShiftedImages(DemoImageGenerator):
    """A demo image model that paints another picture for the same request."""

    async def generate(self, request: ImageRequest) -> Any:
        return await super().generate(replace(request, seed=request.seed + 1))


async def _recorded(prompts: FilesystemPromptCatalog, run: Any) -> GenerationRecord:
    repository = InMemoryExperimentRepository()
    gateway = ModelGateway(
        DemoTextGenerator(), DemoImageGenerator(), prompts, repository, TickingClock()
    )
    await run(gateway)
    (record,) = await repository.list_generations()
    return record


RUNS = {
    "rapid": lambda g: GenerateRapidDivergence(g).execute(RapidDivergenceCommand("雨天通勤", 3)),
    "deep": lambda g: GenerateDeepDivergence(g).execute(
        DeepDivergenceCommand("雨天通勤", ("伞柄能发光",), SKETCH, 2)
    ),
    "select": lambda g: ConvergeSelect(g).execute(
        ConvergeSelectCommand(
            "雨天通勤",
            2,
            (
                SchemeSketch(("伞柄能发光",), SKETCH),
                SchemeSketch(("雨衣可折叠",), None),
                SchemeSketch(("鞋套",), OTHER_SKETCH),
            ),
        )
    ),
    "expand": lambda g: ConvergeExpand(g).execute(
        ConvergeExpandCommand(selected_schemes=(("伞柄能发光",), ("鞋套", "防滑")), num=2)
    ),
}


@pytest.mark.parametrize("kind", RUNS)
async def test_on_the_demo_models_a_replay_reproduces_its_record(
    prompts: FilesystemPromptCatalog, kind: str
) -> None:
    record = await _recorded(prompts, RUNS[kind])
    text = SeenText()
    result = await ReplayGeneration(text, DemoImageGenerator()).execute(record)
    assert result.same and result.changed == []
    assert len(result.texts) == len(record.text_steps) > 0
    assert [item.answer for item in result.texts] == [s.raw_answer for s in record.text_steps]
    assert [item.image for item in result.images] == [s.image for s in record.image_steps]
    # The recorded requests, not today's templates: prompts, counts, choices, sketches.
    for step, request in zip(record.text_steps, text.requests, strict=True):
        assert (request.step, request.prompt) == (step.name, step.prompt)
        assert request.expected_count == step.expected_count
        assert request.options == step.choices and len(request.images) == step.image_count
    if kind == "select":
        assert any(request.options for request in text.requests)
        assert [SKETCH, OTHER_SKETCH] == list(text.requests[0].images)


async def test_a_text_model_answering_differently_names_the_changed_step(
    prompts: FilesystemPromptCatalog,
) -> None:
    record = await _recorded(prompts, RUNS["rapid"])
    result = await ReplayGeneration(SeenText({"concepts"}), DemoImageGenerator()).execute(record)
    assert not result.same
    assert result.changed == ["paint/rapid_divergence/concepts#1"]
    (changed,) = [item for item in result.texts if not item.same]
    assert changed.model == "demo-v2" and changed.answer != changed.step.raw_answer


async def test_an_image_model_painting_differently_names_each_picture(
    prompts: FilesystemPromptCatalog,
) -> None:
    record = await _recorded(prompts, RUNS["rapid"])
    result = await ReplayGeneration(SeenText(), ShiftedImages()).execute(record)
    assert [item.same for item in result.texts] == [True] * len(record.text_steps)
    assert result.changed == [f"{s.name}/{s.id}" for s in record.image_steps]
    for item in result.images:
        assert item.sha256 != item.recorded_sha256 and item.request.seed == item.step.seed


async def test_a_record_from_before_replay_is_refused_before_any_model_call(
    prompts: FilesystemPromptCatalog,
) -> None:
    record = await _recorded(prompts, RUNS["rapid"])
    old = replace(
        record, text_steps=tuple(replace(s, expected_count=None) for s in record.text_steps)
    )
    text = SeenText()
    with pytest.raises(NotReplayable, match="keeps no item count"):
        await ReplayGeneration(text, DemoImageGenerator()).execute(old)
    assert text.requests == []
    no_options = replace(
        record, image_steps=tuple(replace(s, options=None) for s in record.image_steps)
    )
    with pytest.raises(NotReplayable, match="keeps no txt2img options"):
        await ReplayGeneration(text, DemoImageGenerator()).execute(no_options)


async def test_text_steps_go_to_the_text_model_of_the_records_condition(
    prompts: FilesystemPromptCatalog,
) -> None:
    record = replace(await _recorded(prompts, RUNS["rapid"]), condition="vivid")
    study = Study(
        "s",
        (
            Condition("baseline", prompts),
            Condition("vivid", prompts, text_model="gpt-4o-mini", text_endpoints=("eu",)),
        ),
    )
    text = SeenText()
    result = await ReplayGeneration(text, DemoImageGenerator(), study).execute(record)
    assert len(text.requests) == len(record.text_steps)
    assert {(r.model, r.endpoints) for r in text.requests} == {("gpt-4o-mini", ("eu",))}
    assert result.same  # the demo model answers by prompt, whatever model is named

    gone = replace(record, condition="muted")
    with pytest.raises(NotReplayable, match="condition 'muted' is not in the configured study"):
        await ReplayGeneration(SeenText(), DemoImageGenerator(), study).execute(gone)
    # A record of the default condition replays on the configured model.
    default = replace(record, condition=DEFAULT_CONDITION)
    text = SeenText()
    await ReplayGeneration(text, DemoImageGenerator(), study).execute(default)
    assert {(r.model, r.endpoints) for r in text.requests} == {(None, ())}
