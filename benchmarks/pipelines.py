"""Each pipeline end to end through `inspilot serve`, against local model fakes on loopback.

The text model answers in TEXT_S, each of six SD instances renders one real-size image
(1024 × 576 PNG, 1.77 MB) in IMAGE_S; sessions and records go to the default storage.
For every pipeline this prints the wall time beside its critical path (the longest
chain of dependent calls, images counted in rounds of six) and beside the sum a
fully sequential chain would cost. Target: wall <= 1.05 x critical path.
Run: python benchmarks/pipelines.py [--text-s 0.3] [--image-s 1.0] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


import aiohttp

from adapters.demo_images import render_png
from benchmarks.fakes_process import model_fakes, served_inspilot
from benchmarks.study_data import STUDY_IMAGES, study_directory

INSTANCES = 6


@dataclass(frozen=True)
class Case:
    name: str
    body: dict[str, Any]
    chain_text_calls: int  # text calls on the longest dependent chain
    images: int  # images the pipeline renders (after the chain's last text call)
    total_text_calls: int  # every text call, for the sequential sum


def _cases() -> list[Case]:
    import base64

    sketch = "data:image/png;base64," + base64.b64encode(render_png(64, 48, 1)).decode()
    return [
        Case(
            "rapid divergence (type 0, num 6)",
            {"appid": 0, "type": 0, "prompts": {"task": "为独居老人设计厨房用品", "num": 6}},
            chain_text_calls=3,
            images=6,
            total_text_calls=4,
        ),
        Case(
            "deep divergence (type 1)",
            {
                "appid": 0,
                "type": 1,
                "prompts": {
                    "designTask": "厨房",
                    "designTexts": ["折叠"],
                    "designImage": sketch,
                    "schemeId": 0,
                },
            },
            chain_text_calls=4,
            images=3,
            total_text_calls=6,
        ),
        Case(
            "converge select (type 2, 4 schemes)",
            {
                "appid": 0,
                "type": 2,
                "prompts": {
                    "designTask": "厨房",
                    "selectNum": 2,
                    "schemes": [
                        {"designTexts": [f"方案{i}"], "designImage": sketch} for i in range(4)
                    ],
                },
            },
            chain_text_calls=2,
            images=0,
            total_text_calls=2,
        ),
        Case(
            "converge expand (type 3, 1 scheme x 3)",
            {
                "appid": 0,
                "type": 3,
                "prompts": {"selectedSchemes": [{"designTexts": ["折叠"]}], "num": 3},
            },
            chain_text_calls=2,
            images=6,
            total_text_calls=4,
        ),
        Case(
            "converge expand (type 3, 3 schemes x 1)",
            {
                "appid": 0,
                "type": 3,
                "prompts": {
                    "selectedSchemes": [
                        {"designTexts": ["a"]},
                        {"designTexts": ["b"]},
                        {"designTexts": ["c"]},
                    ],
                    "num": 1,
                },
            },
            chain_text_calls=2,
            images=6,
            total_text_calls=12,
        ),
    ]


class Reply(NamedTuple):
    status: int
    body: bytes


class FastClient:
    """A browser reads a 14 MB reply in milliseconds; httpx needs ~80 ms, which would be
    charged to the service. aiohttp's C parser stands in for the browser."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._loop = asyncio.new_event_loop()
        self._session: aiohttp.ClientSession | None = None

    def __enter__(self) -> FastClient:
        async def open_session() -> aiohttp.ClientSession:
            return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))

        self._session = self._loop.run_until_complete(open_session())
        return self

    def __exit__(self, *_: object) -> None:
        if self._session is not None:
            self._loop.run_until_complete(self._session.close())
        self._loop.close()

    def post(self, path: str, body: dict[str, Any]) -> Reply:
        async def send() -> Reply:
            assert self._session is not None
            async with self._session.post(self._url + path, json=body) as response:
                return Reply(response.status, await response.read())

        return self._loop.run_until_complete(send())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--text-s", type=float, default=0.3)
    parser.add_argument("--image-s", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--storage",
        choices=["memory", "embedded"],
        default="embedded",
        help="where sessions and records go (embedded, the default backend, in a temp dir)",
    )
    parser.add_argument(
        "--prefill",
        type=int,
        default=STUDY_IMAGES,
        help="real-size pictures already in the database before measuring (0: empty)",
    )
    args = parser.parse_args()
    logging.disable(logging.INFO)

    with (
        model_fakes(INSTANCES, args.text_s, args.image_s) as (openai_url, sd_urls),
        study_directory("inspilot-bench-", args.prefill, args.storage) as data_dir,
        served_inspilot(openai_url, sd_urls, args.storage, data_dir) as (url, _),
        FastClient(url) as client,
    ):
        print(
            f"text {args.text_s:.2f} s per call, image {args.image_s:.2f} s, "
            f"{INSTANCES} SD instances, {args.storage} storage, best of {args.repeat} runs\n"
        )
        header = (
            f"{'pipeline':<42}{'wall':>8}{'critical':>10}{'ratio':>8}"
            f"{'sequential':>12}{'speed-up':>10}"
        )
        print(header)
        print("-" * len(header))
        worst = 0.0
        for case in _cases():
            walls = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                response = client.post("/generate", case.body)
                walls.append(time.perf_counter() - started)
                if response.status != 200:
                    print(f"{case.name}: HTTP {response.status} {response.body[:200]!r}")
                    return 1
            wall = min(walls)
            critical = (
                case.chain_text_calls * args.text_s
                + math.ceil(case.images / INSTANCES) * args.image_s
            )
            sequential = case.total_text_calls * args.text_s + case.images * args.image_s
            ratio = wall / critical
            worst = max(worst, ratio)
            print(
                f"{case.name:<42}{wall:>7.2f}s{critical:>9.2f}s{ratio:>8.3f}"
                f"{sequential:>11.2f}s{sequential / wall:>9.1f}x"
                f"   (median {statistics.median(walls):.2f}s)"
            )
        print(
            f"\nworst wall / critical path: {worst:.3f} (target <= 1.05): "
            f"{'met' if worst <= 1.05 else 'MISSED'}"
        )
    return 0 if worst <= 1.05 else 1


if __name__ == "__main__":
    raise SystemExit(main())
