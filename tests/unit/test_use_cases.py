"""The four pipelines and the session use cases, on in-memory fakes of every port."""

from __future__ import annotations

import pytest

from adapters.filesystem_prompts import FilesystemPromptCatalog
from adapters.memory_repository import InMemoryExperimentRepository
from application.generation_run import ModelGateway
from application.steps import SCENE_IMAGES
from application.use_cases.converge_expand import ConvergeExpand, ConvergeExpandCommand
from application.use_cases.converge_select import (
    ConvergeSelect,
    ConvergeSelectCommand,
    SchemeSketch,
)
from application.use_cases.deep_divergence import DeepDivergenceCommand, GenerateDeepDivergence
from application.use_cases.rapid_divergence import GenerateRapidDivergence, RapidDivergenceCommand
from application.use_cases.sessions import (
    SaveSession,
    SaveSessionCommand,
    StartSession,
    StartSessionCommand,
)
from domain.creatives import CreativeType, DisplayType, ItemType
from domain.errors import (
    InvalidInput,
    ModelAnswerInvalid,
    ModelTimeout,
    ModelUnavailable,
    NotFound,
)
from domain.experiment import SCHEME_STAGES, Experiment, Stage
from domain.generation import Outcome, Pipeline
from tests.unit.fakes import FakeImageGenerator, RecordingTextGenerator, TickingClock

SKETCH = "data:image/png;base64,iVBORw0KGgo="


async def test_rapid_divergence_pairs_each_scene_with_a_concept(
    gateway: ModelGateway, images: FakeImageGenerator
) -> None:
    result = await GenerateRapidDivergence(gateway).execute(RapidDivergenceCommand("厨房", 6))
    assert len(result.creatives) == 6
    for creative in result.creatives:
        assert creative.type is CreativeType.RAPID_ABSTRACT
        assert creative.display_type is DisplayType.SEQUENCE
        assert [item.type for item in creative.items] == [
            ItemType.ABSTRACT_IMAGE,
            ItemType.ABSTRACT_TEXT,
        ]
        assert creative.items[0].image and creative.items[0].image.startswith(b"\x89PNG")
    assert len(images.requests) == 6
    # The scene template wraps the bare prompt and carries the shared negative prompt.
    assert all("photorealistic" in request.prompt for request in images.requests)
    assert all("watermark" in request.negative_prompt for request in images.requests)
    assert images.requests[0].width == 1024 and images.requests[0].height == 576


async def test_concepts_do_not_wait_for_the_scene_chain(
    gateway: ModelGateway, text: RecordingTextGenerator, images: FakeImageGenerator
) -> None:
    text.latency_s = 0.05
    images.latency_s = 0.05
    await GenerateRapidDivergence(gateway).execute(RapidDivergenceCommand("厨房", 3))
    (concepts,) = text.calls_of("concepts")
    (places,) = text.calls_of("places")
    (scene_prompts,) = text.calls_of("scene_prompts")
    assert concepts.started < places.finished
    assert concepts.finished < scene_prompts.finished


async def test_all_images_of_a_pipeline_are_requested_together(
    gateway: ModelGateway, images: FakeImageGenerator
) -> None:
    images.latency_s = 0.05
    await GenerateRapidDivergence(gateway).execute(RapidDivergenceCommand("厨房", 6))
    assert images.max_in_flight == 6


async def test_count_mismatch_is_cut_or_asked_again(
    gateway: ModelGateway, text: RecordingTextGenerator, repository: InMemoryExperimentRepository
) -> None:
    text.scripted["products"] = ["1. 雨伞\n2. 水杯\n3. 台灯\n4. 风扇"]
    text.scripted["places"] = ["地铁#厨房", "地铁#厨房#公园"]
    result = await GenerateRapidDivergence(gateway).execute(RapidDivergenceCommand("任务", 3))
    assert len(result.creatives) == 3
    assert len(text.calls_of("places")) == 2
    (record,) = await repository.list_generations()
    places_steps = [step for step in record.text_steps if step.name.endswith("/places")]
    assert [step.attempt for step in places_steps] == [1, 2]
    assert places_steps[0].error and "expected 3" in places_steps[0].error
    assert places_steps[1].items == ("地铁", "厨房", "公园")
    products_step = next(step for step in record.text_steps if step.name.endswith("/products"))
    assert products_step.items == ("雨伞", "水杯", "台灯")


async def test_a_list_that_never_fits_is_a_model_error(
    gateway: ModelGateway, text: RecordingTextGenerator
) -> None:
    text.scripted["products"] = ["只有一个"] * 3
    with pytest.raises(ModelAnswerInvalid, match="after 3 attempts"):
        await GenerateRapidDivergence(gateway).execute(RapidDivergenceCommand("任务", 3))


async def test_failing_image_model_gives_a_typed_error_and_a_failed_record(
    gateway: ModelGateway, images: FakeImageGenerator, repository: InMemoryExperimentRepository
) -> None:
    images.fail_with = ModelUnavailable("all SD instances are down", retry_after_s=5)
    images.fail_every = 3
    with pytest.raises(ModelUnavailable):
        await GenerateRapidDivergence(gateway).execute(RapidDivergenceCommand("任务", 6))
    (record,) = await repository.list_generations()
    assert record.outcome is Outcome.FAILED
    assert record.error_type == "ModelUnavailable"
    assert any(step.error for step in record.image_steps)
    assert all(step.image for step in record.image_steps if step.error is None)


async def test_successful_run_is_recorded_with_every_step(
    gateway: ModelGateway, repository: InMemoryExperimentRepository
) -> None:
    await GenerateRapidDivergence(gateway).execute(
        RapidDivergenceCommand("任务", 2, username="alice")
    )
    (record,) = await repository.list_generations(username="alice")
    assert record.pipeline is Pipeline.RAPID_DIVERGENCE
    assert record.outcome is Outcome.SUCCEEDED
    assert record.inputs == {"task": "任务", "num": 2}
    assert sorted(step.name.rsplit("/", 1)[-1] for step in record.text_steps) == [
        "concepts",
        "places",
        "products",
        "scene_prompts",
    ]
    assert all(step.prompt and step.raw_answer for step in record.text_steps)
    assert len(record.image_steps) == 2 and all(step.image for step in record.image_steps)
    assert set(record.result["images"]) == {step.id for step in record.image_steps}
    assert record.finished_at > record.started_at


async def test_text_model_timeout_propagates_typed(
    gateway: ModelGateway, text: RecordingTextGenerator, repository: InMemoryExperimentRepository
) -> None:
    text.failures["concepts"] = ModelTimeout("text model: step concepts timed out")
    with pytest.raises(ModelTimeout):
        await GenerateRapidDivergence(gateway).execute(RapidDivergenceCommand("任务", 2))
    (record,) = await repository.list_generations()
    assert record.outcome is Outcome.FAILED and "timed out" in (record.error or "")


async def test_deep_divergence_sends_the_sketch_to_the_vision_step(
    gateway: ModelGateway, text: RecordingTextGenerator
) -> None:
    result = await GenerateDeepDivergence(gateway).execute(
        DeepDivergenceCommand("厨房", ("可以折叠",), SKETCH, scheme_id=4)
    )
    assert result.scheme_id == 4
    assert len(result.creatives) == 3
    assert [item.type for item in result.creatives[0].items] == [
        ItemType.ABSTRACT_IMAGE,
        ItemType.ABSTRACT_TEXT,
        ItemType.CONCRETE_TEXT,
    ]
    (identify,) = text.calls_of("identify")
    assert identify.request.images == (SKETCH,)
    assert "可以折叠" in identify.request.prompt


async def test_deep_divergence_works_from_texts_or_image_alone(gateway: ModelGateway) -> None:
    use_case = GenerateDeepDivergence(gateway)
    assert len((await use_case.execute(DeepDivergenceCommand("t", (), SKETCH, 1))).creatives) == 3
    assert (
        len((await use_case.execute(DeepDivergenceCommand("t", ("注释",), None, 1))).creatives) == 3
    )
    with pytest.raises(InvalidInput, match="design_texts: a scheme needs texts or a design_image"):
        DeepDivergenceCommand("t", ("", " "), None, 1)


async def test_converge_select_names_every_scheme_and_selects_among_them(
    gateway: ModelGateway, text: RecordingTextGenerator
) -> None:
    schemes = (
        SchemeSketch(("折叠",), SKETCH),
        SchemeSketch((), None),
        SchemeSketch(("加热",), SKETCH),
    )
    result = await ConvergeSelect(gateway).execute(ConvergeSelectCommand("厨房", 2, schemes))
    assert len(result.names) == 3 and len(set(result.names)) == 3
    assert len(result.selected) == 2 and set(result.selected) <= set(result.names)
    (naming,) = text.calls_of("name_schemes")
    assert len(naming.request.images) == 2
    assert "方案2：文字说明：（无文字说明）。草图：无" in naming.request.prompt
    (choose,) = text.calls_of("choose")
    assert choose.request.options == result.names


async def test_converge_select_keeps_only_known_names_and_asks_again_once(
    gateway: ModelGateway, text: RecordingTextGenerator
) -> None:
    text.scripted["name_schemes"] = ["水杯#水杯#雨伞#台灯"]
    text.scripted["choose"] = ["都不是", "《雨伞》#火箭#水杯2#雨伞"]
    schemes = tuple(SchemeSketch(("x",), None) for _ in range(4))
    result = await ConvergeSelect(gateway).execute(ConvergeSelectCommand("t", 2, schemes))
    assert result.names == ("水杯", "水杯2", "雨伞", "台灯")
    assert result.selected == ("雨伞", "水杯2")
    assert len(text.calls_of("choose")) == 2


async def test_converge_select_fails_when_nothing_ever_matches(
    gateway: ModelGateway, text: RecordingTextGenerator
) -> None:
    text.scripted["choose"] = ["火箭", "飞船", "潜艇"]
    schemes = (SchemeSketch(("x",), None), SchemeSketch(("y",), None))
    with pytest.raises(ModelAnswerInvalid, match="after 2 attempts"):
        await ConvergeSelect(gateway).execute(ConvergeSelectCommand("t", 1, schemes))
    assert len(text.calls_of("choose")) == 2


@pytest.mark.parametrize("select_num", [3, 5])
async def test_converge_select_of_every_scheme_asks_no_model_to_choose(
    gateway: ModelGateway,
    text: RecordingTextGenerator,
    repository: InMemoryExperimentRepository,
    select_num: int,
) -> None:
    schemes = tuple(SchemeSketch((f"方案{i}",), None) for i in range(3))
    command = ConvergeSelectCommand("t", select_num, schemes)
    result = await ConvergeSelect(gateway).execute(command)
    assert result.selected == result.names and len(result.names) == 3
    assert text.calls_of("choose") == []
    (record,) = await repository.list_generations()
    assert record.result["selected_without_model"] is True
    assert [step.name for step in record.text_steps] == ["paint/converge_select/name_schemes"]


async def test_converge_expand_groups_scene_product_and_function(
    gateway: ModelGateway, images: FakeImageGenerator, text: RecordingTextGenerator
) -> None:
    command = ConvergeExpandCommand(selected_schemes=(("折叠",), (), ("加热", "保温")), num=2)
    result = await ConvergeExpand(gateway).execute(command)
    assert len(result.creatives) == 6
    for creative in result.creatives:
        assert creative.type is CreativeType.CONVERGENCE_GROUP_TWO
        assert creative.display_type is DisplayType.DIRECT
        (group,) = creative.items
        assert group.type is ItemType.GROUP_TYPE_TWO
        assert [part.type for part in group.combinations or ()] == [
            ItemType.ABSTRACT_IMAGE,
            ItemType.CONCRETE_IMAGE,
            ItemType.CONCRETE_TEXT,
        ]
    product_requests = [r for r in images.requests if "white background" in r.prompt]
    assert len(product_requests) == 6 and len(images.requests) == 12
    assert len(text.calls_of("functions")) == 3


class _CountingRepository(InMemoryExperimentRepository):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def get(self, username: str) -> Experiment | None:
        self.reads += 1
        return await super().get(username)


async def test_a_full_save_replaces_without_reading_and_keeps_the_id() -> None:
    repository = _CountingRepository()
    clock = TickingClock()
    started = await StartSession(repository, clock).execute(StartSessionCommand("p"))
    full = SaveSessionCommand(
        "p",
        Stage.CONVERGENCE,
        "任务",
        {stage: ({"name": stage.value},) for stage in SCHEME_STAGES},
    )
    await SaveSession(repository, clock).execute(full)
    assert repository.reads == 0
    saved = await repository.get("p")
    assert saved is not None and saved.id == started.id and saved.created_at == started.created_at
    assert saved.schemes_of(Stage.CONVERGENCE) == ({"name": "收敛"},)
    partial = SaveSessionCommand("p", design_task="新任务")
    await SaveSession(repository, clock).execute(partial)
    merged = await repository.get("p")
    assert merged is not None and merged.design_task == "新任务"
    assert merged.current_stage is Stage.CONVERGENCE
    assert merged.schemes_of(Stage.RAPID_DIVERGENCE) == ({"name": "快速发散"},)


async def test_saving_a_never_started_participant_is_not_found() -> None:
    repository = InMemoryExperimentRepository()
    full = SaveSessionCommand("ghost", Stage.CONVERGENCE, "t", {s: () for s in SCHEME_STAGES})
    for command in (full, SaveSessionCommand("ghost", design_task="t")):
        with pytest.raises(NotFound):
            await SaveSession(repository, TickingClock()).execute(command)
    assert await repository.get("ghost") is None


async def test_every_step_records_its_template_and_version(
    gateway: ModelGateway,
    repository: InMemoryExperimentRepository,
    prompts: FilesystemPromptCatalog,
) -> None:
    await GenerateRapidDivergence(gateway).execute(RapidDivergenceCommand("任务", 2))
    (record,) = await repository.list_generations()
    for step in record.text_steps:
        version = prompts.version(step.name)
        assert (step.template, step.template_version) == (version.path, version.digest)
        assert step.prompt_set_version == prompts.set_version
    scene = prompts.image_template(SCENE_IMAGES).version
    assert scene is not None and len(record.image_steps) == 2
    for image in record.image_steps:
        assert (image.template, image.template_version) == (scene.path, scene.digest)
        assert image.prompt_set_version == prompts.set_version
