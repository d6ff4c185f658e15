"""Nothing on the way of every request waits for a thread of the event loop's default
executor (Litestar's `sync_to_thread`; min(32, cores + 4) threads, 6 here).

Every route passes the app's guards, and every event stream starts the same way: when a
guard was a plain function, or the stream Litestar's ServerSentEvent (one hop to the pool
before its first byte), 10,000 clients arriving at once queued behind one another there
(benchmarks/hostile_clients.py). With every thread of the pool held busy, `/ping`, the
research API and a job's events still answer at once.
"""

from __future__ import annotations

import asyncio
import threading

import anyio
import httpx

from entrypoints.container import build_container
from entrypoints.http.app import create_app
from tests.http.conftest import memory_settings

TOKEN = "pool-free-token"


async def test_ping_the_research_api_and_event_streams_answer_while_the_thread_pool_is_full() -> (
    None
):
    app = create_app(build_container(memory_settings(INSPILOT_RESEARCH_TOKEN=TOKEN)))
    release = threading.Event()
    transport = httpx.ASGITransport(app=app)
    async with (
        app.lifespan(),
        httpx.AsyncClient(transport=transport, base_url="http://inspilot") as client,
    ):
        body = {"pipeline": "rapid_divergence", "inputs": {"task": "杯子", "num": 1}}
        created = await client.post("/api/v1/jobs", json=body)
        assert created.status_code == 202, created.text
        events_url = created.json()["data"]["eventsUrl"]
        # Followed to its end first: the job's own run may use the pool; its replay does not.
        assert "event: done" in (await client.get(events_url)).text
        loop = asyncio.get_running_loop()
        # More than the pool ever has (32 at most): every thread waits on `release`.
        holders = [loop.run_in_executor(None, release.wait) for _ in range(40)]
        try:
            with anyio.fail_after(3):
                assert (await client.get("/ping")).text == "pong"
                bearer = {"Authorization": f"Bearer {TOKEN}"}
                assert (await client.get("/api/v1/generations", headers=bearer)).status_code == 200
                events = await client.get(events_url)
            assert events.headers["content-type"].startswith("text/event-stream")
            assert "event: done" in events.text
        finally:
            release.set()
            await asyncio.gather(*holders)
