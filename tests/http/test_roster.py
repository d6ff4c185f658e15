"""INSPILOT_PARTICIPANTS: a username outside the study's roster is refused and nothing is stored."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from entrypoints.container import Container, build_container
from entrypoints.http.app import create_app
from entrypoints.settings import Settings, SettingsError
from tests.http.conftest import memory_settings

REFUSED = {
    "success": False,
    "data": None,
    "code": 1,
    "message": "username: not in this study's roster",
}
RAPID = {"appid": 0, "type": 0, "prompts": {"task": "厨房", "num": 1}}


@pytest.fixture
def study() -> Iterator[tuple[TestClient[Any], Container]]:
    container = build_container(memory_settings(INSPILOT_PARTICIPANTS="p01, p02"))
    with TestClient(create_app(container)) as client:
        yield client, container


def _stored(container: Container) -> tuple[Any, Any]:
    repository = container.repository()
    return asyncio.run(repository.get("stranger")), asyncio.run(repository.list_generations())


def test_a_stranger_can_neither_start_save_nor_generate(
    study: tuple[TestClient[Any], Container],
) -> None:
    client, container = study
    save = {"username": "stranger", "data": {"designTask": "x", "currentStage": "准备"}}
    for path, body in (
        ("/paint/start", {"username": "stranger"}),
        ("/paint/save", save),
        ("/generate", {**RAPID, "username": "stranger"}),
    ):
        response = client.post(path, json=body)
        assert response.status_code == 403 and response.json() == REFUSED, path
    assert _stored(container) == (None, [])


def test_participants_on_the_roster_work_as_before(
    study: tuple[TestClient[Any], Container],
) -> None:
    client, _ = study
    assert client.post("/paint/start", json={"username": "p02"}).json()["success"] is True
    assert client.post("/generate", json={**RAPID, "username": "p01"}).status_code == 200
    # The front end sends no username with /generate: nothing to check, as before.
    assert client.post("/generate", json=RAPID).status_code == 200


def test_the_roster_may_come_from_a_file(tmp_path: Path) -> None:
    roster = tmp_path / "roster.txt"
    roster.write_text("# pilot study\np01\n\n  p02  # came late\n", encoding="utf-8")
    settings = Settings.load({"INSPILOT_PARTICIPANTS": f"@{roster}"})
    assert settings.participants == ("p01", "p02")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("@/no/such/roster.txt", "INSPILOT_PARTICIPANTS='@/no/such/roster.txt': cannot read"),
        ("p01,$where", "INSPILOT_PARTICIPANTS='p01,$where': entry '$where': must not start"),
    ],
)
def test_a_bad_roster_stops_start_up(value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("$", r"\$")):
        Settings.load({"INSPILOT_PARTICIPANTS": value})
