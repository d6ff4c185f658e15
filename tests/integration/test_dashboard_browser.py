"""The dashboard in a real browser: Debian's Chromium driven through Playwright's Python API.

The app is served by uvicorn on loopback; a session and a generation are made through
the legacy endpoints, then the browser logs in and must see them, pictures included.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from entrypoints.container import build_container
from entrypoints.http.app import create_app
from tests.fakes.uvicorn_thread import served
from tests.http.conftest import SKETCH, memory_settings

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "browser-secret"
TIMEOUT_MS = 15_000

pytestmark = [
    # Playwright drives Chromium against a uvicorn-served app (seconds per test).
    pytest.mark.browser,
    pytest.mark.skipif(
        shutil.which("chromium") is None,
        reason="Chromium is not installed (`.ci/run` installs it: apt-get install -y chromium)",
    ),
]


@pytest.fixture
def service() -> Iterator[str]:
    container = build_container(memory_settings(INSPILOT_RESEARCH_TOKEN=TOKEN))
    with served(create_app(container)) as url:
        yield url


@pytest.fixture
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _legacy_session(url: str) -> None:
    scheme = {
        "name": "折叠伞",
        "canvasImage": SKETCH,
        "paths": [],
        "texts": [{"text": "单手开合", "position": {"x": 3, "y": 4}}],
    }
    save = {
        "username": "p07",
        "data": {
            "designSchemes": {"准备": None, "快速发散": [scheme], "深入发散": [], "收敛": []},
            "designTask": "为通勤者设计雨具",
            "currentStage": "快速发散",
        },
    }
    generate = {
        "appid": 0,
        "type": 0,
        "username": "p07",
        "prompts": {"task": "为通勤者设计雨具", "num": 2},
    }
    with httpx.Client(base_url=url, timeout=30) as client:
        for path, body in (("/paint/start", {"username": "p07"}), ("/paint/save", save)):
            assert client.post(path, json=body).json()["success"] is True
        assert client.post("/generate", json=generate, headers={"X-Request-ID": "req-p07"}).json()[
            "success"
        ]


def _loaded_pictures(page: Any, selector: str) -> list[int]:
    return page.eval_on_selector_all(
        selector, "images => images.map(image => image.complete ? image.naturalWidth : 0)"
    )


def test_a_legacy_generation_shows_on_the_dashboard(service: str, browser: Any) -> None:
    _legacy_session(service)
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()

    page.goto(f"{service}/dashboard")
    assert page.url.endswith("/dashboard/login")  # nothing shown without the token
    assert page.locator("#participants").count() == 0
    page.fill("#token", "wrong")
    page.click("button[type=submit]")
    assert "not the research token" in page.inner_text("#error")
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url(f"{service}/dashboard")

    (cookie,) = [c for c in context.cookies() if c["name"] == "inspilot_research"]
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # scripts cannot read the token

    row = page.locator('#participants tr[data-username="p07"]')
    assert row.locator("td.generations").inner_text() == "1"
    assert "快速发散" in row.inner_text()
    page.wait_for_selector("#now[data-updated]")  # the "now" panel filled itself
    assert page.inner_text("#now-flight") == "none"
    assert page.inner_text("#now-text-backend") == "demo"

    row.locator("a").click()
    page.wait_for_url(f"{service}/dashboard/participant?username=p07")
    generation = page.locator("section.generation")
    assert generation.count() == 1
    assert generation.locator(".pipeline").inner_text() == "rapid_divergence"
    assert "req-p07" in generation.inner_text()
    page.wait_for_function("[...document.querySelectorAll('img.stimulus')].every(i => i.complete)")
    # The stimuli come from the research API, which accepts the dashboard's cookie.
    assert [width > 0 for width in _loaded_pictures(page, "img.stimulus")] == [True, True]
    assert [width > 0 for width in _loaded_pictures(page, "figure.sketch img")] == [True]
    assert "单手开合" in page.inner_text("figure.sketch")
    export = page.locator("a", has_text="Export this participant")
    assert export.get_attribute("href") == "/api/v1/export?username=p07"

    stranger = browser.new_context().new_page()
    stranger.goto(f"{service}/dashboard/participants/p07")
    assert stranger.url.endswith("/dashboard/login") and "p07" not in stranger.content()
    context.close()


WIDTH = 1400


def _deep_with_sketch(url: str) -> None:
    prompts = {
        "designTask": "为独居老人设计一款厨房用品" * 3,
        "designTexts": ["可以折叠，方便收纳" * 20, "带灯"],
        "designImage": SKETCH,
        "schemeId": 0,
    }
    body = {"appid": 0, "type": 1, "username": "p07", "prompts": prompts}
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.post("/generate", json=body).json()["success"] is True


def _log_in(context: Any, service: str) -> Any:
    page = context.new_page()
    page.goto(f"{service}/dashboard/login")
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url(f"{service}/dashboard")
    return page


def test_the_dashboard_to_study_with(service: str, browser: Any) -> None:
    _legacy_session(service)
    _deep_with_sketch(service)
    context = browser.new_context(viewport={"width": WIDTH, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = _log_in(context, service)

    # The participant table refreshes itself: a new participant appears without a reload.
    httpx.post(f"{service}/paint/start", json={"username": "p08"})
    page.wait_for_selector('#participants tr[data-username="p08"]')

    for path in ("/dashboard", "/dashboard/participant?username=p07", "/dashboard/generations"):
        page.goto(f"{service}{path}")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= WIDTH, f"{path} is {width} px wide"

    # Inputs are readable: Chinese as written, the sketch a thumbnail, never a data URI.
    deep = page.locator("section.generation", has=page.locator(".pipeline", has_text="deep"))
    inputs = deep.locator("table.inputs").inner_text()
    assert "可以折叠，方便收纳" in inputs and "\\u" not in inputs and "base64" not in inputs
    assert deep.locator("img.sketch-thumb").count() == 1
    assert deep.locator("svg.waterfall rect").count() >= 6  # identify ... functions, 3 images

    # Filters go in the URL and narrow the list and its summary.
    page.select_option("select[name=pipeline]", "deep_divergence")
    page.click(".filters button[type=submit]")
    page.wait_for_url("**pipeline=deep_divergence**")
    assert page.locator("section.generation").count() == 1
    assert page.locator("#summary tbody tr").count() == 1
    assert page.inner_text('#summary tr[data-pipeline="deep_divergence"] td.rate') == "100 %"

    icon = page.goto(f"{service}/favicon.ico")
    assert icon is not None and icon.status == 200
    context.close()


def _generate(client: httpx.Client, username: str) -> None:
    body = {"appid": 0, "type": 0, "username": username, "prompts": {"task": "雨具", "num": 1}}
    assert client.post("/generate", json=body).json()["success"] is True


def test_generations_page_50_at_a_time_keeping_the_filter(service: str, browser: Any) -> None:
    with httpx.Client(base_url=service, timeout=30) as client:
        for _ in range(53):
            _generate(client, "p07")
        for _ in range(2):
            _generate(client, "p09")  # filtered out: page 2 must not show them
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = _log_in(context, service)

    page.goto(f"{service}/dashboard/generations")
    page.fill(".filters input[name=participant]", "p07")
    page.click(".filters button[type=submit]")
    page.wait_for_url("**participant=p07**")
    assert "Page 1 of 2" in page.inner_text("#pager")
    assert page.locator("#pager a[rel=prev]").count() == 0
    first = page.locator("section.generation").evaluate_all("s => s.map(e => e.id)")
    assert len(first) == 50
    assert page.inner_text('#summary tr[data-pipeline="rapid_divergence"] td.count') == "53"

    page.click("#pager a[rel=next]")
    page.wait_for_url("**page=2**")
    assert "participant=p07" in page.url  # the filter travels with the page
    assert "Page 2 of 2" in page.inner_text("#pager")
    assert page.locator("#pager a[rel=next]").count() == 0
    second = page.locator("section.generation").evaluate_all("s => s.map(e => e.id)")
    assert len(second) == 3 and not set(first) & set(second)
    owners = page.locator("section.generation h3 a").all_inner_texts()
    assert owners == ["p07"] * 3
    assert page.input_value(".filters input[name=participant]") == "p07"

    page.click("#pager a[rel=prev]")
    page.wait_for_url("**page=1**")
    assert page.locator("section.generation").evaluate_all("s => s.map(e => e.id)") == first
    context.close()


def _moments(page: Any) -> list[dict[str, Any]]:
    """The timeline's circles as the browser laid them out, left to right in the SVG."""
    return page.eval_on_selector_all(
        "svg.timeline circle.moment",
        """circles => circles.map(c => {
            const box = c.getBoundingClientRect();
            return {classes: [...c.classList], label: c.dataset.label,
                    x: box.x + box.width / 2, y: box.y + box.height / 2, width: box.width};
        })""",
    )


def test_a_participants_timeline_in_the_browser(service: str, browser: Any) -> None:
    with httpx.Client(base_url=service, timeout=30) as client:
        assert client.post("/paint/start", json={"username": "p11"}).json()["success"] is True
        for stage in ("准备", "快速发散"):
            save = {
                "username": "p11",
                "data": {"designSchemes": {stage: []}, "designTask": "雨具", "currentStage": stage},
            }
            assert client.post("/paint/save", json=save).json()["success"] is True
        _generate(client, "p11")
    context = browser.new_context(viewport={"width": WIDTH, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = _log_in(context, service)
    page.goto(f"{service}/dashboard/participant?username=p11")

    moments = _moments(page)
    kinds = [(m["classes"][1], m["classes"][2]) for m in moments]
    assert kinds == [
        ("session", "start"),
        ("session", "save"),
        ("session", "stage"),
        ("generations", "succeeded"),
    ]
    assert moments[1]["label"].startswith("save") and moments[2]["label"].startswith("快速发散")
    assert moments[3]["label"] == "rapid_divergence succeeded"
    # Drawn, on one time axis: later events further right; sessions above generations.
    assert all(m["width"] > 0 for m in moments)
    xs = [m["x"] for m in moments]
    assert xs == sorted(xs) and xs[0] < xs[-1]
    assert moments[0]["y"] == moments[1]["y"] == moments[2]["y"] < moments[3]["y"]
    stages = page.locator("#stage-times tbody tr td:first-child").all_inner_texts()
    assert stages == ["准备", "快速发散"]
    spent = page.locator("#stage-times tbody tr td:nth-child(2)").all_inner_texts()
    assert all(s.endswith(" min") for s in spent)
    context.close()
