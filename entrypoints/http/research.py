"""The researchers' read-only API (`/api/v1`): sessions, generation records and images.

Participants' sketches and answers are research data, so the API is off unless
`INSPILOT_RESEARCH_TOKEN` is set, and every call must send it as a bearer token (or
come from the dashboard, whose cookie holds it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec
from litestar import Controller, MediaType, Response, get, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Stream

from application.ports import ExperimentRepository
from application.study import MoveParticipant
from application.use_cases.research import (
    GetGeneration,
    GetGenerationImage,
    GetSession,
    ListGenerations,
    ListGenerationsQuery,
)
from domain.experiment import check_username
from domain.images import sniff_image_type
from entrypoints.export.archive import stream_study, study_filter
from entrypoints.http.bodies import BODY, NO_BODY, JsonBody
from entrypoints.http.envelope import envelope
from entrypoints.http.presenters import present_record, present_session
from entrypoints.wire import decode_struct


class ResearchController(Controller):
    """Mounted behind `research_guard` (bearer token or the dashboard's cookie)."""

    path = "/api/v1"
    tags: Sequence[str] | None = ("research",)

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
        condition: FromQuery[str | None] = None,
    ) -> Response[bytes]:
        """Generation records, newest first, optionally of one participant or condition;
        images by URL."""
        query = ListGenerationsQuery(
            username=None if username is None else check_username(username),
            limit=limit,
            condition=condition,
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

    @get("/export", operation_id="exportStudy", media_type="application/zip")
    async def export(
        self,
        repository: NamedDependency[ExperimentRepository],
        username: FromQuery[list[str] | None] = None,
        since: FromQuery[datetime | None] = None,
        until: FromQuery[datetime | None] = None,
        condition: FromQuery[list[str] | None] = None,
    ) -> Stream:
        """The study as a zip (CSV tables, datapackage.json, sessions, records, pictures),
        streamed as it is built; `username` and `condition` may repeat."""
        study = study_filter(username, since, until, condition)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        return Stream(
            stream_study(repository, study),
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="inspilot-study-{stamp}.zip"'},
        )

    @put(
        "/participants/{username:str}/condition",
        operation_id="moveParticipant",
        status_code=200,
        **BODY,
    )
    async def move(
        self,
        username: FromPath[str],
        move_participant: NamedDependency[MoveParticipant],
        data: JSONBody[JsonBody[ConditionBody]] = NO_BODY,
    ) -> Response[bytes]:
        """Move a participant to another condition; the move is kept with its time."""
        body = await data.decode(_condition_body)
        move = await move_participant.execute(check_username(username), body.condition)
        return envelope(
            {
                "username": username,
                "condition": move.to_condition,
                "previous": move.from_condition,
                "movedAt": move.at.isoformat(),
            }
        )


class ConditionBody(msgspec.Struct):
    condition: str


def _condition_body(body: bytes) -> ConditionBody:
    return decode_struct(body, ConditionBody)
