"""`inspilot replay`: a stored record sent again on the configured models, with its diff."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from domain.generation import GenerationRecord
from entrypoints.cli import main
from entrypoints.container import build_container
from entrypoints.http.app import create_app
from entrypoints.settings import Settings
from tests.fakes.inspilot_responder import inspilot_responder
from tests.fakes.openai_replies import user_text
from tests.fakes.openai_server import FakeOpenAIServer
from tests.http.conftest import SKETCH

# Slow: records on the embedded MongoDB-wire server, one beside a running `inspilot serve`.
pytestmark = pytest.mark.slow

DEEP = {
    "appid": 0,
    "type": 1,
    "username": "r1",
    "prompts": {
        "designTask": "雨天通勤",
        "designTexts": ["伞柄能发光"],
        "designImage": SKETCH,
        "schemeId": 0,
    },
}


def _mongo_settings(monkeypatch: pytest.MonkeyPatch, uri: str, database: str) -> Settings:
    values = {
        "INSPILOT_STORAGE_BACKEND": "mongodb",
        "INSPILOT_MONGODB_URI": uri,
        "INSPILOT_MONGODB_DATABASE": database,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return Settings.load(values)


def _recorded_deep_divergence(settings: Settings) -> GenerationRecord:
    """One type 1 run (with a sketch: its first step is a vision step), as stored."""
    container = build_container(settings)
    with TestClient(create_app(container)) as client:
        assert client.post("/generate", json=DEEP).json()["success"]
        portal = client.blocking_portal
        (record,) = portal.call(container.repository().list_generations)
    assert record.text_steps[0].image_count == 1
    return record


def _read(out: Path, name: str) -> Any:
    return json.loads((out / name).read_text(encoding="utf-8"))


def test_replay_on_the_demo_models_reproduces_the_stored_record(
    monkeypatch: pytest.MonkeyPatch, mongodb_uri: str, mongo_database: str, tmp_path: Path
) -> None:
    settings = _mongo_settings(monkeypatch, mongodb_uri, mongo_database)
    record = _recorded_deep_divergence(settings)
    record_id = record.id
    pictures = {step.id: step.image for step in record.image_steps if step.image}
    out = tmp_path / "replay"
    assert main(["replay", record_id, "--out", str(out)]) == 0
    diff = _read(out, "diff.json")
    assert diff["generation_id"] == record_id and diff["same"] is True and diff["changed"] == []
    assert {step["kind"] for step in diff["steps"]} == {"text", "image"}
    result = _read(out, "result.json")
    assert len(result["image_steps"]) == len(pictures) == 3
    for step in result["image_steps"]:
        assert (out / step["file"]).read_bytes() == pictures[step["step_id"]]
    assert all(step["answer"] for step in result["text_steps"])


def test_replay_on_another_text_model_names_the_changed_steps(
    monkeypatch: pytest.MonkeyPatch, mongodb_uri: str, mongo_database: str, tmp_path: Path
) -> None:
    settings = _mongo_settings(monkeypatch, mongodb_uri, mongo_database)
    record = _recorded_deep_divergence(settings)
    with FakeOpenAIServer(api_key="k", responder=inspilot_responder) as server:
        for name, value in {
            "INSPILOT_TEXT_BACKEND": "openai",
            "INSPILOT_OPENAI_BASE_URL": server.openai_base_url,
            "INSPILOT_OPENAI_API_KEY": "k",
            "INSPILOT_OPENAI_MODEL": "gpt-test",
        }.items():
            monkeypatch.setenv(name, value)
        out = tmp_path / "replay"
        assert main(["replay", record.id, "--out", str(out)]) == 0
        sent = [request for request in server.requests if request.max_tokens != 1]
    diff = _read(out, "diff.json")
    texts = [step for step in diff["steps"] if step["kind"] == "text"]
    assert diff["same"] is False and all(not step["same"] for step in texts)
    assert diff["changed"] == [f"{step['step']}#{step['attempt']}" for step in texts]
    # Pictures are replayed from their recorded prompts and seeds: unchanged.
    assert all(step["same"] for step in diff["steps"] if step["kind"] == "image")
    # The recorded rendered prompts went out (not today's templates), the sketch with the first.
    assert sorted(user_text(request.messages) for request in sent) == sorted(
        step.prompt for step in record.text_steps
    )
    assert [request.has_images for request in sent].count(True) == 1


def test_an_unknown_generation_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch,
    mongodb_uri: str,
    mongo_database: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _mongo_settings(monkeypatch, mongodb_uri, mongo_database)
    assert main(["replay", "0" * 24, "--out", str(tmp_path / "nothing")]) == 1
    assert f"no record '{'0' * 24}'" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists()


def test_replay_reads_beside_a_running_service_on_the_embedded_database(tmp_path: Path) -> None:
    pytest.importorskip("secantus")
    from tests.integration.test_cli_serve import TOKEN, serving

    with serving(tmp_path / "data") as (url, _):
        assert httpx.post(f"{url}/generate", json=DEEP, timeout=30).json()["success"]
        auth = {"Authorization": f"Bearer {TOKEN}"}
        (listed,) = httpx.get(f"{url}/api/v1/generations", headers=auth).json()["data"]
        env = {**os.environ, "INSPILOT_DATA_DIR": str(tmp_path / "data")}
        out = tmp_path / "replay"
        done = subprocess.run(
            [sys.executable, "-m", "entrypoints.cli", "replay", listed["id"], "--out", str(out)],
            env=env,
            capture_output=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr.decode()
        assert "all the same" in done.stderr.decode()
        record = httpx.get(f"{url}/api/v1/generations/{listed['id']}", headers=auth).json()
        recorded = {
            step["id"]: httpx.get(f"{url}{step['imageUrl']}", headers=auth).content
            for step in record["data"]["imageSteps"]
        }
    assert _read(out, "diff.json")["same"] is True and len(recorded) == 3
    for step_id, picture in recorded.items():
        assert (out / f"{step_id}.png").read_bytes() == picture
