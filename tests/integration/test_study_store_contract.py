"""Attribution lookups and condition places: one contract for the in-memory repository
and the MongoDB adapter (on the MongoDB-wire server the integration tests start)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

from application.ports import ExperimentRepository
from domain.attribution import AttributedBy, Attribution, Evidence, sketch_key, texts_key
from domain.experiment import ConditionMove, Experiment, Stage
from domain.generation import GenerationRecord, Outcome, Pipeline
from tests.integration.test_repository_contract import T0, repository, scheme

__all__ = ["repository"]  # the parametrised fixture (memory, mongo)

SKETCH_A = "data:image/png;base64,QUFB"
SKETCH_B = "data:image/png;base64,QkJC"


async def _started(repository: ExperimentRepository, username: str, image: str) -> None:
    await repository.get_or_create(Experiment(username=username, created_at=T0))
    await repository.save(
        Experiment(
            username=username,
            current_stage=Stage.RAPID_DIVERGENCE,
            schemes={
                Stage.RAPID_DIVERGENCE: (scheme("一", canvasImage=image),),
                Stage.DEEP_DIVERGENCE: (),
                Stage.CONVERGENCE: (),
            },
            updated_at=T0,
        )
    )


async def test_sketches_and_notes_find_their_participants(
    repository: ExperimentRepository,
) -> None:
    await _started(repository, "ana", SKETCH_A)
    await _started(repository, "bo", SKETCH_B)
    assert await repository.participants_with_sketches({sketch_key(SKETCH_A)}) == {"ana"}
    both = {sketch_key(SKETCH_A), sketch_key(SKETCH_B)}
    assert await repository.participants_with_sketches(both) == {"ana", "bo"}
    assert await repository.participants_with_sketches({sketch_key("other")}) == set()
    notes = texts_key(["把手可折叠"])
    assert notes is not None
    assert await repository.participants_with_texts({notes}) == {"ana", "bo"}


async def test_addresses_are_remembered_for_the_window(repository: ExperimentRepository) -> None:
    await repository.note_address("ana", "10.0.0.1", T0)
    await repository.note_address("bo", "10.0.0.1", T0 - timedelta(hours=5))
    assert await repository.participants_at_address("10.0.0.1", T0 - timedelta(hours=4)) == {"ana"}
    assert await repository.participants_at_address("10.0.0.2", T0 - timedelta(hours=4)) == set()


async def test_an_unattributed_record_is_found_and_attributed_once(
    repository: ExperimentRepository,
) -> None:
    evidence = Evidence.of(sketches=[SKETCH_A])
    record = GenerationRecord(
        Pipeline.DEEP_DIVERGENCE, {"x": 1}, T0, T0, Outcome.SUCCEEDED, evidence=evidence
    )
    await repository.add_generation(record)
    found = await repository.unattributed_generations(T0 - timedelta(seconds=1), evidence)
    assert found == [(record.id, evidence)]
    assert await repository.unattributed_generations(T0 + timedelta(seconds=1), evidence) == []
    named = Attribution("ana", AttributedBy.SKETCH, T0)
    assert await repository.attribute_generation(record.id, named) is True
    other = Attribution("bo", AttributedBy.SKETCH)
    assert await repository.attribute_generation(record.id, other) is False
    stored = await repository.get_generation(record.id)
    assert stored is not None
    assert (stored.participant, stored.attributed_by, stored.attributed_at) == (
        "ana",
        AttributedBy.SKETCH,
        T0,
    )
    assert await repository.unattributed_generations(T0 - timedelta(seconds=1), evidence) == []


async def test_a_condition_is_set_once_and_moved_with_its_history(
    repository: ExperimentRepository,
) -> None:
    await repository.get_or_create(Experiment(username="ana", created_at=T0))
    assert await repository.set_condition("ana", "vivid") is True
    assert await repository.set_condition("ana", "baseline") is False
    assert await repository.condition_of("ana") == "vivid"
    await repository.move_condition("ana", ConditionMove("vivid", "baseline", T0))
    stored = await repository.get("ana")
    assert stored is not None and stored.condition == "baseline"
    assert stored.condition_moves == (ConditionMove("vivid", "baseline", T0),)
    # A save never changes the condition.
    await repository.save(Experiment(username="ana", updated_at=T0))
    assert await repository.condition_of("ana") == "baseline"


async def test_twenty_concurrent_places_over_three_conditions_are_7_7_6(
    repository: ExperimentRepository,
) -> None:
    names = ("a", "b", "c")
    taken = await asyncio.gather(
        *(repository.take_condition_place("study", names) for _ in range(20))
    )
    assert Counter(taken) == {"a": 7, "b": 7, "c": 6}
