"""Real headless Chromium (Debian's, driven by Playwright) against a live server: rum.js reports from a real
browser over two pages, the metrics arrive, and the CSP holds (no violation, no inline script)."""

from __future__ import annotations

import time
import urllib.request

import pytest
from django.test import Client

from tests.factories import UserFactory, WorkbookFactory
from tests.monitoring.helpers import scrape

pytestmark = [
    pytest.mark.chromium,
    pytest.mark.slow,
    # The session-wide live server starts before the per-test STATIC_ROOT exists; WhiteNoise says so.
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),
]

LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def metrics_text(base_url: str) -> str:
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=5) as response:
        return response.read().decode()


def rum_counts(base_url: str) -> dict[tuple[str, str], float]:
    samples = scrape(metrics_text(base_url))
    counts = {}
    for s in samples.get("sigma_rum_timing_seconds_count", []):
        counts[(s.labels["route"], s.labels["metric"])] = s.value
    for s in samples.get("sigma_rum_cls_count", []):
        counts[(s.labels["route"], "cls")] = s.value
    for s in samples.get("sigma_rum_interactions_total", []):
        counts[(s.labels["route"], f"{s.labels['type']}:{s.labels['target']}")] = s.value
    return counts


class Console:
    def __init__(self, page):
        self.messages: list[str] = []
        page.on("console", lambda msg: self.messages.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda exc: self.messages.append(f"pageerror: {exc}"))

    def csp_violations(self) -> list[str]:
        return [m for m in self.messages if "Content Security Policy" in m or "pageerror" in m]


@pytest.mark.django_db(transaction=True)
def test_rum_reports_from_a_real_browser_over_two_pages(live_server, chromium):
    WorkbookFactory.create_batch(3)
    base = live_server.url
    before = rum_counts(base)

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
        try:
            page = browser.new_page()
            console = Console(page)
            beacons: list[int] = []
            page.on(
                "requestfinished",
                lambda request: beacons.append(1) if request.url.endswith("/monitoring/rum/") else None,
            )
            page.goto(f"{base}/", wait_until="load")
            page.wait_for_timeout(300)  # let LCP settle
            # Page 1 -> page 2 through the search form (data-rum="search"): page 1 is hidden and reports.
            page.fill("#site-search", "revenue")
            with page.expect_navigation(wait_until="load"):
                page.click("form.search button")
            page.wait_for_timeout(300)
            page.click("main")  # an interaction on page 2, for INP
            page.wait_for_timeout(100)
            page.goto("about:blank")  # page 2 is hidden and reports
            page.wait_for_timeout(500)
            assert console.csp_violations() == []
        finally:
            browser.close()

    wanted = {
        ("home", "ttfb"),
        ("home", "dcl"),
        ("home", "load"),
        ("home", "lcp"),
        ("home", "cls"),
        ("home", "submit:search"),
        ("workbooks:list", "ttfb"),
        ("workbooks:list", "dcl"),
        ("workbooks:list", "load"),
        ("workbooks:list", "lcp"),
        ("workbooks:list", "cls"),
        ("workbooks:list", "inp"),
    }
    deadline = time.monotonic() + 15
    while True:
        after = rum_counts(base)
        arrived = {key for key in wanted if after.get(key, 0) > before.get(key, 0)}
        if arrived == wanted or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert arrived == wanted, f"missing: {sorted(wanted - arrived)}"
    samples = scrape(metrics_text(base))
    reports = {s.labels["result"]: s.value for s in samples["sigma_rum_reports_total"]}
    assert reports["accepted"] >= 2


@pytest.mark.django_db(transaction=True)
def test_the_staff_profile_page_renders_in_a_browser_under_the_csp(live_server, chromium):
    staff = UserFactory(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    session_id = client.cookies["sessionid"].value

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
        try:
            context = browser.new_context()
            context.add_cookies([{"name": "sessionid", "value": session_id, "url": live_server.url}])
            page = context.new_page()
            console = Console(page)
            response = page.goto(f"{live_server.url}/workbooks/?profile=1", wait_until="load")
            assert response.headers["x-profiled-status"] == "200"
            page.wait_for_function(
                "document.querySelector('#app') && document.querySelector('#app').children.length > 0"
            )
            text = page.inner_text("body")
            assert "workbook_list" in text
            # pyinstrument's renderer asks for Google Fonts; the CSP refuses (as it should) and system fonts
            # are used. Nothing else may be refused: its script and style run by their hashes.
            others = [m for m in console.csp_violations() if "fonts.googleapis.com" not in m]
            assert others == []
        finally:
            browser.close()
