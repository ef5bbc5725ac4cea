"""Issue 18 on a phone-sized screen (390 x 844, Debian's chromium through Playwright, against a live server): a
compact header whose Menu works without a script, the embed taking most of the screen on a workbook page, the
staff health page without sideways scrolling, and the error summary taking focus after a failed submit."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import UserFactory, WorkbookFactory
from tests.monitoring.test_browser import LAUNCH_ARGS, Console

pytestmark = [
    pytest.mark.chromium,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),
]

PHONE = {"width": 390, "height": 844}
# Before issue 18 the header wrapped onto 3-4 rows, 161-201 px; brand and Menu on one row and the search
# under them is about 100.
MAX_HEADER_PX = 120
# The page's width (a mobile browser zooms out to show a page wider than the screen, so innerWidth grows with it).
WIDTH = "document.documentElement.scrollWidth"


@pytest.mark.django_db(transaction=True)
def test_phone_layout(live_server, chromium):
    from playwright.sync_api import expect, sync_playwright

    workbook = WorkbookFactory(title="Phone board")
    staff = UserFactory(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    staff_session = client.cookies["sessionid"].value
    base = live_server.url
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
        try:
            context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
            page = context.new_page()
            console = Console(page)

            for path in ("/", "/workbooks/", workbook.get_absolute_url()):
                page.goto(f"{base}{path}", wait_until="load")
                height = page.locator("header.site-header").bounding_box()["height"]
                assert height <= MAX_HEADER_PX, f"{path}: header {height}px"
                assert page.evaluate(WIDTH) <= PHONE["width"], path

            # The Menu (a <details>, no script) opens onto the links the wide header shows.
            page.goto(f"{base}/", wait_until="load")
            menu = page.locator("details.menu")
            expect(menu.get_by_role("link", name="Tags")).to_be_hidden()
            menu.locator("summary").click()
            for name in ("Browse", "Tags", "People", "Log in", "Sign up"):
                expect(menu.get_by_role("link", name=name)).to_be_visible()

            # The embed takes at least 70% of the screen's height on a workbook page.
            page.goto(f"{base}{workbook.get_absolute_url()}", wait_until="load")
            embed = page.locator(".embed").bounding_box()
            assert embed["height"] >= 0.7 * PHONE["height"], embed

            # A failed submit: the error summary takes focus.
            page.goto(f"{base}/accounts/signup/", wait_until="load")
            page.fill("#id_username", "x")
            with page.expect_navigation():
                page.locator("main form button[type=submit]").click()
            expect(page.locator("#error-summary")).to_be_focused()

            assert console.csp_violations() == []
            context.close()

            # The staff health page fits the phone's width.
            context = browser.new_context(viewport=PHONE, is_mobile=True)
            context.add_cookies([{"name": "sessionid", "value": staff_session, "url": base}])
            page = context.new_page()
            response = page.goto(f"{base}/monitoring/health/", wait_until="load")
            assert response.status == 200
            assert page.locator(".health-table").count() == 1
            assert page.evaluate(WIDTH) <= PHONE["width"]
        finally:
            browser.close()
