"""The researchers' read-only API (`/api/v1`): sessions, generation records and images.

Participants' sketches and answers are research data, so the API is off unless
`INSPILOT_RESEARCH_TOKEN` is set, and every call must send it as a bearer token (or
come from the dashboard, whose cookie holds it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from litestar import Controller, MediaType, Request, Response, get
from litestar.params import FromPath, FromQuery
from litestar.response import Stream

from application.use_cases.research import ListGenerationsQuery
from domain.experiment import check_username
from domain.images import sniff_image_type
from entrypoints.export.archive import stream_study, study_filter
from entrypoints.http.access import require_research_token
from entrypoints.http.envelope import envelope
from entrypoints.http.presenters import present_record, present_session


def _container(request: Request[Any, Any, Any]) -> Any:
    return request.app.state.container


class ResearchController(Controller):
    path = "/api/v1"
    guards: ClassVar[list[Any]] = [require_research_token]
    tags: ClassVar[list[str]] = ["research"]

    @get("/sessions/{username:str}", operation_id="getSession")
    async def session(
        self, request: Request[Any, Any, Any], username: FromPath[str]
    ) -> Response[bytes]:
        """A participant's saved session, in the shape /paint/start returns."""
        experiment = await _container(request).get_session().execute(check_username(username))
        return envelope(present_session(experiment, with_times=True))

    @get("/generations", operation_id="listGenerations")
    async def generations(
        self,
        request: Request[Any, Any, Any],
        username: FromQuery[str | None] = None,
        limit: FromQuery[int] = 100,
    ) -> Response[bytes]:
        """Generation records, newest first, optionally of one participant; images by URL."""
        query = ListGenerationsQuery(
            username=None if username is None else check_username(username), limit=limit
        )
        records = await _container(request).list_generations().execute(query)
        return envelope([present_record(record) for record in records])

    @get("/generations/{record_id:str}", operation_id="getGeneration")
    async def generation(
        self, request: Request[Any, Any, Any], record_id: FromPath[str]
    ) -> Response[bytes]:
        """One record with every step: rendered prompts, raw answers, timings, image URLs."""
        record = await _container(request).get_generation().execute(record_id)
        return envelope(present_record(record))

    @get(
        "/generations/{record_id:str}/images/{step_id:str}",
        operation_id="getGenerationImage",
        media_type="image/png",
    )
    async def image(
        self, request: Request[Any, Any, Any], record_id: FromPath[str], step_id: FromPath[str]
    ) -> Response[bytes]:
        """The picture an image step produced, as the model returned it."""
        data = await _container(request).get_generation_image().execute(record_id, step_id)
        return Response(data, media_type=sniff_image_type(data) or MediaType.TEXT)

    @get("/export", operation_id="exportStudy", media_type="application/zip")
    async def export(
        self,
        request: Request[Any, Any, Any],
        username: FromQuery[list[str] | None] = None,
        since: FromQuery[datetime | None] = None,
        until: FromQuery[datetime | None] = None,
    ) -> Stream:
        """The study as a zip (CSV tables, datapackage.json, sessions, records, pictures),
        streamed as it is built; `username` may repeat."""
        study = study_filter(username, since, until)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        return Stream(
            stream_study(_container(request).repository(), study),
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="inspilot-study-{stamp}.zip"'},
        )
