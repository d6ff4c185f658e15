"""Each pipeline through the HTTP app on two text endpoints: both healthy, then one always failing.

Two fake chat-completions servers answer in TEXT_S; six fake SD instances render in
IMAGE_S. First every pipeline runs REPEAT times with both endpoints healthy; then
endpoint "a" fails every call (HTTP 500, 429 with Retry-After, or a refused
connection), one request finds that out, and every pipeline runs REPEAT times again.
Prints each pipeline's median latency in both phases and their ratio.
Target: one failing / both healthy <= 1.10, with no failed request.
Run: python benchmarks/text_endpoints.py [--text-s 0.2] [--image-s 0.3] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from litestar.testing import TestClient

from benchmarks.pipelines import INSTANCES, Case, _cases
from entrypoints.container import build_container
from entrypoints.http.app import create_app
from entrypoints.settings import Settings
from tests.fakes.inspilot_responder import inspilot_responder
from tests.fakes.openai_server import FakeOpenAIServer, Fault
from tests.fakes.sdapi_server import fake_sd_instances

TARGET = 1.10


def _settings(a: FakeOpenAIServer, b: FakeOpenAIServer, sd_urls: list[str]) -> Settings:
    entries = [
        {"name": name, "kind": "openai", "base_url": fake.openai_base_url, "api_key": "k",
         "model": "bench", "vision_model": "bench-vision"}
        for name, fake in (("a", a), ("b", b))
    ]  # fmt: skip
    return Settings.load(
        {
            "INSPILOT_TEXT_BACKEND": "endpoints",
            "INSPILOT_TEXT_ENDPOINTS": json.dumps(entries),
            "INSPILOT_IMAGES_BACKEND": "sd",
            "INSPILOT_SD_INSTANCES": ",".join(sd_urls),
            "INSPILOT_STORAGE_BACKEND": "memory",
        }
    )


def _medians(client: TestClient[Any], cases: list[Case], repeat: int) -> tuple[list[float], int]:
    """Median wall time of each case, and how many requests failed."""
    medians, failed = [], 0
    for case in cases:
        walls = []
        for _ in range(repeat):
            started = time.perf_counter()
            response = client.post("/generate", json=case.body)
            walls.append(time.perf_counter() - started)
            failed += response.status_code != 200
        medians.append(statistics.median(walls))
    return medians, failed


def _break(a: FakeOpenAIServer, failure: str) -> None:
    if failure == "500":
        a.always = Fault.server_error(500)
    elif failure == "429":
        a.always = Fault.rate_limited(retry_after_s=1)
    else:
        a.stop()  # its port refuses connections from now on


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--text-s", type=float, default=0.2)
    parser.add_argument("--image-s", type=float, default=0.3)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--failure", choices=["500", "429", "refused"], default="500")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    cases = _cases()

    with (
        FakeOpenAIServer(api_key="k", latency_s=args.text_s, responder=inspilot_responder) as a,
        FakeOpenAIServer(api_key="k", latency_s=args.text_s, responder=inspilot_responder) as b,
        fake_sd_instances(INSTANCES, latency_s=args.image_s) as sd,
    ):
        container = build_container(_settings(a, b, [server.url for server in sd]))
        with TestClient(create_app(container), timeout=120) as client:
            healthy, healthy_failed = _medians(client, cases, args.repeat)
            _break(a, args.failure)
            generator = container.text_generator()
            found = []  # the requests that ran until a was found out (cooling down)
            while generator.endpoint_stats()["a"]["healthy"] and len(found) < 10:
                started = time.perf_counter()
                status = client.post("/generate", json=cases[0].body).status_code
                found.append((status, time.perf_counter() - started))
            seen_before = len(a.requests)
            failing, failing_failed = _medians(client, cases, args.repeat)
            stats = generator.endpoint_stats()
            later = a.requests[seen_before:]

    print(
        f"two text endpoints at {args.text_s:.2f} s per call, {INSTANCES} SD instances at "
        f"{args.image_s:.2f} s, median of {args.repeat} runs; endpoint a fails every call "
        f"({args.failure}) in the second phase\n"
    )
    header = f"{'pipeline':<42}{'healthy':>9}{'a failing':>11}{'ratio':>8}"
    print(header)
    print("-" * len(header))
    worst = 0.0
    for case, both, one in zip(cases, healthy, failing, strict=True):
        ratio = one / both
        worst = max(worst, ratio)
        print(f"{case.name:<42}{both:>8.2f}s{one:>10.2f}s{ratio:>8.3f}")
    print(
        "\nrequests until a was found out: "
        + ", ".join(f"HTTP {status} in {wall:.2f}s" for status, wall in found)
    )
    real = sum(1 for seen in later if seen.max_tokens != 1)
    print(
        f"endpoint a: {stats['a']['cooldowns']} cooldown(s), now {stats['a']['state']}; "
        f"calls {_nonzero(stats['a']['calls'])}, probes {_nonzero(stats['a']['probes'])}; "
        f"steps sent to it after it was found out: {real}"
    )
    print(f"failed requests: {healthy_failed} healthy, {failing_failed} with a failing")
    found_failed = sum(status != 200 for status, _ in found)
    met = worst <= TARGET and failing_failed == 0 and found_failed == 0
    print(f"worst ratio: {worst:.3f} (target <= {TARGET:.2f}): {'met' if met else 'MISSED'}")
    return 0 if met else 1


def _nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {key: value for key, value in counts.items() if value}


if __name__ == "__main__":
    raise SystemExit(main())
