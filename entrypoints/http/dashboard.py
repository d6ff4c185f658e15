"""The researchers' live dashboard: server-rendered pages behind the research token.

A login form takes the token once and opens a server-side session whose random id goes
in an HttpOnly, SameSite=Strict cookie (Secure over HTTPS, also behind a trusted proxy);
without it every page sends the browser to the form and shows nothing else. Every page
carries a Content-Security-Policy whose script and style need the page's own nonce. The "now"
panel polls a small JSON endpoint; pictures come from the research API, which accepts
the same cookie.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from litestar import Controller, MediaType, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from application.monitoring import RunMonitor
from application.ports import StudyFilter
from application.use_cases.research import ListGenerationsQuery, StudyReading
from domain.errors import InvalidInput, NotFound
from domain.experiment import check_username
from domain.generation import Outcome, Pipeline
from entrypoints.http.access import COOKIE, OFF_MESSAGE, ResearchAccess, matches
from entrypoints.http.dashboard_study import (
    PAGE_SIZE,
    GenerationFilter,
    participant_timeline,
    summarize_digests,
)
from entrypoints.http.dashboard_views import (
    condition_counts,
    generation_view,
    now_panel,
    participant_rows,
    prompt_set_views,
    sketches_by_stage,
)
from entrypoints.http.free_space import FreeSpace
from entrypoints.observability.sources import MonitoredAdapters
from entrypoints.settings import Settings

AnyRequest = Request[Any, Any, Any]
LOGIN = "/dashboard/login"
GENERATIONS_SHOWN = 50
RECENT_SHOWN = 20


def security_headers(nonce: str) -> dict[str, str]:
    """What a security reviewer expects on pages of participants' data."""
    return {
        # no-store: a page of participants' data should not linger in a shared browser's cache.
        "Cache-Control": "no-store",
        "Content-Security-Policy": (
            f"default-src 'self'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
            "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
            "base-uri 'none'; form-action 'self'; object-src 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }


def _page(
    name: str, status: int = 200, headers: dict[str, str] | None = None, **context: Any
) -> Template:
    nonce = secrets.token_urlsafe(16)
    return Template(
        template_name=f"dashboard/{name}.html",
        context={**context, "csp_nonce": nonce},
        status_code=status,
        headers={**security_headers(nonce), **(headers or {})},
    )


def _login_page(
    access: ResearchAccess,
    status: int = 200,
    error: str | None = None,
    headers: dict[str, str] | None = None,
) -> Template:
    off = not access.token
    return _page(
        "login",
        status=403 if off else status,
        headers=headers,
        error=OFF_MESSAGE if off else error,
    )


async def _participant_page(username: str, reading: StudyReading) -> Template:
    try:
        experiment = await reading.get_session.execute(username)
    except NotFound:
        return _page("missing", status=404, username=username)
    query = ListGenerationsQuery(username=username, limit=GENERATIONS_SHOWN)
    records = await reading.list_generations.execute(query)
    marks = await reading.list_saves.execute(username)
    return _page(
        "participant",
        username=username,
        stage=experiment.current_stage.value,
        task=experiment.design_task,
        stages=sketches_by_stage(experiment),
        timeline=participant_timeline(experiment.created_at, marks, records),
        generations=[generation_view(record) for record in records],
        shown=GENERATIONS_SHOWN,
    )


FAVICON = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    b'<rect width="16" height="16" rx="3" fill="#1d2430"/>'
    b'<path d="M5 3h6v2H9v6h2v2H5v-2h2V5H5z" fill="#fff"/></svg>'
)


@get("/favicon.ico", include_in_schema=False, sync_to_thread=False)
def favicon() -> Response[bytes]:
    """The tab icon (an SVG: every browser the researchers use shows it)."""
    return Response(
        FAVICON,
        media_type="image/svg+xml",
        headers={"Cache-Control": "public, max-age=86400"},
    )


async def _generations_page(query: dict[str, str], reading: StudyReading) -> Template:
    """The filtered generations, newest first, 50 a page, with a summary of all that match.

    One pass over the chosen records keeps only a few fields of each; the page's records
    are then loaded again whole, so memory holds one page, not the study.
    """
    try:
        chosen = GenerationFilter.of(query)
        page = int(query.get("page") or 1)
        if page < 1:
            raise InvalidInput("page", "must be 1 or more")
    except ValueError:
        return _generations_error(GenerationFilter(), "page: must be a whole number")
    except InvalidInput as exc:
        return _generations_error(GenerationFilter(), exc.message)
    study = StudyFilter(
        frozenset({chosen.participant}) if chosen.participant else None,
        chosen.since_at,
        chosen.until_at,
    )
    digests = [
        (record.id, record.pipeline.value, record.outcome, record.duration_s)
        async for record in reading.choose_generations.execute(study)
        if chosen.admits(record)
    ]
    digests.reverse()  # newest first
    pages = max(1, -(-len(digests) // PAGE_SIZE))
    shown = digests[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    records = [await reading.get_generation.execute(d[0]) for d in shown]
    return _page(
        "generations",
        f=chosen,
        page=page,
        pages=pages,
        total=len(digests),
        summary=summarize_digests(digests),
        generations=[generation_view(record) for record in records if record is not None],
        pipelines=[p.value for p in Pipeline],
        outcomes=[o.value for o in Outcome],
    )


def _generations_error(chosen: GenerationFilter, error: str) -> Template:
    return _page(
        "generations",
        status=400,
        f=chosen,
        error=error,
        page=1,
        pages=1,
        total=0,
        summary=[],
        generations=[],
        pipelines=[p.value for p in Pipeline],
        outcomes=[o.value for o in Outcome],
    )


def dashboard_refusal(request: AnyRequest, _: Exception) -> Response[Any]:
    """The research guard said no: a page sends the researcher to the login form, the
    panels' JSON gets a 401 it can show."""
    if request.url.path.endswith(".json"):
        return Response({"error": "log in at /dashboard/login"}, status_code=401)
    return Redirect(LOGIN, status_code=303)


class DashboardLogin(Controller):
    """Open: the login form, logging in and out. Everything else of the dashboard sits
    behind the research guard, like the research API."""

    path = "/dashboard"
    tags: Sequence[str] | None = ("dashboard",)
    include_in_schema = False

    @get(LOGIN.removeprefix(path), operation_id="dashboardLoginForm")
    async def login_form(self, research_access: NamedDependency[ResearchAccess]) -> Template:
        return _login_page(research_access)

    @post(LOGIN.removeprefix(path), operation_id="dashboardLogin", status_code=303)
    async def login(
        self, request: AnyRequest, research_access: NamedDependency[ResearchAccess]
    ) -> Response[Any] | Template:
        access = research_access
        wait = await access.retry_after_s(request)
        if wait:
            error = f"too many wrong tokens from this address; try again in {wait} s"
            return _login_page(access, 429, error, headers={"Retry-After": str(wait)})
        form = await request.form()
        if not access.token or not matches(form.get("token"), access.token):
            if access.token:
                await access.failed(request, LOGIN)
            return _login_page(access, status=401, error="that is not the research token")
        await access.succeeded(request)
        cookie = Cookie(
            key=COOKIE,
            value=await access.open_session(),
            path="/",
            max_age=access.session_max_age_s,
            httponly=True,
            samesite="strict",
            secure=access.over_https(request),
        )
        return Redirect("/dashboard", status_code=303, cookies=[cookie])

    @post("/logout", operation_id="dashboardLogout", status_code=303)
    async def logout(
        self, request: AnyRequest, research_access: NamedDependency[ResearchAccess]
    ) -> Response[Any]:
        await research_access.close_session(request.cookies.get(COOKIE))  # the cookie dies here too
        response: Response[Any] = Redirect(LOGIN, status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @get("/participants/{username:str}", operation_id="dashboardParticipant", status_code=301)
    async def participant(self, username: FromPath[str]) -> Response[Any]:
        """The older address of a participant's page (cannot hold a `/`): moved."""
        return Redirect(
            f"/dashboard/participant?{urlencode({'username': username})}", status_code=301
        )


class DashboardController(Controller):
    """The pages; mounted behind `research_guard` (a dashboard session or the bearer
    token), refusals turned into the login form by `dashboard_refusal`."""

    path = "/dashboard"
    tags: Sequence[str] | None = ("dashboard",)
    include_in_schema = False

    @get("/", operation_id="dashboard")
    async def index(
        self,
        study_reading: NamedDependency[StudyReading],
        prompt_catalogs: NamedDependency[list[Any]],
        free_space: NamedDependency[FreeSpace],
    ) -> Template | Response[Any]:
        participants = await study_reading.list_participants.execute()
        recent = await study_reading.list_generations.execute(
            ListGenerationsQuery(limit=RECENT_SHOWN)
        )
        return _page(
            "index",
            participants=participant_rows(participants),
            conditions=condition_counts(participants),
            recent=[generation_view(record) for record in recent],
            prompt_sets=prompt_set_views(prompt_catalogs),
            disk=free_space.figures(),
        )

    @get("/generations", operation_id="dashboardGenerations")
    async def generations(
        self,
        request: AnyRequest,
        study_reading: NamedDependency[StudyReading],
    ) -> Template | Response[Any]:
        """Every generation, filtered by the query (kept in the URL) and paged."""
        query = {key: request.query_params.get(key) or "" for key in request.query_params}
        return await _generations_page(query, study_reading)

    @get("/participants.json", operation_id="dashboardParticipantsJson", media_type=MediaType.JSON)
    async def participants_json(
        self,
        study_reading: NamedDependency[StudyReading],
    ) -> Response[Any]:
        """The participant table's rows, for the page to refresh itself."""
        rows = participant_rows(await study_reading.list_participants.execute())
        return Response(rows, headers={"Cache-Control": "no-store"})

    @get("/participant", operation_id="dashboardParticipantByQuery")
    async def participant_by_query(
        self,
        username: FromQuery[str],
        study_reading: NamedDependency[StudyReading],
    ) -> Template | Response[Any]:
        """Every username's page, whatever it holds (`/`, `?`, `#`): the links use this."""
        return await _participant_page(check_username(username), study_reading)

    @get("/now.json", operation_id="dashboardNow", media_type=MediaType.JSON)
    async def now(
        self,
        run_monitor: NamedDependency[RunMonitor],
        settings: NamedDependency[Settings],
        monitored_adapters: NamedDependency[MonitoredAdapters],
        free_space: NamedDependency[FreeSpace],
    ) -> Response[Any]:
        panel = now_panel(run_monitor, settings, monitored_adapters, free_space.figures())
        return Response(panel, headers={"Cache-Control": "no-store"})
