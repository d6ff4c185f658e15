"""The model fakes (chat completions, six SD instances) in a process of their own.

In production the models run elsewhere; sharing the benchmark's process (and its GIL)
the fakes' 2.4 MB replies would be charged to the service. Run by the benchmarks:
`with model_fakes(...) as (openai_base_url, sd_urls): ...`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def model_fakes(instances: int, text_s: float, image_s: float) -> Iterator[tuple[str, list[str]]]:
    """Start the fakes in a child process; yields the OpenAI base URL and the SD URLs."""
    command = [
        sys.executable, str(Path(__file__).resolve()), "--serve",
        "--instances", str(instances), "--text-s", str(text_s), "--image-s", str(image_s),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT)
    try:
        assert process.stdout is not None
        found = json.loads(process.stdout.readline())
        yield found["openai"], found["sd"]
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def _serve(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.fakes.inspilot_responder import inspilot_responder
    from tests.fakes.openai_server import FakeOpenAIServer
    from tests.fakes.sdapi_server import fake_sd_instances

    with (
        FakeOpenAIServer(api_key="k", latency_s=args.text_s, responder=inspilot_responder) as text,
        fake_sd_instances(args.instances, latency_s=args.image_s, real_size=True) as sd,
    ):
        print(json.dumps({"openai": text.openai_base_url, "sd": [s.url for s in sd]}), flush=True)
        sys.stdin.read()  # until the benchmark closes our stdin


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", action="store_true", required=True)
    parser.add_argument("--instances", type=int, default=6)
    parser.add_argument("--text-s", type=float, default=0.3)
    parser.add_argument("--image-s", type=float, default=1.0)
    _serve(parser.parse_args())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def served_inspilot(
    openai_url: str,
    sd_urls: list[str],
    storage: str,
    data_dir: str,
    extra: dict[str, str] | None = None,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`inspilot serve` in its own process on the fakes, as deployed; yields its URL."""
    import httpx

    port = free_port()
    env = {
        **os.environ,
        "INSPILOT_TEXT_BACKEND": "openai",
        "INSPILOT_OPENAI_BASE_URL": openai_url,
        "INSPILOT_OPENAI_API_KEY": "k",
        "INSPILOT_OPENAI_MODEL": "bench",
        "INSPILOT_IMAGES_BACKEND": "sd",
        "INSPILOT_SD_INSTANCES": ",".join(sd_urls),
        "INSPILOT_STORAGE_BACKEND": storage,
        "INSPILOT_DATA_DIR": data_dir,
        "INSPILOT_LOG_LEVEL": "warning",
        **(extra or {}),
    }
    service = subprocess.Popen(
        [sys.executable, "-m", "entrypoints.cli", "serve", "--port", str(port)], env=env, cwd=ROOT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/ping", timeout=1).text == "pong":
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or service.poll() is not None:
                raise SystemExit("inspilot serve did not start")
            time.sleep(0.1)
        yield url, service
    finally:
        if service.poll() is None:
            service.terminate()
            try:
                service.wait(timeout=60)
            except subprocess.TimeoutExpired:
                service.kill()
