"""The whole legacy contract again, under a condition's prefix (`/c/vivid/...`): each
condition's front-end build points at its own base URL and must work unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from entrypoints.container import Container, build_container
from entrypoints.http.app import create_app
from tests.http import test_legacy_contract as contract
from tests.http.conftest import memory_settings
from tests.http.test_conditions import study_file

PREFIX = "/c/vivid"


class PrefixedClient:
    """The test client with every path under the condition's prefix (the schema apart:
    it is served once, at the root)."""

    def __init__(self, client: TestClient[Any]) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if name not in {"get", "post", "options", "put", "delete", "request"}:
            return method

        def prefixed(path: str, *args: Any, **kwargs: Any) -> Any:
            if not path.startswith("/schema"):
                path = PREFIX + path
            return method(path, *args, **kwargs)

        return prefixed


@pytest.fixture
def container(tmp_path: Path) -> Container:
    settings = memory_settings(INSPILOT_STUDY_FILE=str(study_file(tmp_path, "prefix")))
    return build_container(settings)


@pytest.fixture
def client(container: Container) -> Iterator[Any]:
    with TestClient(create_app(container)) as test_client:
        yield PrefixedClient(test_client)


# The contract's own tests, collected here with the fixtures above.
test_ping_answers_plain_pong = contract.test_ping_answers_plain_pong
test_a_whole_front_end_session = contract.test_a_whole_front_end_session
test_every_generation_is_recorded = contract.test_every_generation_is_recorded
test_duplicates_are_done_as_asked = contract.test_duplicates_are_done_as_asked
test_schemes_come_back_byte_equal = contract.test_schemes_come_back_byte_equal
test_cors_allows_the_configured_front_end = contract.test_cors_allows_the_configured_front_end


def test_every_contract_test_runs_under_the_prefix() -> None:
    """A test added to the contract is added here too (the schema is served once)."""
    ours = {name for name in globals() if name.startswith("test_")}
    theirs = {name for name in vars(contract) if name.startswith("test_")}
    assert theirs - ours == {"test_openapi_schema_is_served"}
