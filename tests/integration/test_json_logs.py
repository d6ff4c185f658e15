"""INSPILOT_LOG_FORMAT=json on `inspilot serve` itself: granian, the worker and the app."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.fakes.uvicorn_thread import free_port

# Slow: starts `inspilot serve` as a subprocess.
pytestmark = pytest.mark.slow


def test_every_line_is_json_and_a_request_s_lines_carry_its_id() -> None:
    port = free_port()
    env = {
        **os.environ,
        "INSPILOT_STORAGE_BACKEND": "memory",
        "INSPILOT_LOG_FORMAT": "json",
        "INSPILOT_ACCESS_LOG": "true",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "entrypoints.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, "inspilot serve exited"
            assert time.monotonic() < deadline, "inspilot serve did not answer"
            try:
                if httpx.get(f"{url}/ping", timeout=1).text == "pong":
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        bad = httpx.post(
            f"{url}/generate",
            json={"appid": 0, "type": 0, "prompts": {"task": "", "num": 1}},
            headers={"X-Request-ID": "trace-123"},
        )
        assert bad.status_code == 400 and bad.headers["x-request-id"] == "trace-123"
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    lines = [line for line in output.decode("utf-8").splitlines() if line.strip()]
    objects = [json.loads(line) for line in lines]  # every line, or this raises
    assert all({"time", "level", "logger", "message"} <= set(item) for item in objects)
    loggers = {item["logger"] for item in objects}
    assert {"_granian", "inspilot", "inspilot.access", "inspilot.http"} <= loggers, loggers
    traced = [item for item in objects if item.get("request_id") == "trace-123"]
    assert {item["logger"] for item in traced} == {"inspilot.http", "inspilot.access"}
    access = next(item for item in traced if item["logger"] == "inspilot.access")
    assert access["method"] == "POST" and access["path"] == "/generate" and access["status"] == 400
    pings = [item for item in objects if item.get("path") == "/ping"]
    assert pings and all(item["request_id"] not in ("trace-123", "-") for item in pings)
