"""One outcome vocabulary: each way a run can end is recorded as such, with its source."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest
from prometheus_client import generate_latest

from adapters.memory_repository import InMemoryExperimentRepository
from application.generation_run import ModelGateway
from application.jobs import JobService
from application.ports import TextAnswer, TextRequest
from application.use_cases.deep_divergence import DeepDivergenceCommand, GenerateDeepDivergence
from application.use_cases.rapid_divergence import (
    GenerateRapidDivergence,
    RapidDivergenceCommand,
)
from domain.errors import ModelUnavailable
from domain.generation import ABANDONED_MESSAGE, GenerationRecord, Outcome, Pipeline, Source
from entrypoints.observability.metrics import ServiceMetrics
from tests.unit.fakes import FakeImageGenerator, RecordingTextGenerator, TickingClock

COMMAND = RapidDivergenceCommand("厨房", 2)


async def _both_rendering(images: FakeImageGenerator) -> None:
    deadline = time.monotonic() + 5
    while images.in_flight < 2:
        assert time.monotonic() < deadline, "the pictures never started"
        await asyncio.sleep(0.001)


async def _only_record(repository: InMemoryExperimentRepository) -> GenerationRecord:
    (record,) = await repository.list_generations()
    return record


async def test_a_run_that_ends_well_succeeded_from_the_legacy_edge(
    gateway: ModelGateway, repository: InMemoryExperimentRepository
) -> None:
    await GenerateRapidDivergence(gateway).execute(COMMAND)
    record = await _only_record(repository)
    assert record.outcome is Outcome.SUCCEEDED and record.error is None
    assert record.source is Source.LEGACY


async def test_a_model_failure_failed(
    gateway: ModelGateway, images: FakeImageGenerator, repository: InMemoryExperimentRepository
) -> None:
    images.fail_with = ModelUnavailable("image model: every instance is down")
    with pytest.raises(ModelUnavailable):
        await GenerateRapidDivergence(gateway).execute(COMMAND)
    record = await _only_record(repository)
    assert record.outcome is Outcome.FAILED and record.error_type == "ModelUnavailable"


async def test_a_client_that_leaves_abandons_the_run(
    gateway: ModelGateway, images: FakeImageGenerator, repository: InMemoryExperimentRepository
) -> None:
    images.latency_s = 60
    task = asyncio.ensure_future(GenerateRapidDivergence(gateway).execute(COMMAND))
    await _both_rendering(images)
    task.cancel()  # what the legacy edge does when the connection closes
    with pytest.raises(asyncio.CancelledError):
        await task
    record = await _only_record(repository)
    assert record.outcome is Outcome.ABANDONED and record.error == ABANDONED_MESSAGE


@pytest.mark.parametrize("how", ["delete", "shutdown"])
async def test_a_job_stopped_on_purpose_is_cancelled_and_names_its_record(
    gateway: ModelGateway,
    images: FakeImageGenerator,
    repository: InMemoryExperimentRepository,
    how: str,
) -> None:
    images.latency_s = 60
    jobs = JobService(TickingClock(), ttl_s=600, per_user=4)
    use_case = GenerateRapidDivergence(gateway)
    job = jobs.submit(
        Pipeline.RAPID_DIVERGENCE, "p1", lambda progress: use_case.execute(COMMAND, progress)
    )
    await _both_rendering(images)
    if how == "delete":
        await jobs.cancel(job.id)
    else:
        await jobs.close()
    record = await _only_record(repository)
    assert record.outcome is Outcome.CANCELLED and record.id == job.generation_id
    assert record.source is Source.JOB
    assert record.error == (
        "cancelled: the job was cancelled by its client"
        if how == "delete"
        else "cancelled: the service shut down"
    )


async def test_a_job_from_the_command_line_says_so(
    gateway: ModelGateway, repository: InMemoryExperimentRepository
) -> None:
    jobs = JobService(TickingClock(), ttl_s=600, per_user=4)
    use_case = GenerateRapidDivergence(gateway)
    job = jobs.submit(
        Pipeline.RAPID_DIVERGENCE,
        None,
        lambda progress: use_case.execute(COMMAND, progress),
        source=Source.CLI,
    )
    async for _ in job.follow():
        pass
    record = await _only_record(repository)
    assert record.source is Source.CLI and record.id == job.generation_id


@pytest.mark.parametrize(
    ("stored", "error", "expected"),
    [
        ("failed", "cancelled: the request was abandoned before it finished", Outcome.ABANDONED),
        ("failed", "cancelled: the job was cancelled by its client", Outcome.CANCELLED),
        ("failed", "cancelled: the service shut down", Outcome.CANCELLED),
    ],
)
def test_records_written_before_the_vocabulary_read_in_it(
    stored: str, error: str, expected: Outcome
) -> None:
    assert Outcome.stored(stored, "CancelledError", error) is expected
    assert Outcome.stored(stored, "ModelUnavailable", "image model down") is Outcome.FAILED


async def test_metrics_count_the_records_outcome(
    gateway: ModelGateway, images: FakeImageGenerator, repository: InMemoryExperimentRepository
) -> None:
    metrics = ServiceMetrics()
    watched = ModelGateway(
        gateway.text, images, gateway.prompts, repository, TickingClock(), observers=[metrics]
    )
    images.latency_s = 60
    task = asyncio.ensure_future(GenerateRapidDivergence(watched).execute(COMMAND))
    await _both_rendering(images)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    text = generate_latest(metrics.registry).decode()
    assert 'inspilot_generations_total{outcome="abandoned",pipeline="rapid_divergence"} 1.0' in text


class _ScalingText(RecordingTextGenerator):
    """Answers like the real adapter after scaling the sketches it was sent."""

    async def complete(self, request: TextRequest) -> TextAnswer:
        answer = await super().complete(request)
        return replace(answer, image_sizes=tuple("2048x1536 -> 1024x768" for _ in request.images))


async def test_a_vision_step_records_what_its_images_measured_when_sent(
    gateway: ModelGateway, repository: InMemoryExperimentRepository
) -> None:
    scaling = ModelGateway(
        _ScalingText(), gateway.images, gateway.prompts, repository, TickingClock()
    )
    sketch = "data:image/png;base64,iVBORw0KGgo="
    command = DeepDivergenceCommand("厨房", ("可以折叠",), sketch, 1)
    await GenerateDeepDivergence(scaling).execute(command)
    record = await _only_record(repository)
    (identify,) = [step for step in record.text_steps if step.name.endswith("identify")]
    assert identify.image_sizes == ("2048x1536 -> 1024x768",)
    assert all(step.image_sizes == () for step in record.text_steps if step is not identify)
