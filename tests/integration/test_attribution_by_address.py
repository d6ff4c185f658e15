"""A lab with one computer per participant: attribution by the client's address, read
from X-Forwarded-For only because the peer is a trusted proxy (served on loopback)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from entrypoints.container import Container, build_container
from entrypoints.http.app import create_app
from tests.fakes.uvicorn_thread import served
from tests.http.conftest import memory_settings

# Slow: a uvicorn-served app per test (real client addresses).
pytestmark = pytest.mark.slow

TYPE_0 = {"appid": 0, "type": 0, "prompts": {"task": "厨房", "num": 1}}


@pytest.fixture
def lab() -> Iterator[tuple[str, Container]]:
    settings = memory_settings(
        INSPILOT_ATTRIBUTE_BY_ADDRESS="true", INSPILOT_TRUSTED_PROXIES="127.0.0.1/32"
    )
    container = build_container(settings)
    # uvicorn's own proxy handling off: the service alone decides whom to believe.
    with served(create_app(container), proxy_headers=False) as url:
        yield url, container


def _post(url: str, path: str, body: dict[str, Any], seat: str) -> None:
    response = httpx.post(url + path, json=body, headers={"X-Forwarded-For": f"6.6.6.6, {seat}"})
    assert response.status_code == 200, response.text


def _save(url: str, username: str, seat: str) -> None:
    data = {"designSchemes": {"快速发散": []}, "designTask": "厨房", "currentStage": "快速发散"}
    _post(url, "/paint/save", {"username": username, "data": data}, seat)


def _records(container: Container) -> list[Any]:
    async def read() -> list[Any]:
        return list(await container.repository().list_generations(limit=50))

    return sorted(asyncio.run(read()), key=lambda record: record.started_at)


def test_each_seat_names_its_participant(lab: tuple[str, Container]) -> None:
    url, container = lab
    _post(url, "/paint/start", {"username": "p1"}, "10.0.0.1")
    _post(url, "/paint/start", {"username": "p2"}, "10.0.0.2")
    _post(url, "/generate", TYPE_0, "10.0.0.1")
    _post(url, "/generate", TYPE_0, "10.0.0.2")
    records = _records(container)
    assert [(r.participant, r.attributed_by) for r in records] == [
        ("p1", "address"),
        ("p2", "address"),
    ]


def test_two_participants_behind_one_address_are_never_guessed_between(
    lab: tuple[str, Container],
) -> None:
    url, container = lab
    _post(url, "/paint/start", {"username": "p1"}, "10.0.0.7")
    _post(url, "/paint/start", {"username": "p2"}, "10.0.0.7")
    _post(url, "/generate", TYPE_0, "10.0.0.7")
    (record,) = _records(container)
    assert (record.participant, record.attributed_by) == (None, None)


def test_an_early_type_0_is_attributed_when_the_save_arrives(lab: tuple[str, Container]) -> None:
    url, container = lab
    _post(url, "/paint/start", {"username": "p3"}, "10.0.0.9")  # started at another seat
    _post(url, "/generate", TYPE_0, "10.0.0.3")  # nobody has been seen at this seat yet
    (record,) = _records(container)
    assert record.participant is None
    _save(url, "p3", "10.0.0.3")
    (record,) = _records(container)
    assert (record.participant, record.attributed_by) == ("p3", "address")
    assert record.attributed_at is not None


def test_an_untrusted_peer_cannot_claim_a_seat(lab: tuple[str, Container]) -> None:
    url, container = lab
    _post(url, "/paint/start", {"username": "p1"}, "10.0.0.1")
    # Straight from loopback without the proxy header: the socket's address counts,
    # and nobody started there.
    response = httpx.post(url + "/generate", json=TYPE_0)
    assert response.status_code == 200
    (record,) = _records(container)
    assert record.participant is None


def test_the_cookie_is_secure_behind_a_trusted_tls_proxy(lab: tuple[str, Container]) -> None:
    url, _ = lab
    behind_tls = {"X-Forwarded-For": "10.0.0.1", "X-Forwarded-Proto": "https"}
    secure = httpx.post(url + "/paint/start", json={"username": "p1"}, headers=behind_tls)
    assert "Secure" in secure.headers["set-cookie"]
    plain = httpx.post(url + "/paint/start", json={"username": "p1"})
    assert "Secure" not in plain.headers["set-cookie"]


def test_an_untrusted_peer_cannot_claim_https(lab: tuple[str, Container]) -> None:
    container = build_container(memory_settings(INSPILOT_TRUSTED_PROXIES="10.9.9.9"))
    with served(create_app(container), proxy_headers=False) as url:
        claimed = {"X-Forwarded-For": "10.0.0.1", "X-Forwarded-Proto": "https"}
        response = httpx.post(url + "/paint/start", json={"username": "p1"}, headers=claimed)
        assert "Secure" not in response.headers["set-cookie"]
