"""MongoDB adapter beyond the contract: size, durability, file hygiene, concurrency, failures."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import random
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase

from adapters.demo_images import render_png
from adapters.embedded_mongo import EmbeddedMongoProcess
from adapters.mongo import MongoExperimentRepository
from adapters.mongo.blobs import WRITE_BATCH, WRITES_IN_FLIGHT, BlobStore
from adapters.mongo.mapping import Blob
from domain.errors import StorageError
from domain.experiment import SCHEME_STAGES, Experiment, Stage
from domain.generation import GenerationRecord, ImageStep, Outcome, Pipeline
from domain.stimuli import Shown

# Slow: the adapter against the embedded MongoDB-wire server, with documents past 16 MB.
pytestmark = pytest.mark.slow

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
Db = AsyncDatabase[dict[str, Any]]


@pytest.fixture
async def raw_db(mongodb_uri: str, mongo_database: str) -> AsyncIterator[Db]:
    """The test's database seen by a plain client, to look behind the adapter's back."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri)
    try:
        yield client[mongo_database]
    finally:
        await client.close()


def sketch(name: str, image_bytes: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    image = base64.b64encode(rng.randbytes(image_bytes * 3 // 4)).decode()
    return {
        "name": name,
        "canvasSvg": f"<svg><path d='M{seed} 0'/></svg>",
        "canvasImage": f"data:image/png;base64,{image}",
        "paths": [[{"x": rng.random(), "y": rng.random()} for _ in range(40)] for _ in range(5)],
        "texts": [{"text": f"方案 {name}", "position": {"x": seed, "y": 1.5}}],
    }


def schemes_json(experiment: Experiment | None) -> str:
    assert experiment is not None
    return json.dumps({s.value: list(experiment.schemes_of(s)) for s in SCHEME_STAGES})


async def started_with(
    repository: MongoExperimentRepository, username: str, schemes: tuple[Any, ...]
) -> Experiment:
    started = await repository.get_or_create(Experiment(username=username))
    experiment = started.with_saved_state(
        current_stage=Stage.RAPID_DIVERGENCE,
        design_task="task",
        schemes={Stage.RAPID_DIVERGENCE: schemes},
        at=T0,
    )
    await repository.save(experiment)
    return experiment


async def file_ids(db: Db) -> set[Any]:
    """The stored blobs' hashes (the GridFS ones included: each has a blob document)."""
    return {f["_id"] async for f in db["blobs"].find({}, {"_id": 1})}


async def gridfs_files(db: Db) -> int:
    return await db["fs.files"].count_documents({})


@pytest.fixture
async def swept_repository(
    mongodb_uri: str, mongo_database: str
) -> AsyncIterator[MongoExperimentRepository]:
    """A repository whose sweep has no grace period, so tests can call it at once."""
    repository = MongoExperimentRepository(mongodb_uri, mongo_database, orphan_grace=timedelta(0))
    await repository.start()
    try:
        yield repository
    finally:
        await repository.close()


async def sweep(repository: MongoExperimentRepository) -> int:
    await asyncio.sleep(0.01)  # BSON dates have milliseconds: be older than the cutoff
    return await repository.collect_orphans()


@pytest.mark.parametrize(("count", "image_kb"), [(40, 500), (100, 1000)])
async def test_sessions_far_beyond_16_mb_round_trip(
    mongo_repository: MongoExperimentRepository, count: int, image_kb: int
) -> None:
    schemes = tuple(sketch(f"s{i}", image_kb * 1000, i) for i in range(count))
    experiment = await started_with(mongo_repository, "big", schemes)
    assert schemes_json(await mongo_repository.get("big")) == schemes_json(experiment)


async def test_large_bodies_without_images_leave_the_document(
    mongo_repository: MongoExperimentRepository,
) -> None:
    long_paths = [[[i, i + 0.25] for i in range(30_000)]]
    schemes = tuple({"name": f"p{i}", "paths": long_paths, "n": i} for i in range(30))
    experiment = await started_with(mongo_repository, "paths", schemes)
    assert schemes_json(await mongo_repository.get("paths")) == schemes_json(experiment)


async def test_a_new_client_sees_the_data(
    mongo_repository: MongoExperimentRepository, mongodb_uri: str, mongo_database: str
) -> None:
    experiment = await started_with(mongo_repository, "dora", (sketch("a", 10_000, 1),))
    other = MongoExperimentRepository(mongodb_uri, mongo_database)
    await other.start()
    try:
        assert schemes_json(await other.get("dora")) == schemes_json(experiment)
    finally:
        await other.close()


async def test_embedded_server_restart_keeps_the_data(tmp_path: Path) -> None:
    pytest.importorskip("secantus")
    server = EmbeddedMongoProcess(str(tmp_path / "db"))
    repository = MongoExperimentRepository(server.start(), timeout_ms=2000)
    await repository.start()
    experiment = await started_with(repository, "eve", (sketch("a", 50_000, 2),))
    await repository.close()
    server.stop()
    repository = MongoExperimentRepository(server.start(), timeout_ms=2000)
    await repository.start()
    try:
        assert schemes_json(await repository.get("eve")) == schemes_json(experiment)
    finally:
        await repository.close()
        server.stop()


async def test_replaced_files_are_deleted_and_unchanged_ones_reused(
    swept_repository: MongoExperimentRepository, raw_db: Db
) -> None:
    repository = swept_repository
    first = await started_with(repository, "fay", tuple(sketch(str(i), 9000, i) for i in range(3)))
    before = await file_ids(raw_db)
    assert len(before) == 3
    # One sketch changes: one new blob, the old one swept, two kept.
    changed = (*first.schemes_of(Stage.RAPID_DIVERGENCE)[:2], sketch("2", 9000, 99))
    await started_with(repository, "fay", changed)
    assert await sweep(repository) == 1
    after = await file_ids(raw_db)
    assert len(after) == 3 and len(after & before) == 2
    await started_with(repository, "fay", ())
    assert await sweep(repository) == 3
    assert await file_ids(raw_db) == set()


async def test_the_sweep_keeps_what_is_referenced_or_recent_and_reads_only_new_blobs(
    mongodb_uri: str, mongo_database: str, raw_db: Db
) -> None:
    repository = MongoExperimentRepository(
        mongodb_uri, mongo_database, orphan_grace=timedelta(minutes=10)
    )
    await repository.start()
    try:
        experiment = await started_with(repository, "gus", (sketch("a", 5000, 3),))
        await repository.add_generation(generation(image=b"png"))
        kept = await file_ids(raw_db)
        old = datetime.now(UTC) - timedelta(hours=1)
        # Blobs a save stored and then died before switching the references to them.
        await raw_db["blobs"].insert_many(
            [
                {
                    "_id": "lost",
                    "size": 4,
                    "kind": "scheme-image",
                    "touched_at": old,
                    "data": b"lost",
                },
                {
                    "_id": "new",
                    "size": 3,
                    "kind": "scheme-image",
                    "touched_at": datetime.now(UTC),
                    "data": b"new",
                },
            ]
        )
        assert await repository.collect_orphans() == 1  # "new" is within its grace period
        assert await file_ids(raw_db) == kept | {"new"}
        # Blobs below the watermark are never read again, however old they look.
        await raw_db["blobs"].insert_one(
            {"_id": "ancient", "size": 1, "kind": "x", "touched_at": old, "data": b"a"}
        )
        assert await repository.collect_orphans() == 0
        assert "ancient" in await file_ids(raw_db)
        assert schemes_json(await repository.get("gus")) == schemes_json(experiment)
    finally:
        await repository.close()


async def test_identical_pictures_are_stored_once(
    mongo_repository: MongoExperimentRepository, raw_db: Db
) -> None:
    picture = os.urandom(1_700_000)
    first, second = generation(image=picture), generation(image=picture)
    await asyncio.gather(
        mongo_repository.add_generation(first), mongo_repository.add_generation(second)
    )
    assert len(await file_ids(raw_db)) == 1
    assert await mongo_repository.get_image(second.id, second.image_steps[0].id) == picture


async def test_a_jobs_pictures_are_blobs_its_record_then_reuses(
    mongo_repository: MongoExperimentRepository, raw_db: Db
) -> None:
    picture = os.urandom(1_700_000)
    refs = await mongo_repository.keep_pictures({"scene": picture})
    assert await file_ids(raw_db) == {refs["scene"]}
    assert await mongo_repository.load_picture(refs["scene"]) == picture
    assert await mongo_repository.load_picture("0" * 64) is None
    # The record of the same run, written after, stores nothing twice and keeps it swept-safe.
    record = generation(image=picture)
    await mongo_repository.add_generation(record)
    assert await file_ids(raw_db) == {refs["scene"]}
    assert await mongo_repository._referenced([refs["scene"]]) == {refs["scene"]}


async def test_blobs_past_8_mb_go_to_gridfs_and_come_back(
    mongo_repository: MongoExperimentRepository, raw_db: Db
) -> None:
    schemes = (sketch("huge", 9_000_000, 5), sketch("small", 5000, 6))
    experiment = await started_with(mongo_repository, "kim", schemes)
    assert await gridfs_files(raw_db) == 1
    assert schemes_json(await mongo_repository.get("kim")) == schemes_json(experiment)


async def test_concurrent_saves_one_wins_whole_and_readers_never_see_a_mix(
    swept_repository: MongoExperimentRepository, raw_db: Db
) -> None:
    mongo_repository = swept_repository
    started = await mongo_repository.get_or_create(Experiment(username="hal"))
    versions = [
        started.with_saved_state(
            current_stage=Stage.RAPID_DIVERGENCE,
            design_task=f"v{v}",
            schemes={
                Stage.RAPID_DIVERGENCE: tuple(sketch(f"v{v}", 20_000, v * 10 + i) for i in range(4))
            },
            at=T0,
        )
        for v in range(6)
    ]
    await mongo_repository.save(versions[0])
    allowed = {schemes_json(v) for v in versions}

    async def read_while_saving() -> None:
        for _ in range(15):
            assert schemes_json(await mongo_repository.get("hal")) in allowed
            await asyncio.sleep(0)

    await asyncio.gather(
        *(mongo_repository.save(v) for v in versions[1:]), read_while_saving(), read_while_saving()
    )
    final = await mongo_repository.get("hal")
    assert final is not None
    assert schemes_json(final) in allowed
    assert {s["name"] for s in final.schemes_of(Stage.RAPID_DIVERGENCE)} == {final.design_task}
    # The losers' blobs and the replaced ones are all swept.
    await sweep(mongo_repository)
    assert len(await file_ids(raw_db)) == 4


def generation(*, image: bytes | None, inputs: dict[str, Any] | None = None) -> GenerationRecord:
    return GenerationRecord(
        pipeline=Pipeline.DEEP_DIVERGENCE,
        inputs=inputs or {},
        started_at=T0,
        finished_at=T0 + timedelta(seconds=9),
        outcome=Outcome.SUCCEEDED,
        image_steps=(ImageStep("scene", "p", "n", T0, T0, image=image, seed=1),),
        result={"schemeId": 1},
        username="ivy",
    )


async def test_generation_with_multi_megabyte_inputs(
    mongo_repository: MongoExperimentRepository,
) -> None:
    big = "data:image/png;base64," + base64.b64encode(os.urandom(4_000_000)).decode()
    record = generation(image=os.urandom(2_000_000), inputs={"designImage": big, "designTexts": []})
    await mongo_repository.add_generation(record)
    assert await mongo_repository.get_generation(record.id) == record
    assert list(await mongo_repository.list_generations("ivy")) == [record]


async def test_unreachable_server_fails_fast_with_storage_error() -> None:
    repository = MongoExperimentRepository(
        "mongodb://user:secret@127.0.0.1:1/?serverSelectionTimeoutMS=300", timeout_ms=300
    )
    with pytest.raises(StorageError) as raised:
        await repository.start()
    # The driver gave up after the 300 ms asked for, not its default 30 s.
    assert "Timeout: 0.3s" in raised.value.message
    assert "127.0.0.1:1" in raised.value.message and "secret" not in raised.value.message


async def test_server_gone_mid_session_is_a_storage_error(tmp_path: Path) -> None:
    pytest.importorskip("secantus")
    server = EmbeddedMongoProcess(str(tmp_path / "db"))
    repository = MongoExperimentRepository(server.start(), timeout_ms=500)
    await repository.start()
    await repository.get_or_create(Experiment(username="jo"))
    server.stop()
    try:
        with pytest.raises(StorageError):
            await repository.get("jo")
        with pytest.raises(StorageError):
            await repository.save(Experiment(username="jo"))
    finally:
        await repository.close()
    with pytest.raises(StorageError, match="not started"):
        await repository.get("jo")


async def test_a_record_stored_again_replaces_its_files(
    swept_repository: MongoExperimentRepository, raw_db: Db
) -> None:
    mongo_repository = swept_repository
    first = generation(image=b"first png")
    await mongo_repository.add_generation(first)
    second = GenerationRecord(
        **{**vars(first), "image_steps": generation(image=b"2nd").image_steps}
    )
    await mongo_repository.add_generation(second)
    assert await mongo_repository.get_generation(first.id) == second
    assert await sweep(mongo_repository) == 1
    assert len(await file_ids(raw_db)) == 1


async def test_sketches_sent_to_a_run_are_blobs_stored_once_and_come_back_whole(
    mongo_repository: MongoExperimentRepository, raw_db: Db
) -> None:
    picture = render_png(64, 48, 21)
    uri = "data:image/png;base64," + base64.b64encode(picture).decode()
    inputs = {
        "design_task": "雨具",
        "select_num": 1,
        "schemes": [
            {"design_texts": ["伞"], "design_image": uri},
            {"design_texts": ["帽"], "design_image": uri},
            {"design_texts": ["衣"], "design_image": None},
        ],
    }
    stimuli = (Shown(None, 1, "name", "伞", selected=True), Shown(None, 2, "name", "帽"))
    first = replace(generation(image=None, inputs=inputs), stimuli=stimuli)
    second = generation(image=None, inputs={"design_image": uri, "scheme_id": "3"})
    for record in (first, second):
        await mongo_repository.add_generation(record)
    sha = hashlib.sha256(picture).hexdigest()
    stored = await raw_db["blobs"].find_one({"_id": sha})
    assert stored is not None and bytes(stored["data"]) == picture  # the picture, not base64
    assert await raw_db["blobs"].count_documents({"kind": "generation-sketch"}) == 1
    document = await raw_db["generations"].find_one({"_id": first.id})
    assert document is not None and sha in document["blobs"]
    assert uri.encode() not in bytes(document["inputs"]["b"])
    assert await mongo_repository.get_generation(first.id) == first
    listed = await mongo_repository.list_generations("ivy", with_images=False)
    assert sorted(listed, key=lambda r: r.id) == sorted([first, second], key=lambda r: r.id)


async def test_records_stored_with_inline_sketches_still_read(
    mongo_repository: MongoExperimentRepository, raw_db: Db
) -> None:
    uri = "data:image/png;base64," + base64.b64encode(render_png(8, 8, 1)).decode()
    record = generation(image=None, inputs={"design_image": uri, "scheme_id": 2})
    await mongo_repository.add_generation(record)
    # The layout before sketches were blobs: the data URI inside the inputs JSON.
    old_inputs = json.dumps(record.inputs).encode()
    await raw_db["generations"].update_one(
        {"_id": record.id},
        {"$set": {"inputs": {"b": old_inputs}, "blobs": []}, "$unset": {"sketches": ""}},
    )
    assert (await mongo_repository.get_generation(record.id)) == record


class InsertSizes(monitoring.CommandListener):
    """Blob bytes per insert message, and the most in flight at once, seen by the driver."""

    def __init__(self) -> None:
        self.messages: list[int] = []
        self._open: dict[int, int] = {}
        self.most_in_flight = 0

    def started(self, event: Any) -> None:
        if event.command_name == "insert" and "blobs" == event.command.get("insert"):
            size = sum(len(doc.get("data", b"")) for doc in event.command.get("documents", []))
            self.messages.append(size)
            self._open[event.request_id] = size
            self.most_in_flight = max(self.most_in_flight, sum(self._open.values()))

    def succeeded(self, event: Any) -> None:
        self._open.pop(event.request_id, None)

    def failed(self, event: Any) -> None:
        self._open.pop(event.request_id, None)


async def test_large_saves_reach_the_server_in_bounded_messages_and_bounded_bytes(
    mongodb_uri: str, mongo_database: str
) -> None:
    """20 concurrent 60 MB saves in 48 MB messages drove the embedded server to 4.7 GB:
    blobs go in messages of at most WRITE_BATCH, at most WRITES_IN_FLIGHT at once."""
    sizes = InsertSizes()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongodb_uri, event_listeners=[sizes]
    )
    try:
        store = BlobStore(client[mongo_database])
        pictures = [
            [Blob(data, hashlib.sha256(data).hexdigest(), "sketch") for data in batch]
            for batch in (
                [os.urandom(1_700_000) + bytes([n, i]) for i in range(12)] for n in range(4)
            )
        ]
        await asyncio.gather(*(store.store(batch) for batch in pictures))
        loaded = await store.load(blob.sha for batch in pictures for blob in batch)
    finally:
        await client.close()
    assert len(loaded) == 48
    assert sizes.messages and max(sizes.messages) <= WRITE_BATCH
    assert sizes.most_in_flight <= WRITES_IN_FLIGHT
