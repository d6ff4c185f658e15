"""The record writer: replies never wait for records, nothing is dropped, failures are retried."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from adapters.filesystem_prompts import FilesystemPromptCatalog
from adapters.memory_repository import InMemoryExperimentRepository
from application.generation_run import ModelGateway
from application.job_board import JobView, OrphanRecorder
from application.record_writer import RecordWriter
from application.use_cases.rapid_divergence import GenerateRapidDivergence, RapidDivergenceCommand
from domain.attribution import AttributedBy, Attribution
from domain.errors import ModelUnavailable, StorageError
from domain.experiment import Experiment
from domain.generation import GenerationRecord, ImageStep, Outcome, Pipeline
from domain.progress import JobStatus
from tests.unit.fakes import FakeImageGenerator, RecordingTextGenerator, TickingClock

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


class GatedStore(InMemoryExperimentRepository):
    """Stores records only while the gate is open; fails the first `failures` writes."""

    def __init__(self, failures: int = 0) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()
        self.failures_left = failures
        self.attempts = 0
        self.closed = False

    async def add_generation(self, record: GenerationRecord) -> None:
        self.attempts += 1
        await self.gate.wait()
        if self.failures_left > 0:
            self.failures_left -= 1
            raise StorageError("storage: the database cannot be reached")
        await super().add_generation(record)

    async def close(self) -> None:
        self.closed = True

    def stored(self) -> list[str]:
        return sorted(self._generations)


def record(n: int, username: str | None = "ana") -> GenerationRecord:
    started = T0 + timedelta(seconds=n)
    return GenerationRecord(
        pipeline=Pipeline.RAPID_DIVERGENCE,
        inputs={"n": n},
        started_at=started,
        finished_at=started,
        outcome=Outcome.SUCCEEDED,
        image_steps=(ImageStep("scene", "p", "n", started, started, image=b"\x89PNG" * 4),),
        username=username,
        id=f"r{n}",
    )


@pytest.fixture
async def store() -> GatedStore:
    return GatedStore()


@pytest.fixture
async def writer(store: GatedStore) -> AsyncIterator[RecordWriter]:
    writer = RecordWriter(store, queue_max=2, workers=1, retry_base_s=0.01, retry_max_s=0.02)
    await writer.start()
    yield writer
    await writer.close()


async def test_a_record_is_readable_at_once_and_stored_in_the_background(
    writer: RecordWriter, store: GatedStore
) -> None:
    store.gate.clear()
    await asyncio.wait_for(writer.add_generation(record(1)), 1)  # returns with the store shut
    assert store.stored() == [] and writer.depth() == 1
    light = await writer.get_generation("r1", with_images=False)
    assert light is not None and light.image_steps[0].image is None
    assert await writer.get_image("r1", light.image_steps[0].id) == b"\x89PNG" * 4
    assert [r.id for r in await writer.list_generations("ana")] == ["r1"]
    store.gate.set()
    assert await writer.flush(1)
    assert store.stored() == ["r1"] and writer.depth() == 0
    assert [r.id for r in await writer.list_generations("ana")] == ["r1"]


async def test_a_full_queue_makes_new_generations_wait_and_drops_nothing(
    writer: RecordWriter, store: GatedStore
) -> None:
    store.gate.clear()
    for n in range(2):  # one being written, one queued: the writer is full
        await asyncio.wait_for(writer.add_generation(record(n)), 1)
        await asyncio.sleep(0)
    blocked = asyncio.create_task(writer.add_generation(record(2)))
    await asyncio.sleep(0.05)
    assert not blocked.done()
    store.gate.set()
    await asyncio.wait_for(blocked, 1)
    assert await writer.flush(1)
    assert store.stored() == ["r0", "r1", "r2"]


async def test_storage_failures_are_retried_logged_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = GatedStore(failures=3)
    writer = RecordWriter(store, workers=1, retry_base_s=0.01, retry_max_s=0.02)
    await writer.start()
    try:
        await writer.add_generation(record(7))
        assert await writer.flush(2)
    finally:
        await writer.close()
    assert store.stored() == ["r7"] and writer.failures() == 3
    assert sum("storing r7 failed" in r.getMessage() for r in caplog.records) == 3


async def test_close_flushes_the_queue_before_closing_the_store() -> None:
    store = GatedStore()
    store.gate.clear()
    writer = RecordWriter(store, workers=1, shutdown_grace_s=5)
    await writer.start()
    for n in range(3):
        await writer.add_generation(record(n))
    asyncio.get_running_loop().call_later(0.05, store.gate.set)
    await writer.close()
    assert store.stored() == ["r0", "r1", "r2"] and store.closed


async def test_close_gives_up_after_the_grace_and_names_the_unwritten_records(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = GatedStore()
    store.gate.clear()
    writer = RecordWriter(store, workers=1, shutdown_grace_s=0.05)
    await writer.start()
    await writer.add_generation(record(9))
    await asyncio.wait_for(writer.close(), 2)
    assert store.closed
    assert any("r9" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)


async def test_sessions_pass_straight_through(writer: RecordWriter, store: GatedStore) -> None:
    started = await writer.get_or_create(Experiment(username="bo"))
    assert await store.get("bo") == started


async def test_a_storage_outage_never_fails_a_generation_nor_hides_a_model_error(
    prompts: FilesystemPromptCatalog,
) -> None:
    store = GatedStore(failures=2)
    writer = RecordWriter(store, workers=1, retry_base_s=0.01, retry_max_s=0.02)
    await writer.start()
    try:
        text, images = RecordingTextGenerator(), FakeImageGenerator()
        gateway = ModelGateway(text, images, prompts, writer, TickingClock())
        result = await GenerateRapidDivergence(gateway).execute(RapidDivergenceCommand("杯", 2))
        assert len(result.creatives) == 2
        images.fail_with = ModelUnavailable("no Stable Diffusion instance is up")
        with pytest.raises(ModelUnavailable):
            await GenerateRapidDivergence(gateway).execute(RapidDivergenceCommand("杯", 2))
        assert await writer.flush(2)
    finally:
        await writer.close()
    outcomes = sorted(r.outcome.value for r in await store.list_generations())
    assert outcomes == ["failed", "succeeded"]


async def test_the_writer_never_holds_more_records_than_queue_max(
    writer: RecordWriter, store: GatedStore
) -> None:
    """Queued, being written, re-queued by an attribution, waiting for room, recorded for
    a dead replica's job: the writer holds at most `queue_max` (2) records at any moment."""
    store.gate.clear()
    held: list[int] = []

    async def watch() -> None:
        while True:
            held.append(writer.depth())
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    adds = [asyncio.create_task(writer.add_generation(record(n, None))) for n in range(6)]
    orphan = JobView(
        id="j1",
        generation_id="orphan",
        pipeline=Pipeline.RAPID_DIVERGENCE,
        username="ana",
        created_at=T0,
        status=JobStatus.FAILED,
        replica="gone",
        finished_at=T0,
    )
    adds.append(asyncio.create_task(OrphanRecorder(writer, TickingClock())(orphan)))
    await asyncio.sleep(0.05)
    for n in range(6):
        await writer.attribute_generation(
            f"r{n}", Attribution("ana", AttributedBy.SKETCH, T0 + timedelta(seconds=n))
        )
    await asyncio.sleep(0.05)
    assert writer.depth() == 2 and sum(not add.done() for add in adds) == 5
    store.gate.set()
    await asyncio.wait_for(asyncio.gather(*adds), 2)
    assert await writer.flush(2)
    watcher.cancel()
    assert max(held) == 2, f"the writer held {max(held)} records, queue_max is 2"
    assert store.stored() == ["orphan", *(f"r{n}" for n in range(6))]


async def test_a_record_after_shutdown_is_named_in_the_log_not_held(
    store: GatedStore, caplog: pytest.LogCaptureFixture
) -> None:
    writer = RecordWriter(store, queue_max=2, workers=1)
    await writer.start()
    await writer.close()
    await asyncio.wait_for(writer.add_generation(record(5)), 1)
    assert writer.depth() == 0
    assert any("r5" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
