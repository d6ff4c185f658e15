"""The Litestar app on in-memory storage and demo models, with the container at hand."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from adapters.demo_images import render_png
from entrypoints.container import Container, build_container
from entrypoints.http.app import create_app
from entrypoints.settings import Settings

SKETCH = "data:image/png;base64," + base64.b64encode(render_png(64, 48, 3)).decode()


def memory_settings(**overrides: str) -> Settings:
    """In-memory storage, demo models; prompt files not watched unless a test says so.

    The watcher's thread takes up to 50 ms to stop (watchfiles' step): about 8 s of
    waiting over the HTTP tests. The tests of live edits turn it on
    (INSPILOT_PROMPTS_WATCH=true); the service's default stays on.
    """
    environ = {"INSPILOT_STORAGE_BACKEND": "memory", "INSPILOT_PROMPTS_WATCH": "false", **overrides}
    return Settings.load(environ)


@pytest.fixture
def container() -> Container:
    return build_container(memory_settings())


@pytest.fixture
def client(container: Container) -> Iterator[TestClient[Any]]:
    with TestClient(create_app(container)) as test_client:
        yield test_client
