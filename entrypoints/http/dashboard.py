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
from typing import Any, ClassVar
from urllib.parse import urlencode

from litestar import Controller, MediaType, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from application.monitoring import RunMonitor
from application.ports import ExperimentRepository
from domain.experiment import check_username
from entrypoints.http.access import COOKIE, OFF_MESSAGE, ResearchAccess, matches
from entrypoints.http.dashboard_views import (
    condition_counts,
    generation_view,
    now_panel,
    participant_rows,
    prompt_set_views,
    sketches_by_stage,
)
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


async def _participant_page(username: str, repository: ExperimentRepository) -> Template:
    experiment = await repository.get(username)
    if experiment is None:
        return _page("missing", status=404, username=username)
    records = await repository.list_generations(username, GENERATIONS_SHOWN, with_images=False)
    return _page(
        "participant",
        username=username,
        stage=experiment.current_stage.value,
        task=experiment.design_task,
        stages=sketches_by_stage(experiment),
        generations=[generation_view(record) for record in records],
        shown=GENERATIONS_SHOWN,
    )


class DashboardController(Controller):
    path = "/dashboard"
    tags: ClassVar[list[str]] = ["dashboard"]
    include_in_schema = False

    @get(LOGIN.removeprefix(path), operation_id="dashboardLoginForm")
    async def login_form(self, research_access: NamedDependency[ResearchAccess]) -> Template:
        return _login_page(research_access)

    @post(LOGIN.removeprefix(path), operation_id="dashboardLogin", status_code=303)
    async def login(
        self, request: AnyRequest, research_access: NamedDependency[ResearchAccess]
    ) -> Response[Any] | Template:
        access = research_access
        wait = access.retry_after_s(request)
        if wait:
            error = f"too many wrong tokens from this address; try again in {wait} s"
            return _login_page(access, 429, error, headers={"Retry-After": str(wait)})
        form = await request.form()
        if not access.token or not matches(form.get("token"), access.token):
            if access.token:
                access.failed(request, LOGIN)
            return _login_page(access, status=401, error="that is not the research token")
        access.succeeded(request)
        cookie = Cookie(
            key=COOKIE,
            value=access.open_session(),
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
        research_access.close_session(request.cookies.get(COOKIE))  # the cookie dies here too
        response: Response[Any] = Redirect(LOGIN, status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @get("/", operation_id="dashboard")
    async def index(
        self,
        request: AnyRequest,
        research_access: NamedDependency[ResearchAccess],
        repository: NamedDependency[ExperimentRepository],
        prompt_catalogs: NamedDependency[list[Any]],
    ) -> Template | Response[Any]:
        if not research_access.admits(request):
            return Redirect(LOGIN, status_code=303)
        participants = await repository.list_participants()
        recent = await repository.list_generations(None, RECENT_SHOWN, with_images=False)
        return _page(
            "index",
            participants=participant_rows(participants),
            conditions=condition_counts(participants),
            recent=[generation_view(record) for record in recent],
            prompt_sets=prompt_set_views(prompt_catalogs),
        )

    @get("/participants/{username:str}", operation_id="dashboardParticipant", status_code=301)
    async def participant(self, username: FromPath[str]) -> Response[Any]:
        """The older address of a participant's page (cannot hold a `/`): moved."""
        return Redirect(
            f"/dashboard/participant?{urlencode({'username': username})}", status_code=301
        )

    @get("/participant", operation_id="dashboardParticipantByQuery")
    async def participant_by_query(
        self,
        request: AnyRequest,
        username: FromQuery[str],
        research_access: NamedDependency[ResearchAccess],
        repository: NamedDependency[ExperimentRepository],
    ) -> Template | Response[Any]:
        """Every username's page, whatever it holds (`/`, `?`, `#`): the links use this."""
        if not research_access.admits(request):
            return Redirect(LOGIN, status_code=303)
        return await _participant_page(check_username(username), repository)

    @get("/now.json", operation_id="dashboardNow", media_type=MediaType.JSON)
    async def now(
        self,
        request: AnyRequest,
        research_access: NamedDependency[ResearchAccess],
        run_monitor: NamedDependency[RunMonitor],
        settings: NamedDependency[Settings],
        monitored_adapters: NamedDependency[MonitoredAdapters],
    ) -> Response[Any]:
        if not research_access.admits(request):
            return Response({"error": "log in at /dashboard/login"}, status_code=401)
        panel = now_panel(run_monitor, settings, monitored_adapters)
        return Response(panel, headers={"Cache-Control": "no-store"})
