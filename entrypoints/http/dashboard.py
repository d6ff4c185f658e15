"""The researchers' live dashboard: server-rendered pages behind the research token.

A login form takes the token once and keeps it in an HttpOnly, SameSite=Strict cookie;
without it every page sends the browser to the form and shows nothing else. The "now"
panel polls a small JSON endpoint; pictures come from the research API, which accepts
the same cookie.
"""

from __future__ import annotations

from typing import Any, ClassVar

from litestar import Controller, MediaType, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template

from application.monitoring import RunMonitor
from application.ports import ExperimentRepository
from domain.experiment import check_username
from entrypoints.http.access import COOKIE, OFF_MESSAGE, cookie_holds_token, matches
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


def _page(name: str, status: int = 200, **context: Any) -> Template:
    # no-store: a page of participants' data should not linger in a shared browser's cache.
    return Template(
        template_name=f"dashboard/{name}.html",
        context=context,
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


def _login_page(research_token: str, status: int = 200, error: str | None = None) -> Template:
    off = not research_token
    return _page("login", status=403 if off else status, error=OFF_MESSAGE if off else error)


class DashboardController(Controller):
    path = "/dashboard"
    tags: ClassVar[list[str]] = ["dashboard"]
    include_in_schema = False

    @get(LOGIN.removeprefix(path), operation_id="dashboardLoginForm")
    async def login_form(self, research_token: NamedDependency[str]) -> Template:
        return _login_page(research_token)

    @post(LOGIN.removeprefix(path), operation_id="dashboardLogin", status_code=303)
    async def login(
        self, request: AnyRequest, research_token: NamedDependency[str]
    ) -> Response[Any] | Template:
        form = await request.form()
        if not research_token or not matches(form.get("token"), research_token):
            return _login_page(research_token, status=401, error="that is not the research token")
        cookie = Cookie(
            key=COOKIE,
            value=research_token,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return Redirect("/dashboard", status_code=303, cookies=[cookie])

    @post("/logout", operation_id="dashboardLogout", status_code=303)
    async def logout(self) -> Response[Any]:
        response: Response[Any] = Redirect(LOGIN, status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @get("/", operation_id="dashboard")
    async def index(
        self,
        request: AnyRequest,
        research_token: NamedDependency[str],
        repository: NamedDependency[ExperimentRepository],
        prompt_catalogs: NamedDependency[list[Any]],
    ) -> Template | Response[Any]:
        if not cookie_holds_token(request, research_token):
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

    @get("/participants/{username:str}", operation_id="dashboardParticipant")
    async def participant(
        self,
        request: AnyRequest,
        username: FromPath[str],
        research_token: NamedDependency[str],
        repository: NamedDependency[ExperimentRepository],
    ) -> Template | Response[Any]:
        if not cookie_holds_token(request, research_token):
            return Redirect(LOGIN, status_code=303)
        username = check_username(username)
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

    @get("/now.json", operation_id="dashboardNow", media_type=MediaType.JSON)
    async def now(
        self,
        request: AnyRequest,
        research_token: NamedDependency[str],
        run_monitor: NamedDependency[RunMonitor],
        settings: NamedDependency[Settings],
        monitored_adapters: NamedDependency[MonitoredAdapters],
    ) -> Response[Any]:
        if not cookie_holds_token(request, research_token):
            return Response({"error": "log in at /dashboard/login"}, status_code=401)
        panel = now_panel(run_monitor, settings, monitored_adapters)
        return Response(panel, headers={"Cache-Control": "no-store"})
