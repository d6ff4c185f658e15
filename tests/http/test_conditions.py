"""Study conditions: declared in a study file, assigned to participants, and used by
their generations; without a study file, one `default` condition as before."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from entrypoints.container import Container, build_container
from entrypoints.http.app import create_app
from entrypoints.settings import REPO_ROOT
from entrypoints.study_file import StudyError
from tests.fakes.uvicorn_thread import served
from tests.http.conftest import memory_settings

TOKEN = "research-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TYPE_0 = {"appid": 0, "type": 0, "prompts": {"task": "厨房", "num": 1}}


def _vivid_prompts(root: Path) -> Path:
    prompts = root / "vivid-prompts"
    shutil.copytree(REPO_ROOT / "prompts", prompts)
    products = prompts / "paint/rapid_divergence/products.txt"
    products.write_text("生动版本：" + products.read_text(encoding="utf-8"), encoding="utf-8")
    return prompts


def study_file(root: Path, assignment: str = "balanced", names: tuple[str, ...] = ()) -> Path:
    vivid = _vivid_prompts(root)
    extra = "".join(f'\n[[conditions]]\nname = "{name}"\n' for name in names)
    path = root / "study.toml"
    path.write_text(
        f"""
[study]
name = "style-2026"
assignment = "{assignment}"

[[conditions]]
name = "baseline"

[[conditions]]
name = "vivid"
prompts = "{vivid.name}"
text_model = "gpt-vivid"
[conditions.images]
scene = {{ steps = 20, cfg_scale = 7.0 }}
{extra}""",
        encoding="utf-8",
    )
    return path


def _container(tmp_path: Path, assignment: str = "balanced", **env: str) -> Container:
    settings = memory_settings(
        INSPILOT_STUDY_FILE=str(study_file(tmp_path, assignment, ("third",))),
        INSPILOT_RESEARCH_TOKEN=TOKEN,
        **env,
    )
    return build_container(settings)


def _ok(response: Any) -> Any:
    body = response.json()
    assert response.status_code == 200, body
    return body["data"]


def _records(container: Container) -> list[Any]:
    return list(asyncio.run(container.repository().list_generations(limit=100)))


@pytest.mark.slow  # a uvicorn-served app and twenty concurrent clients
def test_twenty_concurrent_first_starts_are_balanced_7_7_6(tmp_path: Path) -> None:
    container = _container(tmp_path)
    with served(create_app(container)) as url:

        def start(number: int) -> None:
            response = httpx.post(f"{url}/paint/start", json={"username": f"s{number:02d}"})
            assert response.status_code == 200

        with ThreadPoolExecutor(20) as pool:
            list(pool.map(start, range(20)))
        sessions = [
            httpx.get(f"{url}/api/v1/sessions/s{n:02d}", headers=AUTH).json()["data"]
            for n in range(20)
        ]
    counts = Counter(session["condition"] for session in sessions)
    assert sorted(counts.values(), reverse=True) == [7, 7, 6]
    assert set(counts) == {"baseline", "vivid", "third"}
    assert counts["third"] == 6  # ties go to the conditions declared first


def test_a_condition_never_changes_silently_and_a_move_is_recorded(tmp_path: Path) -> None:
    with TestClient(create_app(_container(tmp_path))) as client:
        _ok(client.post("/paint/start", json={"username": "m1"}))
        first = _ok(client.get("/api/v1/sessions/m1", headers=AUTH))["condition"]
        _ok(client.post("/paint/start", json={"username": "m1"}))
        assert _ok(client.get("/api/v1/sessions/m1", headers=AUTH))["condition"] == first
        target = "vivid" if first != "vivid" else "baseline"
        moved = _ok(
            client.put(
                "/api/v1/participants/m1/condition", json={"condition": target}, headers=AUTH
            )
        )
        assert (moved["previous"], moved["condition"]) == (first, target)
        session = _ok(client.get("/api/v1/sessions/m1", headers=AUTH))
        assert session["condition"] == target
        assert [(m["from"], m["to"]) for m in session["conditionMoves"]] == [(first, target)]
        refused = client.put(
            "/api/v1/participants/m1/condition", json={"condition": "nope"}, headers=AUTH
        )
        assert refused.status_code == 400 and "condition: unknown condition" in refused.text
        stranger = client.put("/api/v1/participants/m1/condition", json={"condition": "vivid"})
        assert stranger.status_code == 401


def test_a_roster_file_assigns_exactly(tmp_path: Path) -> None:
    roster = tmp_path / "roster.txt"
    roster.write_text("r1,vivid\nr2,baseline\nr3,vivid  # late joiner\n", encoding="utf-8")
    container = _container(tmp_path, "roster", INSPILOT_PARTICIPANTS=f"@{roster}")
    with TestClient(create_app(container)) as client:
        for username in ("r1", "r2", "r3"):
            _ok(client.post("/paint/start", json={"username": username}))
        conditions = [
            _ok(client.get(f"/api/v1/sessions/{u}", headers=AUTH))["condition"]
            for u in ("r1", "r2", "r3")
        ]
        assert conditions == ["vivid", "baseline", "vivid"]
        assert client.post("/paint/start", json={"username": "r4"}).status_code == 403


def test_a_generation_runs_in_its_participants_condition(tmp_path: Path) -> None:
    roster = tmp_path / "roster.txt"
    roster.write_text("v1,vivid\nb1,baseline\n", encoding="utf-8")
    container = _container(tmp_path, "roster", INSPILOT_PARTICIPANTS=f"@{roster}")
    with TestClient(create_app(container)) as client:
        for username in ("v1", "b1"):
            _ok(client.post("/paint/start", json={"username": username}))
            _ok(client.post("/generate", json=TYPE_0))  # named by the cookie
        by_participant = {record.participant: record for record in _records(container)}
    vivid, baseline = by_participant["v1"], by_participant["b1"]
    assert (vivid.condition, vivid.condition_by) == ("vivid", "participant")
    assert (baseline.condition, baseline.condition_by) == ("baseline", "participant")
    assert vivid.text_steps[0].prompt.startswith("生动版本：")
    assert not baseline.text_steps[0].prompt.startswith("生动版本：")
    assert {step.model for step in vivid.text_steps} == {"gpt-vivid"}
    assert {step.model for step in baseline.text_steps} == {"demo"}


def test_prefix_routes_assign_and_run_their_condition(tmp_path: Path) -> None:
    with TestClient(create_app(_container(tmp_path, "prefix"))) as client:
        _ok(client.post("/c/vivid/paint/start", json={"username": "x1"}))
        assert _ok(client.get("/api/v1/sessions/x1", headers=AUTH))["condition"] == "vivid"
        client.cookies.clear()  # another origin: nothing names the participant
        _ok(client.post("/c/third/generate", json=TYPE_0))
        _ok(client.post("/generate", json=TYPE_0))
        assert client.get("/c/vivid/ping").text == "pong"
        unknown = client.post("/c/nope/paint/start", json={"username": "x2"})
        assert unknown.status_code == 404
        records = sorted(_records(client.app.state.container), key=lambda record: record.started_at)
    assert [(r.condition, r.condition_by) for r in records] == [
        ("third", "prefix"),
        ("baseline", "default"),
    ]


def test_jobs_take_an_explicit_condition(tmp_path: Path) -> None:
    container = _container(tmp_path)
    with TestClient(create_app(container)) as client:
        body = {"pipeline": "rapid_divergence", "inputs": {"task": "厨房", "num": 1}}
        wrong = client.post("/api/v1/jobs", json={**body, "condition": "nope"})
        assert wrong.status_code == 400 and "condition: unknown condition 'nope'" in wrong.text
        created = client.post("/api/v1/jobs", json={**body, "condition": "vivid"})
        assert created.status_code == 202
        events = client.get(created.json()["data"]["eventsUrl"]).text  # ends with the job
        assert "event: done" in events
        (record,) = _records(container)
    assert (record.condition, record.condition_by) == ("vivid", "request")


def test_without_a_study_file_everything_runs_in_default(client: TestClient[Any]) -> None:
    _ok(client.post("/paint/start", json={"username": "d1"}))
    _ok(client.post("/generate", json=TYPE_0))
    container = client.app.state.container
    (record,) = _records(container)
    assert (record.condition, record.participant) == ("default", "d1")
    assert asyncio.run(container.repository().get("d1")).condition == "default"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('text_model = "gpt-vivid"', 'text_modle = "x"'), "'vivid': text_modle: unknown key"),
        (
            ('text_model = "gpt-vivid"', 'text_endpoints = ["eu"]'),
            "condition 'vivid': text_endpoints: unknown endpoint 'eu'",
        ),
        (("steps = 20", "stepz = 20"), "condition 'vivid': images.scene.stepz: unknown option"),
        (("steps = 20", 'steps = "many"'), "condition 'vivid': images.scene.steps: must be int"),
        (('assignment = "balanced"', 'assignment = "random"'), "study.assignment: must be one of"),
    ],
)
def test_a_wrong_study_file_stops_start_up_naming_condition_key_and_reason(
    tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    path = study_file(tmp_path)
    path.write_text(path.read_text(encoding="utf-8").replace(*edit), encoding="utf-8")
    container = build_container(memory_settings(INSPILOT_STUDY_FILE=str(path)))
    with pytest.raises(StudyError, match=message.replace("(", r"\(").replace("[", r"\[")):
        create_app(container)


def test_a_broken_prompt_set_stops_start_up_naming_its_condition(tmp_path: Path) -> None:
    path = study_file(tmp_path)
    broken = tmp_path / "vivid-prompts/paint/rapid_divergence/products.txt"
    broken.write_text("$nonsense $num", encoding="utf-8")
    container = build_container(memory_settings(INSPILOT_STUDY_FILE=str(path)))
    with pytest.raises(StudyError, match=r"condition 'vivid': prompts: .*products.txt.*\$nonsense"):
        create_app(container)


def test_a_conditions_own_prompt_set_is_edited_live(tmp_path: Path) -> None:
    container = _container(
        tmp_path, "prefix", INSPILOT_PROMPTS_DEBOUNCE_MS="50", INSPILOT_PROMPTS_WATCH="true"
    )
    vivid = container.study().named("vivid").prompts
    assert vivid in container.prompt_catalogs()  # watched, checked and shown
    with TestClient(create_app(container)) as client:
        client.cookies.clear()
        _ok(client.post("/c/vivid/generate", json=TYPE_0))
        before = vivid.set_version
        path = tmp_path / "vivid-prompts/paint/rapid_divergence/products.txt"
        path.write_text(path.read_text(encoding="utf-8") + "\n第二版。", encoding="utf-8")
        deadline = time.monotonic() + 10
        while vivid.set_version == before:
            assert time.monotonic() < deadline, "the condition's edit was not swapped in"
            time.sleep(0.05)
        _ok(client.post("/c/vivid/generate", json=TYPE_0))
        records = sorted(_records(container), key=lambda record: record.started_at)
    first, second = (record.text_steps[0] for record in records)
    assert "第二版。" not in first.prompt and "第二版。" in second.prompt
    assert (first.prompt_set_version, second.prompt_set_version) == (before, vivid.set_version)
