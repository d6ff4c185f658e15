"""Each pipeline through the HTTP app on two text endpoints: both healthy, then one always failing.

Two fake chat-completions servers answer in TEXT_S; six fake SD instances render
real-size pictures in IMAGE_S; all run in child processes (in production the models
are elsewhere). First every pipeline runs REPEAT times with both endpoints healthy; then
endpoint "a" fails every call (HTTP 500, 429 with Retry-After, or a refused
connection), one request finds that out, and every pipeline runs REPEAT times again.
Prints each pipeline's median latency in both phases (after one warm-up run of each)
and their ratio.
Target: one failing / both healthy <= 1.10, with no failed request.
Run: python benchmarks/text_endpoints.py [--text-s 0.2] [--image-s 0.3] [--repeat 5]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from litestar.testing import TestClient

from benchmarks.fakes_process import model_fakes
from benchmarks.pipelines import INSTANCES, Case, _cases
from entrypoints.container import build_container
from entrypoints.http.app import create_app
from entrypoints.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1.10


def _settings(text_urls: dict[str, str], sd_urls: list[str]) -> Settings:
    entries = [
        {"name": name, "kind": "openai", "base_url": url, "api_key": "k",
         "model": "bench", "vision_model": "bench-vision"}
        for name, url in text_urls.items()
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


@contextlib.contextmanager
def text_fakes(text_s: float) -> Iterator[tuple[dict[str, str], Callable[[str], None]]]:
    """Endpoints "a" and "b" in a child process; yields their URLs and how to break "a"."""
    command = [sys.executable, str(Path(__file__).resolve()), "--serve", "--text-s", str(text_s)]
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert process.stdin is not None and process.stdout is not None
    stdin, stdout = process.stdin, process.stdout

    def break_a(failure: str) -> None:
        stdin.write(f"{failure}\n")
        stdin.flush()
        stdout.readline()  # done

    try:
        yield json.loads(stdout.readline()), break_a
    finally:
        stdin.close()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def _serve(text_s: float) -> None:
    from tests.fakes.inspilot_responder import inspilot_responder
    from tests.fakes.openai_server import FakeOpenAIServer, Fault

    with (
        FakeOpenAIServer(api_key="k", latency_s=text_s, responder=inspilot_responder) as a,
        FakeOpenAIServer(api_key="k", latency_s=text_s, responder=inspilot_responder) as b,
    ):
        print(json.dumps({"a": a.openai_base_url, "b": b.openai_base_url}), flush=True)
        for line in sys.stdin:  # until the benchmark closes our stdin
            failure = line.strip()
            if failure == "500":
                a.always = Fault.server_error(500)
            elif failure == "429":
                a.always = Fault.rate_limited(retry_after_s=1)
            else:
                a.stop()  # its port refuses connections from now on
            print("done", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--text-s", type=float, default=0.2)
    parser.add_argument("--image-s", type=float, default=0.3)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--failure", choices=["500", "429", "refused"], default="500")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.text_s)
        return 0
    logging.disable(logging.WARNING)
    cases = _cases()

    with (
        text_fakes(args.text_s) as (text_urls, break_a),
        model_fakes(INSTANCES, args.text_s, args.image_s) as (_, sd_urls),
    ):
        container = build_container(_settings(text_urls, sd_urls))
        with TestClient(create_app(container), timeout=120) as client:
            _medians(client, cases, 1)  # warm-up: first calls pay for connections and caches
            healthy, healthy_failed = _medians(client, cases, args.repeat)
            break_a(args.failure)
            generator = container.text_generator()
            found = []  # the requests that ran until a was found out (cooling down)
            while _row_a(generator)["healthy"] and len(found) < 10:
                started = time.perf_counter()
                status = client.post("/generate", json=cases[0].body).status_code
                found.append((status, time.perf_counter() - started))
            calls_before = sum(_row_a(generator)["calls"].values())
            failing, failing_failed = _medians(client, cases, args.repeat)
            a = _row_a(generator)

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
    real = sum(a["calls"].values()) - calls_before
    print(
        f"endpoint a: {a['cooldowns_total']} cooldown(s), now {a['state']}; "
        f"calls {_nonzero(a['calls'])}, probes {_nonzero(a['probes'])}; "
        f"steps sent to it after it was found out: {real}"
    )
    print(f"failed requests: {healthy_failed} healthy, {failing_failed} with a failing")
    found_failed = sum(status != 200 for status, _ in found)
    met = worst <= TARGET and failing_failed == 0 and found_failed == 0
    print(f"worst ratio: {worst:.3f} (target <= {TARGET:.2f}): {'met' if met else 'MISSED'}")
    return 0 if met else 1


def _row_a(generator: Any) -> dict[str, Any]:
    return next(row for row in generator.endpoint_stats() if row["endpoint"] == "a")


def _nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {key: value for key, value in counts.items() if value}


if __name__ == "__main__":
    raise SystemExit(main())
