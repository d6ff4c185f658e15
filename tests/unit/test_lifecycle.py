"""Shutdown closes every adapter, even when one of them fails to close."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from dependency_injector import providers

from entrypoints.container import build_container
from entrypoints.lifecycle import running
from entrypoints.settings import Settings
from tests.unit.fakes import FakeImageGenerator, RecordingTextGenerator


@dataclass
class ClosingText(RecordingTextGenerator):
    closed: bool = False

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self.closed = True


class BrokenImages(FakeImageGenerator):
    async def start(self) -> None:
        return None

    async def close(self) -> None:
        raise RuntimeError("connection pool already torn down")


async def test_one_adapter_failing_to_close_does_not_skip_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    container = build_container(Settings.load({"INSPILOT_STORAGE_BACKEND": "memory"}))
    text = ClosingText()
    container.text_generator.override(providers.Object(text))
    container.image_generator.override(providers.Object(BrokenImages()))
    async with running(container):
        pass
    # The images adapter closes before the text adapter: its failure must not stop that.
    assert text.closed
    assert "closing BrokenImages failed" in caplog.text
