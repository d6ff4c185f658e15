"""The researchers' read-only API (`/api/v1`): sessions, generation records and images.

Participants' sketches and answers are research data, so the API is off unless
`INSPILOT_RESEARCH_TOKEN` is set, and every call must send it as a bearer token.
"""

from __future__ import annotations

import hmac
from typing import Any, ClassVar

from litestar import Controller, MediaType, Response, get
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath, FromQuery
from litestar.types import Guard

from application.use_cases.research import (
    GetGeneration,
    GetGenerationImage,
    GetSession,
    ListGenerations,
    ListGenerationsQuery,
)
from domain.experiment import check_username
from domain.images import sniff_image_type
from entrypoints.http.envelope import envelope
from entrypoints.http.presenters import present_record, present_session


def research_guard(token: str) -> Guard:
    """A guard admitting only calls that send `token` as a bearer token (none if it is empty)."""

    def require_research_token(
        connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
    ) -> None:
        if not token:
            raise PermissionDeniedException("the research API is off: set INSPILOT_RESEARCH_TOKEN")
        sent = connection.headers.get("authorization", "")
        scheme, _, given = sent.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
            raise NotAuthorizedException(
                "a valid 'Authorization: Bearer <token>' header is required"
            )

    return require_research_token


class ResearchController(Controller):
    """Mounted behind `research_guard` (see the app factory)."""

    path = "/api/v1"
    tags: ClassVar[list[str]] = ["research"]

    @get("/sessions/{username:str}", operation_id="getSession")
    async def session(
        self, username: FromPath[str], get_session: NamedDependency[GetSession]
    ) -> Response[bytes]:
        """A participant's saved session, in the shape /paint/start returns."""
        experiment = await get_session.execute(check_username(username))
        return envelope(present_session(experiment, with_times=True))

    @get("/generations", operation_id="listGenerations")
    async def generations(
        self,
        list_generations: NamedDependency[ListGenerations],
        username: FromQuery[str | None] = None,
        limit: FromQuery[int] = 100,
    ) -> Response[bytes]:
        """Generation records, newest first, optionally of one participant; images by URL."""
        query = ListGenerationsQuery(
            username=None if username is None else check_username(username), limit=limit
        )
        records = await list_generations.execute(query)
        return envelope([present_record(record) for record in records])

    @get("/generations/{record_id:str}", operation_id="getGeneration")
    async def generation(
        self, record_id: FromPath[str], get_generation: NamedDependency[GetGeneration]
    ) -> Response[bytes]:
        """One record with every step: rendered prompts, raw answers, timings, image URLs."""
        record = await get_generation.execute(record_id)
        return envelope(present_record(record))

    @get(
        "/generations/{record_id:str}/images/{step_id:str}",
        operation_id="getGenerationImage",
        media_type="image/png",
    )
    async def image(
        self,
        record_id: FromPath[str],
        step_id: FromPath[str],
        get_generation_image: NamedDependency[GetGenerationImage],
    ) -> Response[bytes]:
        """The picture an image step produced, as the model returned it."""
        data = await get_generation_image.execute(record_id, step_id)
        return Response(data, media_type=sniff_image_type(data) or MediaType.TEXT)
