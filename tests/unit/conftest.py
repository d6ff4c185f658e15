"""Fixtures wiring the use cases to in-memory fakes and the shipped prompt templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.filesystem_prompts import FilesystemPromptCatalog
from adapters.memory_repository import InMemoryExperimentRepository
from application.generation_run import ModelGateway
from application.steps import IMAGE_KINDS, IMAGE_POSITIVE, TEXT_STEPS
from entrypoints.settings import REPO_ROOT
from tests.unit.fakes import FakeImageGenerator, RecordingTextGenerator, TickingClock


def catalog_of(directory: Path) -> FilesystemPromptCatalog:
    return FilesystemPromptCatalog(directory, TEXT_STEPS, IMAGE_KINDS, IMAGE_POSITIVE)


@pytest.fixture(scope="session")
def prompts() -> FilesystemPromptCatalog:
    return catalog_of(REPO_ROOT / "prompts")


@pytest.fixture
def text() -> RecordingTextGenerator:
    return RecordingTextGenerator()


@pytest.fixture
def images() -> FakeImageGenerator:
    return FakeImageGenerator()


@pytest.fixture
def repository() -> InMemoryExperimentRepository:
    return InMemoryExperimentRepository()


@pytest.fixture
def gateway(
    text: RecordingTextGenerator,
    images: FakeImageGenerator,
    prompts: FilesystemPromptCatalog,
    repository: InMemoryExperimentRepository,
) -> ModelGateway:
    return ModelGateway(text, images, prompts, repository, TickingClock(), list_attempts=3)
