"""Whatever JSON arrives, the legacy endpoints answer with the envelope and never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from entrypoints.container import build_container
from entrypoints.http.app import create_app
from tests.http.conftest import SKETCH, memory_settings

# Slow: hypothesis sends 310 generated requests, each a full generation on the demo models.
pytestmark = pytest.mark.slow

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["0", "1", "6", "", "$ne", "快速发散", SKETCH, "data:image/png;base64,x"]),
)
_JSON = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
_FIELDS = [
    "task",
    "num",
    "designTask",
    "designTexts",
    "designImage",
    "schemeId",
    "selectNum",
    "schemes",
    "selectedSchemes",
]
_PROMPTS = st.dictionaries(st.sampled_from(_FIELDS), _JSON, max_size=6)
_GENERATE = st.fixed_dictionaries(
    {
        "appid": st.one_of(st.just(0), _SCALARS),
        "type": st.one_of(st.integers(0, 3), _SCALARS),
        "prompts": st.one_of(_PROMPTS, _JSON),
    }
)
_SAVE = st.fixed_dictionaries(
    {
        "username": st.one_of(st.just("fuzz"), _JSON),
        "data": st.one_of(
            _JSON,
            st.fixed_dictionaries(
                {
                    "designSchemes": st.one_of(
                        _JSON,
                        st.dictionaries(
                            st.sampled_from(["快速发散", "深入发散", "收敛", "准备"]),
                            _JSON,
                            max_size=3,
                        ),
                    ),
                    "designTask": _JSON,
                    "currentStage": _JSON,
                }
            ),
        ),
    }
)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient[Any]]:
    """One app for all examples: hypothesis runs many, and each would start it again."""
    with TestClient(create_app(build_container(memory_settings()))) as test_client:
        test_client.post("/paint/start", json={"username": "fuzz"})
        yield test_client


def _assert_envelope(response: Any) -> None:
    assert response.status_code < 500, response.text
    body = response.json()
    assert set(body) == {"success", "data", "code", "message"}
    if not body["success"]:
        assert body["code"] == 1 and body["data"] is None and ":" in body["message"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_GENERATE)
def test_generate_never_fails_unexplained(client: TestClient[Any], body: dict[str, Any]) -> None:
    _assert_envelope(client.post("/generate", json=body))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_SAVE)
def test_save_never_fails_unexplained(client: TestClient[Any], body: dict[str, Any]) -> None:
    _assert_envelope(client.post("/paint/save", json=body))


@settings(max_examples=60, deadline=None)
@given(_JSON)
def test_start_never_fails_unexplained(client: TestClient[Any], body: Any) -> None:
    _assert_envelope(client.post("/paint/start", json=body))
