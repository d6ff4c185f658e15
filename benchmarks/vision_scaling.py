"""What scaling sketches before a vision step saves: bytes sent and the time it costs.

A type 2 request may carry 48 sketches. Each is a canvas export (a PNG of strokes on
white, here 2048 x 1152); the vision model looks at about 1,024 px on the longest side.
Prints, side by side in one run, the request's image bytes at full size and scaled, and
the time scaling takes (on worker threads, as the adapter does it).

    python benchmarks/vision_scaling.py [--sketches 48]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image, ImageDraw

from adapters.vision_images import fit_for_vision


def canvas_sketch(seed: int, size: tuple[int, int] = (2048, 1152)) -> str:
    """Strokes on a transparent canvas, like the front end's canvas export."""
    rng = random.Random(seed)
    image = Image.new("RGBA", size, (255, 255, 255, 0))
    draw = ImageDraw.Draw(image)
    for _ in range(60):
        points = [(rng.randrange(size[0]), rng.randrange(size[1])) for _ in range(8)]
        colour = (rng.randrange(80), rng.randrange(80), rng.randrange(80), 255)
        draw.line(points, fill=colour, width=4)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


async def scale_all(uris: list[str]) -> list[str]:
    """As the text adapter does it: one worker thread per sketch."""
    fitted = await asyncio.gather(*(asyncio.to_thread(fit_for_vision, uri) for uri in uris))
    return [image.uri for image in fitted]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sketches", type=int, default=48)
    args = parser.parse_args()
    count = max(1, min(args.sketches, 96))  # bounded: the machine is shared
    uris = [canvas_sketch(seed) for seed in range(count)]
    began = time.perf_counter()
    scaled = asyncio.run(scale_all(uris))
    took = time.perf_counter() - began
    full = sum(len(uri) for uri in uris)
    small = sum(len(uri) for uri in scaled)
    print(f"{count} sketches of 2048x1152")
    print(f"request image bytes: full size {full / 1e6:.1f} MB, scaled {small / 1e6:.1f} MB")
    print(f"ratio scaled/full: {small / full:.2f}")
    print(f"scaling took {took:.2f} s in all, {took / count * 1000:.0f} ms per sketch")


if __name__ == "__main__":
    main()
