"""The embeddable card in a real headless Chromium (Debian's, driven by Playwright), embedded on a
creator's page served from another origin: what a person sees, keyboard focus, alt text,
contrast, and what happens when the API is down. Screenshots go to artifacts/."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import uvicorn
from harness import ARTIFACTS, BROWSER_UA, Served, database_url_for, free_socket, serving
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    found = os.environ.get("SMALLWINS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(found).exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing in CI: run the tests through ./scripts/test, which installs it")
        pytest.skip("no Chromium: run through ./scripts/test, which installs Debian's chromium")
    return found


class CreatorSite:
    """The creator's own website on another origin: pages the test writes, embedding the card."""

    def __init__(self, sock: socket.socket) -> None:
        self.pages: dict[str, str] = {}
        self.base = f"http://127.0.0.1:{sock.getsockname()[1]}"

        async def page(request: Request) -> HTMLResponse:
            return HTMLResponse(self.pages[request.path_params["name"]])

        app = Starlette(routes=[Route("/{name}", page)])
        self.server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
        self.thread = threading.Thread(target=anyio.run, args=(self.server.serve, [sock]), daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def host_page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>'
        f'<body style="font-family:sans-serif;margin:1.5rem;background:#f3f4f6"><h1>{title}</h1>{body}</body></html>'
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, CreatorSite, Any]]:
    executable = chromium_path()
    folder = tmp_path_factory.mktemp("web-browser")
    site_socket = free_socket()
    site = CreatorSite(site_socket)
    with (
        serving(folder, database_url_for("sqlite", folder), origins=[site.base]) as served,
        playwright_api.sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield served, site, browser
        finally:
            browser.close()
    site.stop()
    site_socket.close()


@pytest.fixture
def page(world: tuple[Served, CreatorSite, Any]) -> Iterator[Any]:
    _, _, browser = world
    context = browser.new_context(user_agent=BROWSER_UA, viewport={"width": 640, "height": 760})
    opened = context.new_page()
    opened.errors = []  # type: ignore[attr-defined]
    opened.on("pageerror", lambda exc: opened.errors.append(str(exc)))  # type: ignore[attr-defined]
    yield opened
    context.close()


def contrast(foreground: str, background: str) -> float:
    """WCAG contrast ratio of two CSS rgb()/rgba() colours."""

    def luminance(colour: str) -> float:
        parts = [float(x) for x in colour[colour.index("(") + 1 : colour.index(")")].split(",")[:3]]
        linear = [(c / 255 / 12.92) if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in parts]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def shadow_active(page: Any) -> str | None:
    """The class of the element focused inside the card's shadow root."""
    return page.evaluate(
        "() => { const c = document.querySelector('smallwins-card');"
        " const a = c && c.shadowRoot && c.shadowRoot.activeElement; return a ? (a.className || a.tagName) : null; }"
    )


def test_the_card_renders_on_a_creator_site(world: tuple[Served, CreatorSite, Any], page: Any) -> None:
    served, site, _ = world
    member = served.member("lou", posts=3)
    site.pages["home"] = host_page(
        "Club home",
        f'<p>Before the card.</p><script src="{served.base}/widget.js" data-member="{member}" async></script>',
    )
    page.goto(f"{site.base}/home")
    card = page.locator('smallwins-card[data-state="ready"]')
    card.wait_for(timeout=10_000)

    assert page.locator("smallwins-card h2").inner_text() == "Lou"
    assert page.locator("smallwins-card .badge .name").all_inner_texts() == ["First Words", "Daily Habit"]
    assert "3 of 5 contributions" in page.locator("smallwins-card .step .text").all_inner_texts()
    assert "3 days in a row" in page.locator("smallwins-card .streak").inner_text()
    images = page.locator("smallwins-card .badge img")
    assert [images.nth(i).get_attribute("alt") for i in range(images.count())] == [
        "First Words badge (bronze)",
        "Daily Habit badge",
    ]
    page.wait_for_function(
        "() => [...document.querySelector('smallwins-card').shadowRoot.querySelectorAll('img')]"
        ".every(i => i.complete && i.naturalWidth > 0)",
        timeout=10_000,
    )
    bar = page.locator("smallwins-card [role=progressbar]").first
    assert bar.get_attribute("aria-valuetext") and bar.get_attribute("aria-valuemax")

    page.keyboard.press("Tab")  # the first focusable thing on the page is the first badge
    assert shadow_active(page) == "badge"
    tooltip = page.locator("smallwins-card .badge .desc").first
    assert tooltip.is_visible() and "first message" in tooltip.inner_text()
    page.keyboard.press("Tab")
    assert shadow_active(page) == "badge"
    assert page.locator("smallwins-card .badge .desc").nth(1).is_visible()

    for selector in ("h2", ".meta", ".step .text", ".badge .name"):
        colours = page.locator(f"smallwins-card {selector}").first.evaluate(
            "e => [getComputedStyle(e).color, getComputedStyle(e.closest('.card')).backgroundColor]"
        )
        assert contrast(*colours) >= 4.5, (selector, colours)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "widget-card.png"), full_page=True)
    assert page.errors == []


def test_every_script_tag_on_a_page_gets_its_own_card(world: tuple[Served, CreatorSite, Any], page: Any) -> None:
    """A page showing two members (two `data-member` tags, and a `defer` tag with an element): the
    script defines the element once, and each tag still gets its card, whichever runs first."""
    served, site, _ = world
    ada, bo, cy = served.member("ada", posts=1), served.member("bo", posts=2), served.member("cy", posts=4)
    site.pages["team"] = host_page(
        "Our team",
        f'<script src="{served.base}/widget.js" defer></script><smallwins-card member="{ada}"></smallwins-card>'
        f'<script src="{served.base}/widget.js" data-member="{bo}" async></script>'
        f'<script src="{served.base}/widget.js" data-member="{cy}" async></script>',
    )
    page.goto(f"{site.base}/team")
    page.wait_for_function(
        "() => document.querySelectorAll('smallwins-card[data-state=\"ready\"]').length === 3", timeout=10_000
    )
    assert sorted(page.locator("smallwins-card h2").all_inner_texts()) == ["Ada", "Bo", "Cy"]
    assert page.errors == []


def test_the_card_degrades_when_the_api_is_down(world: tuple[Served, CreatorSite, Any], page: Any) -> None:
    served, site, _ = world
    member = served.member("mia", posts=2)
    dead = free_socket()  # bound, never listening: connections are refused
    site.pages["down"] = host_page(
        "Club home",
        f'<smallwins-card member="{member}" api="http://127.0.0.1:{dead.getsockname()[1]}">'
        f'<a href="{site.base}/profile">Your profile</a></smallwins-card>'
        f'<script src="{served.base}/widget.js" defer></script>',
    )
    try:
        page.goto(f"{site.base}/down")
        page.locator('smallwins-card[data-state="down"]').wait_for(timeout=10_000)
    finally:
        dead.close()
    notice = page.locator("smallwins-card .notice")
    assert notice.get_attribute("role") == "status"
    assert "not available right now" in notice.inner_text()
    assert page.get_by_role("link", name="Your profile").is_visible()  # the page's own fallback stays
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert shadow_active(page) == "BUTTON"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "widget-down.png"), full_page=True)

    # Seen once, then the API fails: the last card is shown, marked offline, with a retry.
    site.pages["cached"] = host_page(
        "Club home", f'<script src="{served.base}/widget.js" data-member="{member}" async></script>'
    )
    page.goto(f"{site.base}/cached")
    page.locator('smallwins-card[data-state="ready"]').wait_for(timeout=10_000)
    page.route("**/widget.json", lambda route: route.abort("connectionrefused"))
    page.reload()
    page.locator('smallwins-card[data-state="stale"]').wait_for(timeout=10_000)
    assert page.locator("smallwins-card h2").inner_text() == "Mia"
    assert "Offline" in page.locator("smallwins-card .notice").inner_text()
    page.unroute("**/widget.json")
    page.locator("smallwins-card button").click()
    page.locator('smallwins-card[data-state="ready"]').wait_for(timeout=10_000)
    assert page.errors == []


def test_clicking_a_personal_link_earns_a_badge_that_shows_on_the_card(
    world: tuple[Served, CreatorSite, Any], page: Any
) -> None:
    served, _, _ = world
    member = served.member("noor", posts=1)
    token = served.token(member)
    code = served.link(url=f"{served.base}/me", campaign="newsletter-march")

    page.goto(f"{served.base}/m/{token}")
    page.locator('smallwins-card[data-state="ready"]').wait_for(timeout=10_000)
    assert page.locator("smallwins-card .badge .name").all_inner_texts() == ["First Words"]

    page.goto(f"{served.base}/r/{code}?m={token}&utm_source=newsletter")  # -> /me -> /m/{token}
    page.locator('smallwins-card[data-state="ready"]').wait_for(timeout=10_000)
    assert "/m/" in page.url
    assert page.locator("smallwins-card .badge .name").all_inner_texts() == ["First Words", "Toolkit in Hand"]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "member-page.png"), full_page=True)
    [click] = served.clicks(code)
    assert click.outcome == "credited" and click.utm_source == "newsletter"
    assert page.errors == []
