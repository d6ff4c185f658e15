"""A fake AUTOMATIC1111 `--api` server on loopback, with latency and failure knobs."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

DEFAULT_MODEL = "sd_xl_base_1.0"
_MODEL_HASH = "31e35c80fc"
_REASONS = {200: "OK", 401: "Unauthorized", 404: "Not Found", 422: "Unprocessable Entity"}


def tiny_png(seed: int, size: int = 8) -> bytes:
    """A real PNG, one flat colour per seed, so tests can tell renders apart."""
    rgb = bytes(((seed >> shift) & 0xFF) for shift in (16, 8, 0))
    raw = b"".join(b"\x00" + rgb * size for _ in range(size))

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def real_size_png(width: int, height: int, key: str) -> bytes:
    """A real-size picture: noise seeded by `key`, stored uncompressed, so 1024 × 576 is
    1.77 MB, within SDXL's 1.5-1.8 MB, and every prompt and seed gets its own bytes."""
    rng = random.Random(key)
    row_bytes = width * 3
    noise = rng.randbytes(row_bytes * height)
    raw = b"".join(
        b"\x00" + noise[row * row_bytes : (row + 1) * row_bytes] for row in range(height)
    )

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 0))
        + chunk(b"IEND", b"")
    )


@dataclass
class SdKnobs:
    """What the next requests will meet; tests change these while the server runs."""

    latency_s: float = 0.05
    fail_next_n: int = 0
    status_code: int | None = None
    hang: bool = False
    model_name: str | None = None
    empty_images: bool = False
    auth: tuple[str, str] | None = None
    # Real-size pictures (the requested size, ~1.8 MB at 1024 × 576) instead of 8 × 8 ones.
    real_size: bool = False


@dataclass
class SdCounters:
    requests: int = 0
    probes: int = 0
    renders: int = 0
    concurrent: int = 0
    max_concurrent: int = 0
    seeds: list[int] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    # The txt2img options of each request (steps, cfg_scale, sampler_name, ...).
    options: list[dict[str, Any]] = field(default_factory=list)
    # time.monotonic() when each txt2img request arrived, in arrival order.
    received_at: list[float] = field(default_factory=list)
    interrupts: int = 0
    # txt2img requests inside this instance at once (rendering or queued behind the
    # render): more than one means two clients booked the instance together.
    in_flight: int = 0
    max_in_flight: int = 0


class FakeSdServer:
    """One instance: renders one image at a time behind a lock, like the real webui."""

    def __init__(self, loop: asyncio.AbstractEventLoop, knobs: SdKnobs | None = None) -> None:
        self._loop = loop
        self.knobs = knobs or SdKnobs()
        self.counters = SdCounters()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self._render_lock = asyncio.Lock()
        self._interrupted: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_with_auth(self, user: str, password: str) -> str:
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    # -- lifecycle, callable from any thread ------------------------------------------

    def up(self) -> None:
        """Listen (again, on the same port once it had one)."""
        self._call(self._listen())

    def down(self) -> None:
        """Close the listening socket and reset open connections: a crashed instance."""
        self._call(self._close())

    @property
    def is_up(self) -> bool:
        return self._server is not None

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._serve, "127.0.0.1", self.port, reuse_address=True, backlog=256
            )
            self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._connections):
            task.cancel()
        if server is not None:
            await server.wait_closed()

    # -- HTTP/1.1, just enough for httpx ---------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {
                    name.strip().lower(): value.strip()
                    for name, _, value in (line.partition(":") for line in lines[1:] if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status, reply = await self._route(method, target, headers, body)
                payload = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
                status_line = f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
                fields = f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n"
                writer.write(f"{status_line}{fields}\r\n".encode() + payload)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._connections.discard(task)
            writer.transport.abort()

    async def _route(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        knobs = self.knobs
        if knobs.auth is not None:
            expected = base64.b64encode(":".join(knobs.auth).encode()).decode()
            if headers.get("authorization") != f"Basic {expected}":
                return 401, {"detail": "Not authenticated"}
        path = target.split("?", 1)[0]
        if method == "GET" and path in ("/sdapi/v1/progress", "/internal/ping"):
            self.counters.probes += 1
            rendering = self.counters.concurrent > 0
            state = {"job": "txt2img" if rendering else "", "job_count": int(rendering)}
            return 200, {"progress": 0.5 if rendering else 0.0, "state": state}
        if method == "POST" and path == "/sdapi/v1/interrupt":
            self.counters.interrupts += 1
            if self._interrupted is not None:
                self._interrupted.set()
            return 200, {}
        if method == "GET" and path == "/sdapi/v1/options":
            self.counters.probes += 1
            return 200, {"sd_model_checkpoint": f"{DEFAULT_MODEL}.safetensors [{_MODEL_HASH}]"}
        if method == "POST" and path == "/sdapi/v1/txt2img":
            return await self._txt2img(json.loads(body))
        return 404, {"detail": "Not Found"}

    async def _txt2img(self, request: dict[str, Any]) -> tuple[int, Any]:
        counters = self.counters
        counters.requests += 1
        counters.in_flight += 1
        counters.max_in_flight = max(counters.max_in_flight, counters.in_flight)
        try:
            return await self._render(request)
        finally:
            counters.in_flight -= 1

    async def _render(self, request: dict[str, Any]) -> tuple[int, Any]:
        knobs, counters = self.knobs, self.counters
        counters.received_at.append(time.monotonic())
        counters.prompts.append(str(request.get("prompt", "")))
        counters.options.append(
            {k: v for k, v in request.items() if k not in ("prompt", "negative_prompt")}
        )
        seed = int(request.get("seed", -1))
        counters.seeds.append(seed)
        if knobs.fail_next_n > 0:
            knobs.fail_next_n -= 1
            return 500, {"error": "OutOfMemoryError", "detail": "CUDA out of memory"}
        if knobs.status_code is not None and knobs.status_code != 200:
            return knobs.status_code, {"detail": f"fake failure {knobs.status_code}"}
        if seed < 0:
            seed = random.randrange(2**32)
        async with self._render_lock:
            counters.concurrent += 1
            counters.max_concurrent = max(counters.max_concurrent, counters.concurrent)
            # A real instance encodes its PNG within its render time: so does this one.
            reply = asyncio.ensure_future(asyncio.to_thread(self._reply, request, seed))
            # Like A1111: a render goes on when its client leaves; only an interrupt stops it.
            self._interrupted = interrupted = asyncio.Event()
            try:
                # Polled: the knob is flipped from the test's thread, not this loop's.
                while self.knobs.hang and not interrupted.is_set():  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(interrupted.wait(), knobs.latency_s)
                body = await reply
            finally:
                counters.concurrent -= 1
                self._interrupted = None
            counters.renders += 1
        return 200, body

    def _reply(self, request: dict[str, Any], seed: int) -> bytes:
        """The whole reply body, encoded like A1111's: base64 PNG, `info` as a JSON string."""
        knobs = self.knobs
        requested = (request.get("override_settings") or {}).get("sd_model_checkpoint")
        model = knobs.model_name or _short_model(requested or DEFAULT_MODEL)
        info = {
            "seed": seed,
            "all_seeds": [seed],
            "sd_model_name": model,
            "sd_model_hash": _MODEL_HASH,
            "prompt": request.get("prompt", ""),
        }
        if knobs.empty_images:
            images: list[str] = []
        elif knobs.real_size:
            width, height = int(request.get("width", 1024)), int(request.get("height", 576))
            png = real_size_png(width, height, f"{request.get('prompt', '')}|{seed}")
            images = [base64.b64encode(png).decode()]
        else:
            images = [base64.b64encode(tiny_png(seed)).decode()]
        reply = {"images": images, "parameters": request, "info": json.dumps(info)}
        return json.dumps(reply).encode()


def _short_model(checkpoint: str) -> str:
    """What A1111 reports as sd_model_name: no folder, extension or hash."""
    name = checkpoint.split(" [", 1)[0].replace("\\", "/").rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0] if name.endswith((".safetensors", ".ckpt")) else name


class FakeSdCluster:
    """M fake instances served by one background event loop thread."""

    def __init__(self, count: int, latency_s: float = 0.05, *, real_size: bool = False) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, daemon=True, name="fake-sdapi"
        )
        self._thread.start()
        self.servers = [
            FakeSdServer(self._loop, SdKnobs(latency_s=latency_s, real_size=real_size))
            for _ in range(count)
        ]
        for server in self.servers:
            server.up()

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]

    def close(self) -> None:
        for server in self.servers:
            server.down()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


@contextlib.contextmanager
def fake_sd_instances(
    count: int, latency_s: float = 0.05, *, real_size: bool = False
) -> Iterator[list[FakeSdServer]]:
    """Start `count` fake instances on loopback ports; usable from sync and async code."""
    cluster = FakeSdCluster(count, latency_s, real_size=real_size)
    try:
        yield cluster.servers
    finally:
        cluster.close()
