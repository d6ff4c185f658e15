"""Generation records written in the background, so a reply never waits for its record."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Collection, Sequence
from datetime import datetime

from application.ports import ExperimentRepository, Lifecycle, ParticipantSummary, StudyFilter
from domain.attribution import Attribution, Evidence
from domain.errors import InsPilotError
from domain.experiment import ConditionMove, Experiment
from domain.generation import GenerationRecord
from domain.timeline import SaveMark

logger = logging.getLogger("inspilot.records")


def underlying_store(repository: ExperimentRepository) -> ExperimentRepository:
    """The store itself, when `repository` is the record writer in front of it."""
    return repository.store if isinstance(repository, RecordWriter) else repository


class RecordWriter(ExperimentRepository):
    """The repository port with `add_generation` queued and written by background workers.

    A record holds its pictures (6 × 1.7 MB for rapid divergence); writing it took most
    of a generation's tail. Now `add_generation` only enqueues: the queue is bounded
    (`queue_max`), and when it is full new generations wait for room (backpressure):
    nothing is dropped. A storage failure is retried with backoff until it succeeds or
    the service stops, and logged each time; it never reaches the generation that made
    the record. Records not yet written are served from memory, so a researcher reading
    right after a generation sees it. Sessions pass straight through: a participant's
    save is acknowledged only once stored.

    The bound counts every record the writer holds, queued or being written: a record
    takes a place before it is held and gives it back once stored, so a generation that
    waits for room holds its record itself, never the writer, and `depth()` never
    exceeds `queue_max`.
    """

    def __init__(
        self,
        store: ExperimentRepository,
        *,
        queue_max: int = 256,
        shutdown_grace_s: float = 30.0,
        workers: int = 2,
        retry_base_s: float = 0.5,
        retry_max_s: float = 30.0,
    ) -> None:
        self._store = store
        self._queue_max = queue_max
        self._grace_s = shutdown_grace_s
        self._worker_count = workers
        self._retry = (retry_base_s, retry_max_s)
        self._queue: asyncio.Queue[GenerationRecord] | None = None
        # Places for records held (queued or being written): `queue_max` of them.
        self._room: asyncio.Semaphore | None = None
        self._closing = False
        self._workers: list[asyncio.Task[None]] = []
        self._pending: dict[str, GenerationRecord] = {}
        self._failures = 0

    @property
    def store(self) -> ExperimentRepository:
        return self._store

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        if isinstance(self._store, Lifecycle):
            await self._store.start()
        # Created here: an asyncio queue belongs to the loop that runs the service.
        self._queue = asyncio.Queue()
        self._room = asyncio.Semaphore(self._queue_max)
        self._closing = False
        self._workers = [
            asyncio.create_task(self._work(), name=f"record-writer-{n}")
            for n in range(self._worker_count)
        ]

    async def close(self) -> None:
        """Flush what is queued (at most the grace period), then close the store."""
        try:
            if self._queue is not None and not await self.flush(self._grace_s):
                lost = sorted(self._pending)
                logger.error(
                    "records: %d generation records not written within %.0fs of shutdown: %s",
                    len(lost),
                    self._grace_s,
                    ", ".join(lost),
                )
            self._closing = True  # what arrives from now on, no worker would take
            for worker in self._workers:
                worker.cancel()
            for worker in self._workers:
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
            self._workers.clear()
        finally:
            if isinstance(self._store, Lifecycle):
                await self._store.close()

    async def flush(self, timeout_s: float | None = None) -> bool:
        """True once every queued record is written; False if `timeout_s` ran out first."""
        if self._queue is None:
            return True
        try:
            async with asyncio.timeout(timeout_s):
                await self._queue.join()
        except TimeoutError:
            return False
        return True

    # -- what operators see ------------------------------------------------------------

    def depth(self) -> int:
        """Records accepted but not yet stored (queued or being written)."""
        return len(self._pending)

    def failures(self) -> int:
        """Failed write attempts since start (each one retried)."""
        return self._failures

    # -- the background writers ----------------------------------------------------------

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            queued = await self._queue.get()
            # The newest version: a save may have named its participant while it waited.
            record = self._pending.get(queued.id, queued)
            try:
                await self._write(record)
                await self._write_late_attribution(record)
            finally:
                self._pending.pop(record.id, None)
                assert self._room is not None
                self._room.release()
                self._queue.task_done()
                # Else this idle worker would keep the last record's pictures alive.
                del record, queued

    async def _write_late_attribution(self, written: GenerationRecord) -> None:
        """A participant named while the record was being written goes to the store too."""
        latest = self._pending.get(written.id)
        if latest is None or latest is written or latest.username is None:
            return
        try:
            await self._store.attribute_generation(written.id, latest.attribution)
        except InsPilotError as exc:
            logger.warning("records: attributing %s failed: %s", written.id, exc)

    async def _write(self, record: GenerationRecord) -> None:
        delay = self._retry[0]
        while True:
            try:
                await self._store.add_generation(record)
                return
            except InsPilotError as exc:
                self._failures += 1
                logger.warning(
                    "records: storing %s failed, again in %.1fs: %s", record.id, delay, exc
                )
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self._retry[1])

    # -- the repository port -------------------------------------------------------------

    async def add_generation(self, record: GenerationRecord) -> None:
        if self._queue is None or self._room is None:
            raise RuntimeError("RecordWriter.start() was not awaited")
        if self._closing:
            # Its workers are stopping: queued now, it would never be written, unseen.
            logger.error("records: generation record %s arrived after shutdown", record.id)
            return
        await self._room.acquire()
        self._pending[record.id] = record
        self._queue.put_nowait(record)

    async def get_generation(
        self, record_id: str, *, with_images: bool = True
    ) -> GenerationRecord | None:
        pending = self._pending.get(record_id)
        if pending is not None:
            return pending if with_images else pending.without_images()
        return await self._store.get_generation(record_id, with_images=with_images)

    async def list_generations(
        self,
        username: str | None = None,
        limit: int = 100,
        *,
        with_images: bool = True,
        condition: str | None = None,
    ) -> Sequence[GenerationRecord]:
        waiting = [
            record
            for record in list(self._pending.values())
            if (username is None or record.username == username)
            and (condition is None or record.condition == condition)
        ]
        stored = await self._store.list_generations(
            username, limit, with_images=with_images, condition=condition
        )
        if not waiting:
            return stored
        seen = {record.id for record in stored}
        extra = [
            record if with_images else record.without_images()
            for record in waiting
            if record.id not in seen
        ]
        merged = sorted([*stored, *extra], key=lambda record: record.started_at, reverse=True)
        return merged[: max(limit, 0)]

    async def get_image(self, record_id: str, step_id: str) -> bytes | None:
        pending = self._pending.get(record_id)
        if pending is not None:
            return pending.image_of(step_id)
        return await self._store.get_image(record_id, step_id)

    async def get_or_create(self, experiment: Experiment) -> Experiment:
        return await self._store.get_or_create(experiment)

    async def get(self, username: str) -> Experiment | None:
        return await self._store.get(username)

    async def save(self, experiment: Experiment) -> None:
        await self._store.save(experiment)

    async def save_marks(self, username: str) -> Sequence[SaveMark]:
        return await self._store.save_marks(username)

    async def list_participants(self) -> Sequence[ParticipantSummary]:
        # Records still queued are counted once written: an overview may lag by the queue.
        return await self._store.list_participants()

    def iter_sessions(self, study: StudyFilter) -> AsyncIterator[Experiment]:
        return self._store.iter_sessions(study)

    async def iter_generations(self, study: StudyFilter) -> AsyncIterator[GenerationRecord]:
        """The stored records, then those still queued (the newest), each once."""
        seen: set[str] = set()
        async for record in self._store.iter_generations(study):
            seen.add(record.id)
            yield record
        waiting = [r for r in list(self._pending.values()) if r.id not in seen]
        for record in sorted(waiting, key=lambda record: record.started_at):
            if study.admits_record(record):
                yield record.without_images()

    # -- attribution and conditions: records still queued are attributed in the queue ----

    async def participants_with_sketches(self, keys: Collection[str]) -> set[str]:
        return await self._store.participants_with_sketches(keys)

    async def participants_with_texts(self, keys: Collection[str]) -> set[str]:
        return await self._store.participants_with_texts(keys)

    async def note_address(self, username: str, address: str, at: datetime) -> None:
        await self._store.note_address(username, address, at)

    async def participants_at_address(self, address: str, since: datetime) -> set[str]:
        return await self._store.participants_at_address(address, since)

    async def unattributed_generations(
        self, since: datetime, evidence: Evidence
    ) -> Sequence[tuple[str, Evidence]]:
        stored = list(await self._store.unattributed_generations(since, evidence))
        seen = {record_id for record_id, _ in stored}
        for record in list(self._pending.values()):
            fits = record.username is None and record.started_at >= since
            if fits and record.id not in seen and record.evidence.shares_with(evidence):
                stored.append((record.id, record.evidence))
        return stored

    async def attribute_generation(self, record_id: str, attribution: Attribution) -> bool:
        pending = self._pending.get(record_id)
        if pending is not None:
            if pending.username is not None:
                return False
            self._pending[record_id] = pending.attributed(attribution)
            return True
        return await self._store.attribute_generation(record_id, attribution)

    async def set_condition(self, username: str, condition: str) -> bool:
        return await self._store.set_condition(username, condition)

    async def condition_of(self, username: str) -> str | None:
        return await self._store.condition_of(username)

    async def move_condition(self, username: str, move: ConditionMove) -> None:
        await self._store.move_condition(username, move)

    async def take_condition_place(self, study: str, conditions: Sequence[str]) -> str:
        return await self._store.take_condition_place(study, conditions)

    async def give_back_condition_place(self, study: str, condition: str) -> None:
        await self._store.give_back_condition_place(study, condition)
