"""One contract for every ExperimentRepository: the in-memory fake and the MongoDB adapter."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.memory_repository import InMemoryExperimentRepository
from adapters.mongo import MongoExperimentRepository
from application.ports import ExperimentRepository, StudyFilter
from domain.errors import NotFound
from domain.experiment import SCHEME_STAGES, Experiment, Stage
from domain.generation import GenerationRecord, ImageStep, Outcome, Pipeline, TextStep

# BSON dates keep milliseconds: contract times are whole milliseconds.
T0 = datetime(2025, 3, 1, 9, 30, 0, 123000, tzinfo=UTC)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


# The MongoDB half runs on the embedded MongoDB-wire server: slow (`-m "not slow"` skips it).
@pytest.fixture(params=["memory", pytest.param("mongo", marks=pytest.mark.slow)])
async def repository(request: pytest.FixtureRequest) -> AsyncIterator[ExperimentRepository]:
    if request.param == "memory":
        yield InMemoryExperimentRepository()
        return
    repo = MongoExperimentRepository(
        request.getfixturevalue("mongodb_uri"), request.getfixturevalue("mongo_database")
    )
    await repo.start()
    try:
        yield repo
    finally:
        await repo.close()


def scheme(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "paths": [[{"x": i, "y": i * 0.5} for i in range(50)], []],
        "texts": [{"text": "把手可折叠", "position": {"x": 12.5, "y": -3}}],
        **extra,
    }


def schemes_json(experiment: Experiment) -> str:
    return json.dumps({stage.value: list(experiment.schemes_of(stage)) for stage in SCHEME_STAGES})


def saved(experiment: Experiment, schemes: dict[Stage, tuple[Any, ...]]) -> Experiment:
    return experiment.with_saved_state(
        current_stage=Stage.DEEP_DIVERGENCE, design_task="设计一款雨伞", schemes=schemes, at=T0
    )


async def test_get_or_create_is_idempotent(repository: ExperimentRepository) -> None:
    first = await repository.get_or_create(Experiment(username="ana", created_at=T0))
    again = await repository.get_or_create(Experiment(username="ana"))
    assert again.id == first.id
    assert again.created_at == T0
    assert (await repository.get("ana")) == first
    assert await repository.get("nobody") is None


async def test_save_round_trip_is_json_equal(repository: ExperimentRepository) -> None:
    started = await repository.get_or_create(Experiment(username="bo", created_at=T0))
    image = "data:image/png;base64," + "iVBORw0KGgo" * 500
    schemes = {
        Stage.RAPID_DIVERGENCE: (
            # canvasImage in the middle: key order must survive its trip through GridFS.
            {"name": "伞", "canvasSvg": "<svg>…</svg>", "canvasImage": image, "paths": [[1, 2]]},
            scheme("no image, no svg"),
            scheme("odd keys", **{"$set": {"a.b": 1}, "x.y": [None, True, 1e-7, 2**53]}),
            scheme("emoji 🌂 \u0000 \u2028 lone \ud800", canvasImage=None),
        ),
        Stage.DEEP_DIVERGENCE: (scheme("svg only", canvasSvg="<svg/>"),),
        Stage.CONVERGENCE: (),
    }
    await repository.save(saved(started, schemes))
    loaded = await repository.get("bo")
    assert loaded is not None
    assert schemes_json(loaded) == schemes_json(saved(started, schemes))
    assert (loaded.current_stage, loaded.design_task) == (Stage.DEEP_DIVERGENCE, "设计一款雨伞")
    assert loaded.updated_at == T0


async def test_save_replaces_whole_and_keeps_id(repository: ExperimentRepository) -> None:
    started = await repository.get_or_create(Experiment(username="cy", created_at=T0))
    await repository.save(saved(started, {Stage.RAPID_DIVERGENCE: (scheme("a"), scheme("b"))}))
    stranger = Experiment(username="cy", id="f" * 24, created_at=T0 + timedelta(days=1))
    await repository.save(saved(stranger, {Stage.RAPID_DIVERGENCE: (scheme("c"),)}))
    loaded = await repository.get("cy")
    assert loaded is not None
    assert (loaded.id, loaded.created_at) == (started.id, T0)
    assert [s["name"] for s in loaded.schemes_of(Stage.RAPID_DIVERGENCE)] == ["c"]


async def test_save_of_unknown_user_is_not_found(repository: ExperimentRepository) -> None:
    with pytest.raises(NotFound) as raised:
        await repository.save(Experiment(username="ghost"))
    assert raised.value.message.startswith("username:")


def record(n: int, username: str | None, *, image: bytes | None = PNG) -> GenerationRecord:
    at = T0 + timedelta(minutes=n)
    return GenerationRecord(
        pipeline=Pipeline.RAPID_DIVERGENCE,
        inputs={"task": "雨伞", "num": 2, "sketch": "data:image/png;base64,AAAA"},
        started_at=at,
        finished_at=at + timedelta(seconds=3),
        outcome=Outcome.SUCCEEDED,
        text_steps=(
            TextStep(
                "rapid_divergence/products",
                "请给出2个产品",
                at,
                at,
                1,
                "伞#杯",
                ("伞", "杯"),
                template="paint/rapid_divergence/products.txt",
                template_version="0123456789abcdef",
                prompt_set_version="00aa11bb22cc33dd",
                expected_count=2,
                choices=("伞", "杯", "灯"),
                image_sizes=("2048x1152 -> 1024x576",),
            ),
        ),
        image_steps=(
            ImageStep(
                "scene",
                "a beach",
                "text",
                at,
                at,
                image=image,
                seed=3_000_000_000,
                model="sdxl",
                template="paint/images/scene",
                template_version="fedcba9876543210",
                prompt_set_version="00aa11bb22cc33dd",
                options={"width": 1024, "styles": ["photographic"], "seed": -1, "extra": {"a": 1}},
            ),
            ImageStep("scene", "a cafe", "text", at, at, error="timeout"),
        ),
        result={"count": 2, "result": [{"type": 0, "items": []}]},
        username=username,
        request_id=f"req-{n}",
    )


async def test_generation_round_trip(repository: ExperimentRepository) -> None:
    original = record(1, "ana")
    await repository.add_generation(original)
    loaded = await repository.get_generation(original.id)
    assert loaded == original
    assert loaded is not None and type(loaded.image_steps[0].seed) is int
    assert await repository.get_generation("0" * 24) is None


async def test_generation_failure_record(repository: ExperimentRepository) -> None:
    failed = GenerationRecord(
        pipeline=Pipeline.CONVERGE_SELECT,
        inputs={},
        started_at=T0,
        finished_at=T0,
        outcome=Outcome.FAILED,
        error="model unavailable",
        error_type="ModelUnavailable",
    )
    await repository.add_generation(failed)
    assert await repository.get_generation(failed.id) == failed


async def test_list_generations_newest_first_filtered_limited(
    repository: ExperimentRepository,
) -> None:
    records = [record(n, "ana" if n % 2 else "bo", image=bytes([n]) * 10) for n in range(6)]
    for r in (records[3], records[0], records[5], records[1], records[4], records[2]):
        await repository.add_generation(r)
    assert list(await repository.list_generations()) == records[::-1]
    assert list(await repository.list_generations("ana")) == [records[5], records[3], records[1]]
    assert list(await repository.list_generations(limit=2)) == [records[5], records[4]]
    assert list(await repository.list_generations("bo", limit=1)) == [records[4]]
    assert list(await repository.list_generations("nobody")) == []


async def test_listing_without_images_keeps_everything_else(
    repository: ExperimentRepository,
) -> None:
    big = record(1, "ana", image=PNG * 200)
    await repository.add_generation(big)
    (light,) = await repository.list_generations("ana", with_images=False)
    assert [step.image for step in light.image_steps] == [None, None]
    assert light.inputs == big.inputs and light.result == big.result
    assert light.text_steps == big.text_steps
    assert [step.id for step in light.image_steps] == [step.id for step in big.image_steps]


async def test_one_image_is_fetched_by_record_and_step(repository: ExperimentRepository) -> None:
    original = record(1, "ana", image=PNG * 3)
    await repository.add_generation(original)
    rendered, failed = original.image_steps
    assert await repository.get_image(original.id, rendered.id) == PNG * 3
    assert await repository.get_image(original.id, failed.id) is None
    assert await repository.get_image(original.id, "nope") is None
    assert await repository.get_image("0" * 24, rendered.id) is None


async def test_one_record_can_be_read_without_its_images(repository: ExperimentRepository) -> None:
    original = record(1, "ana", image=PNG * 50)
    await repository.add_generation(original)
    light = await repository.get_generation(original.id, with_images=False)
    assert light is not None and [step.image for step in light.image_steps] == [None, None]
    assert light.inputs == original.inputs and light.text_steps == original.text_steps


async def test_participants_are_listed_with_their_generation_counts(
    repository: ExperimentRepository,
) -> None:
    assert list(await repository.list_participants()) == []
    await repository.get_or_create(Experiment(username="zoe", created_at=T0, updated_at=T0))
    ana = await repository.get_or_create(Experiment(username="ana", created_at=T0))
    big_sketch = {"name": "伞", "canvasImage": "data:image/png;base64," + "A" * 300_000}
    later = T0 + timedelta(hours=1)
    await repository.save(
        ana.with_saved_state(
            current_stage=Stage.DEEP_DIVERGENCE,
            design_task="设计一款雨伞",
            schemes={Stage.RAPID_DIVERGENCE: (big_sketch,)},
            at=later,
        )
    )
    for n in (1, 5):
        await repository.add_generation(record(n, "ana"))
    await repository.add_generation(
        GenerationRecord(Pipeline.DEEP_DIVERGENCE, {}, T0, T0, Outcome.FAILED, username="ana")
    )
    await repository.add_generation(record(9, None))  # the front end sends no username
    ana_summary, zoe_summary = await repository.list_participants()
    assert ana_summary.username == "ana" and ana_summary.current_stage is Stage.DEEP_DIVERGENCE
    assert ana_summary.design_task == "设计一款雨伞"
    assert (ana_summary.created_at, ana_summary.updated_at) == (T0, later)
    assert (ana_summary.generations, ana_summary.failures) == (3, 1)
    assert ana_summary.last_generation_at == T0 + timedelta(minutes=5)
    assert ana_summary.last_activity == later
    assert (zoe_summary.username, zoe_summary.generations, zoe_summary.failures) == ("zoe", 0, 0)
    assert zoe_summary.last_generation_at is None and zoe_summary.last_activity == T0


async def test_a_study_is_read_one_session_and_one_record_at_a_time(
    repository: ExperimentRepository,
) -> None:
    for n, username in enumerate(("cy", "ana", "bo")):
        started = await repository.get_or_create(Experiment(username=username, created_at=T0))
        at = T0 + timedelta(days=n)
        await repository.save(
            started.with_saved_state(
                current_stage=Stage.RAPID_DIVERGENCE,
                design_task="任务",
                schemes={Stage.RAPID_DIVERGENCE: (scheme(f"{username}-1"),)},
                at=at,
            )
        )
    records = [record(n, ("ana", "bo", None)[n % 3], image=PNG) for n in range(6)]
    for r in reversed(records):
        await repository.add_generation(r)

    async def sessions(study: StudyFilter) -> list[str]:
        return [e.username async for e in repository.iter_sessions(study)]

    async def generations(study: StudyFilter) -> list[str]:
        return [r.id async for r in repository.iter_generations(study)]

    assert await sessions(StudyFilter()) == ["ana", "bo", "cy"]
    whole = [e async for e in repository.iter_sessions(StudyFilter(frozenset({"bo"})))]
    assert [s["name"] for s in whole[0].schemes_of(Stage.RAPID_DIVERGENCE)] == ["bo-1"]
    day1, day2 = T0 + timedelta(days=1), T0 + timedelta(days=2)
    assert await sessions(StudyFilter(since=day1)) == ["ana", "bo"]
    assert await sessions(StudyFilter(until=day1)) == ["cy"]
    assert await sessions(StudyFilter(frozenset({"ana", "cy"}), since=day1, until=day2)) == ["ana"]

    assert await generations(StudyFilter()) == [r.id for r in records]  # oldest first
    assert await generations(StudyFilter(frozenset({"ana"}))) == [records[0].id, records[3].id]
    window = StudyFilter(since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=4))
    assert await generations(window) == [records[2].id, records[3].id]
    loaded = [r async for r in repository.iter_generations(StudyFilter(frozenset({"bo"})))]
    assert [step.image for r in loaded for step in r.image_steps] == [None] * 4
    assert loaded[0].text_steps == records[1].text_steps


async def test_every_save_is_marked_in_order(repository: ExperimentRepository) -> None:
    started = await repository.get_or_create(Experiment(username="tia", created_at=T0))
    stages = (Stage.RAPID_DIVERGENCE, Stage.RAPID_DIVERGENCE, Stage.DEEP_DIVERGENCE)
    for minute, stage in enumerate(stages, 1):
        schemes = {Stage.RAPID_DIVERGENCE: tuple(scheme(f"s{n}") for n in range(minute))}
        await repository.save(
            started.with_saved_state(
                current_stage=stage,
                design_task="t",
                schemes=schemes,
                at=T0 + timedelta(minutes=minute),
            )
        )
    marks = await repository.save_marks("tia")
    assert [(m.at, m.stage, m.schemes) for m in marks] == [
        (T0 + timedelta(minutes=1), Stage.RAPID_DIVERGENCE, (1, 0, 0)),
        (T0 + timedelta(minutes=2), Stage.RAPID_DIVERGENCE, (2, 0, 0)),
        (T0 + timedelta(minutes=3), Stage.DEEP_DIVERGENCE, (3, 0, 0)),
    ]
    assert await repository.save_marks("nobody") == []
    # The session itself reads as before.
    loaded = await repository.get("tia")
    assert loaded is not None and loaded.current_stage is Stage.DEEP_DIVERGENCE


async def test_only_the_latest_saves_are_kept(
    repository: ExperimentRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("adapters.memory_repository.SAVE_MARKS_KEPT", 2)
    monkeypatch.setattr("adapters.mongo.sessions.SAVE_MARKS_KEPT", 2)
    started = await repository.get_or_create(Experiment(username="una", created_at=T0))
    for minute in range(1, 4):
        at = T0 + timedelta(minutes=minute)
        await repository.save(
            started.with_saved_state(
                current_stage=Stage.CONVERGENCE, design_task="t", schemes={}, at=at
            )
        )
    marks = await repository.save_marks("una")
    assert [m.at for m in marks] == [T0 + timedelta(minutes=2), T0 + timedelta(minutes=3)]
