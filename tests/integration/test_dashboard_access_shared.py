"""Dashboard sessions and the wrong-token throttle shared by two apps on one database (as
two `inspilot serve --workers 2` workers, or two replicas, are): a login on one is
honoured on the other, a logout on one revokes on both, wrong tokens count together."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest
from pymongo import MongoClient

from entrypoints.container import build_container
from entrypoints.http.app import create_app
from entrypoints.settings import Settings
from tests.fakes.uvicorn_thread import served

pytestmark = pytest.mark.slow  # uvicorn-served apps on the embedded MongoDB-wire server

TOKEN = "dash-secret"
COOKIE = "inspilot_research"
API = "/api/v1/generations"


@pytest.fixture
def two_apps(mongodb_uri: str, mongo_database: str) -> Iterator[tuple[str, str]]:
    settings = Settings.load(
        {
            "INSPILOT_STORAGE_BACKEND": "mongodb",
            "INSPILOT_MONGODB_URI": mongodb_uri,
            "INSPILOT_MONGODB_DATABASE": mongo_database,
            "INSPILOT_RESEARCH_TOKEN": TOKEN,
        }
    )
    with ExitStack() as stack:
        first, second = (
            stack.enter_context(served(create_app(build_container(settings)))) for _ in range(2)
        )
        yield first, second


def _log_in(url: str) -> str:
    reply = httpx.post(f"{url}/dashboard/login", data={"token": TOKEN})
    assert reply.status_code == 303, reply.text
    return str(reply.cookies[COOKIE])


def _api(url: str, session: str) -> int:
    return httpx.get(f"{url}{API}", cookies={COOKIE: session}).status_code


def test_a_login_on_one_app_is_honoured_on_the_other(
    two_apps: tuple[str, str], mongodb_uri: str, mongo_database: str
) -> None:
    first, second = two_apps
    session = _log_in(first)
    assert _api(second, session) == 200
    dashboard = httpx.get(f"{second}/dashboard", cookies={COOKIE: session})
    assert dashboard.status_code == 200 and "login" not in str(dashboard.url)
    with MongoClient(mongodb_uri, serverSelectionTimeoutMS=5000) as client:
        stored = list(client[mongo_database]["dashboard_sessions"].find())
    assert len(stored) == 1 and stored[0]["_id"] != session  # the id's hash, not the id


def test_a_logout_on_one_app_revokes_the_session_on_both(two_apps: tuple[str, str]) -> None:
    first, second = two_apps
    session = _log_in(first)
    assert _api(first, session) == 200 and _api(second, session) == 200
    logout = httpx.post(f"{second}/dashboard/logout", cookies={COOKIE: session})
    assert logout.status_code == 303
    assert _api(first, session) == 401 and _api(second, session) == 401


def test_wrong_tokens_on_both_apps_count_together(two_apps: tuple[str, str]) -> None:
    first, second = two_apps
    for url in (first, second, first, second, first):  # five wrong tokens, spread over both
        wrong = httpx.post(f"{url}/dashboard/login", data={"token": "guess"})
        assert wrong.status_code == 401
    held = httpx.post(f"{second}/dashboard/login", data={"token": TOKEN})
    assert held.status_code == 429 and int(held.headers["Retry-After"]) >= 1
    bearer = httpx.get(f"{first}{API}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert bearer.status_code == 429 and bearer.headers["Retry-After"]
