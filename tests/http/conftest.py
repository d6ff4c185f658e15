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
    environ = {"INSPILOT_STORAGE_BACKEND": "memory", **overrides}
    return Settings.load(environ)


@pytest.fixture
def container() -> Container:
    return build_container(memory_settings())


@pytest.fixture
def client(container: Container) -> Iterator[TestClient[Any]]:
    with TestClient(create_app(container)) as test_client:
        yield test_client
