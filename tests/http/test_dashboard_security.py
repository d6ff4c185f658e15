"""The dashboard and research API as a security reviewer expects: session cookies, not
the token; throttled guessing; Secure behind TLS; CSP and friends; links to every user."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from litestar.testing import TestClient

from entrypoints.container import build_container
from entrypoints.http.app import create_app
from tests.http.conftest import memory_settings

TOKEN = "dash-secret"
FREE_FAILURES = 5  # wrong tokens before the backoff starts


@pytest.fixture
def client() -> Iterator[TestClient[Any]]:
    container = build_container(memory_settings(INSPILOT_RESEARCH_TOKEN=TOKEN))
    with TestClient(create_app(container)) as test_client:
        yield test_client


def _log_in(client: TestClient[Any]) -> str:
    response = client.post("/dashboard/login", data={"token": TOKEN}, follow_redirects=False)
    assert response.status_code == 303
    return str(client.cookies["inspilot_research"])


def test_the_cookie_is_a_session_not_the_token_and_dies_at_logout(
    client: TestClient[Any],
) -> None:
    session = _log_in(client)
    assert TOKEN not in session and len(session) >= 32
    assert client.get("/api/v1/generations").status_code == 200
    client.post("/dashboard/logout", follow_redirects=False)
    client.cookies.set("inspilot_research", session)  # a copy kept from before the logout
    assert client.get("/api/v1/generations").status_code == 401
    assert client.get("/dashboard", follow_redirects=False).status_code == 303
    client.cookies.set("inspilot_research", TOKEN)  # the token itself is no cookie either
    assert client.get("/api/v1/generations").status_code == 401


def test_wrong_tokens_are_throttled_per_client_with_retry_after(
    client: TestClient[Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="inspilot.access"):
        for _ in range(FREE_FAILURES):
            wrong = client.post("/dashboard/login", data={"token": "guess"})
            assert wrong.status_code == 401
        throttled = client.post("/dashboard/login", data={"token": TOKEN})
        assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) >= 1
        api = client.get("/api/v1/generations", headers={"Authorization": f"Bearer {TOKEN}"})
        assert api.status_code == 429 and api.headers["Retry-After"]
    assert any("wrong research token" in record.getMessage() for record in caplog.records)


def test_bearer_guesses_are_throttled_too(client: TestClient[Any]) -> None:
    guess = {"Authorization": "Bearer guess"}
    statuses = [client.get("/api/v1/generations", headers=guess).status_code for _ in range(7)]
    assert statuses[:FREE_FAILURES] == [401] * FREE_FAILURES and statuses[-1] == 429


def test_dashboard_pages_carry_the_security_headers_and_a_nonce(client: TestClient[Any]) -> None:
    _log_in(client)
    for path in ("/dashboard", "/dashboard/login"):
        page = client.get(path)
        policy = page.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        assert page.headers["Referrer-Policy"] == "no-referrer"
        nonce = re.search(r"'nonce-([^']+)'", policy)
        assert nonce is not None
        tags = re.findall(r"<(?:script|style)\b[^>]*>", page.text)
        assert tags and all(f'nonce="{nonce[1]}"' in tag for tag in tags), tags


def test_every_username_has_a_reachable_page(client: TestClient[Any]) -> None:
    odd = "a/b?c#d&e"
    assert client.post("/paint/start", json={"username": odd}).status_code == 200
    _log_in(client)
    index = client.get("/dashboard").text
    (link,) = [href for href in re.findall(r'href="([^"]+)"', index) if "participant" in href]
    page = client.get(link.replace("&amp;", "&"))
    assert page.status_code == 200 and "a/b?c#d&amp;e" in page.text


def test_the_cookie_is_secure_over_https(client: TestClient[Any]) -> None:
    with TestClient(client.app, base_url="https://testserver.local") as secure_client:
        secure_client.post("/dashboard/login", data={"token": TOKEN}, follow_redirects=False)
        response = secure_client.post(
            "/dashboard/login", data={"token": TOKEN}, follow_redirects=False
        )
    assert "Secure" in response.headers["set-cookie"]


def _connection(client: str, **headers: str) -> Any:
    raw = [(name.encode(), value.encode()) for name, value in headers.items()]
    return SimpleNamespace(scope={"client": (client, 1), "scheme": "http", "headers": raw})


def test_a_trusted_proxy_tells_the_scheme_and_the_client_others_do_not() -> None:
    from entrypoints.http.access import ResearchAccess
    from entrypoints.http.client import ClientView

    access = ResearchAccess(TOKEN, clients=ClientView(("10.0.0.0/8",)))
    forwarded = {"x-forwarded-proto": "https", "x-forwarded-for": "198.51.100.7"}
    via_proxy = _connection("10.1.2.3", **forwarded)
    assert access.over_https(via_proxy) and access.client(via_proxy) == "198.51.100.7"
    direct = _connection("203.0.113.9", **forwarded)
    assert not access.over_https(direct) and access.client(direct) == "203.0.113.9"
