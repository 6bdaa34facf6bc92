"""Fixtures of the console tests: one workspace + server per session, one browser per session,
a fresh browser context (no cookies) per test that fails the test on a console error or on a
request to any host but 127.0.0.1."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from _console import CHROMIUM, CHROMIUM_ARGS, Site, build_workspace, serve

if not os.access(CHROMIUM, os.X_OK):  # pragma: no cover - scripts/chromium.sh installs it
    pytest.skip(
        f"{CHROMIUM} is missing (make test installs Debian's chromium)", allow_module_level=True
    )

from playwright.sync_api import Browser, Page, sync_playwright


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    built = build_workspace(tmp_path_factory.mktemp("console") / "ws")
    try:
        with serve(built) as running:
            yield running
    finally:
        if built.ws.deploy.active("credit") is not None:
            built.ws.deploy.stop("credit")
        built.ws.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Playwright gives the browser a fresh temporary profile (--user-data-dir) of its own.
    # One per module, not per session: Playwright's sync API marks an asyncio loop as running
    # in the main thread while it is open, and under pytest-xdist the next file on the same
    # process may be one that calls asyncio.run() (the scoring engine's tests).
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Watched:
    """A page plus what it did: console errors and every URL it requested."""

    def __init__(self, page: Page, site: Site, shots: Path) -> None:
        self.page = page
        self.site = site
        self.shots = shots
        self.errors: list[str] = []
        self.expected: list[str] = []  # console errors a test provokes on purpose
        self.requests: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.on("request", lambda req: self.requests.append(req.url))

    def _console(self, msg: Any) -> None:
        if msg.type == "error":
            self.errors.append(f"console: {msg.text}")

    def goto(self, path: str, *, wait_until: Literal["load", "commit"] = "load") -> Page:
        """Open ``path``; ``wait_until="commit"`` for a page that carries Plotly, whose "load"
        waits for its 4.6 MB bundle to parse (over 10 s on a busy machine): the checks that
        follow wait for what they look at."""
        self.page.goto(self.site.url + path, wait_until=wait_until)
        return self.page

    def wait_for_chart(self) -> None:
        """Until Plotly has drawn a chart: its 4.6 MB bundle takes seconds to parse on a busy
        two-core machine, more than the 10 s default allows when the suite runs in parallel."""
        self.page.wait_for_function(
            "document.querySelector('.chart .main-svg') !== null", timeout=30_000
        )

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)

    def sign_in(self, role: str = "reader") -> None:
        self.goto("/signin")
        self.page.get_by_label("API token").fill(self.site.tokens[role])
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url(self.site.url + "/")

    def outside(self) -> list[str]:
        own = re.compile(r"^(http://127\.0\.0\.1:\d+/|data:|about:blank)")
        return [u for u in self.requests if not own.match(u)]


@pytest.fixture
def web(browser: Browser, site: Site, tmp_path: Path) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    watched = Watched(context.new_page(), site, tmp_path)
    try:
        yield watched
    finally:
        context.close()
    errors = [e for e in watched.errors if not any(x in e for x in watched.expected)]
    assert errors == [], errors
    assert watched.outside() == [], watched.outside()
