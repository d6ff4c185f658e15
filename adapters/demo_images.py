"""DemoImageGenerator: real PNG pictures without a GPU, for running InsPilot offline.

Each prompt gets its own deterministic colour gradient at the requested size, so a
participant sees distinct, valid pictures and the whole contract can be exercised.
Encoding is cheap: a few distinct rows repeated, compressed at a fast zlib level.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import struct
import zlib

from application.ports import GeneratedImage, ImageGenerator, ImageRequest
from domain.images import EncodedImage


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _gradient_row(width: int, left: tuple[int, int, int], right: tuple[int, int, int]) -> bytes:
    row = bytearray(width * 3)
    for x in range(width):
        t = x / max(width - 1, 1)
        for channel in range(3):
            row[x * 3 + channel] = int(left[channel] + (right[channel] - left[channel]) * t)
    return bytes(row)


def render_png(width: int, height: int, seed: int) -> bytes:
    """A horizon-like picture: a sky gradient over a ground gradient."""
    rng = random.Random(seed)
    colours = [(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(4)]
    sky = _gradient_row(width, colours[0], colours[1])
    ground = _gradient_row(width, colours[2], colours[3])
    horizon = rng.randrange(height // 3, 2 * height // 3)
    raw = (b"\x00" + sky) * horizon + (b"\x00" + ground) * (height - horizon)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(bytes(raw), 1))
        + _chunk(b"IEND", b"")
    )


class DemoImageGenerator(ImageGenerator):
    def __init__(self, latency_s: float = 0.0) -> None:
        self._latency_s = latency_s

    async def generate(self, request: ImageRequest) -> GeneratedImage:
        seed = request.seed
        if seed == -1:
            digest = hashlib.sha256(
                f"{request.prompt}\n{request.negative_prompt}".encode()
            ).digest()
            seed = int.from_bytes(digest[:4], "big")
        if self._latency_s:
            await asyncio.sleep(self._latency_s)
        data = await asyncio.to_thread(_render_encoded, request.width, request.height, seed)
        return GeneratedImage(data=data, seed=seed, model="demo-gradient", instance="demo")


def _render_encoded(width: int, height: int, seed: int) -> EncodedImage:
    """Rendered, encoded and hashed in one worker-thread hop."""
    image = EncodedImage(render_png(width, height, seed))
    image.base64, image.sha256  # noqa: B018 - computed here, off the event loop
    return image
