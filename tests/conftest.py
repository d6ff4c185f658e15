"""Fixtures every test layer shares."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from entrypoints.settings import REPO_ROOT


@pytest.fixture
def prompt_copy(tmp_path: Path) -> Path:
    """A copy of the shipped prompt set that a test may edit."""
    target = tmp_path / "prompts"
    shutil.copytree(REPO_ROOT / "prompts", target)
    return target
