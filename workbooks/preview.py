"""Previews taken from the embed: a screenshot of a workbook's public embed, for workbooks without an
uploaded thumbnail, fed through the thumbnail pipeline (workbooks.thumbnails: master, then AVIF/WebP/JPEG
derivatives by the render task).

Only ``workbooks.tasks.capture_embed_preview`` calls ``capture``: a Celery task routed to the ``media`` queue,
which refuses to run eagerly, so the browser never starts in a web process. The browser is Debian's
chromium (``CHROMIUM_PATH``) driven by Playwright (never ``playwright install``'s download), headless, in a
fresh profile per capture, closed whatever happens.

Waiting: once the browser is up, the page must fire ``load`` within ``EMBED_PREVIEW_TIMEOUT_SECONDS``; then
the network gets what is left of that budget (at most SETTLE_MAX_SECONDS) to go idle, which is when a
dashboard has drawn; then the screenshot. A page that never loads is abandoned at the time limit (PreviewFailed), and the workbook
keeps the generated preview it had.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    from playwright.sync_api import ViewportSize

VIEWPORT: ViewportSize = {"width": 1280, "height": 720}
SETTLE_MAX_SECONDS = 8.0
LAUNCH_TIMEOUT_MS = 30_000  # starting chromium has its own limit; the task's hard time limit covers both
LAUNCH_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--mute-audio",
]


class PreviewFailed(Exception):
    """The page could not be captured; the message says why (kept on the workbook's check row)."""


def capture(url: str, *, timeout: float | None = None) -> bytes:
    """A PNG screenshot of ``url`` at 1280x720 once it has settled; raises PreviewFailed."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    budget = timeout if timeout is not None else settings.EMBED_PREVIEW_TIMEOUT_SECONDS
    deadline = time.monotonic() + budget

    def left_ms() -> float:
        return max(1.0, (deadline - time.monotonic()) * 1000)

    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=settings.CHROMIUM_PATH, args=LAUNCH_ARGS, timeout=LAUNCH_TIMEOUT_MS
            )
            deadline = time.monotonic() + budget  # the page's time starts once the browser is up
            try:
                page = browser.new_page(viewport=VIEWPORT, user_agent=settings.EMBED_CHECK_USER_AGENT)
                try:
                    response = page.goto(url, wait_until="load", timeout=left_ms())
                except PlaywrightTimeout:
                    raise PreviewFailed(f"the page did not load within {budget:g} s") from None
                if response is not None and not response.ok:
                    raise PreviewFailed(f"the embed answered HTTP {response.status}")
                # Still busy after that (a live dashboard polls): take what is drawn.
                with contextlib.suppress(PlaywrightTimeout):
                    page.wait_for_load_state("networkidle", timeout=min(left_ms(), SETTLE_MAX_SECONDS * 1000))
                return page.screenshot(type="png", timeout=max(5000.0, left_ms()))
            finally:
                browser.close()
    except PreviewFailed:
        raise
    except PlaywrightError as exc:
        raise PreviewFailed(f"browser: {str(exc).splitlines()[0][:160]}") from None
