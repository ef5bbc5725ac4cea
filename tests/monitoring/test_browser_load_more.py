""" "Load more" after many loads, in a real browser (Debian's chromium through Playwright) against a live server:
the DOM keeps a bounded number of cards (static/js/gallery.js releases the oldest pages), the card that takes
focus does not move when cards above it are released, an "Earlier results" link leads back to the first page
still shown, and the URL's cursor brings a reload, Back and that link to the right page."""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest
from django.utils import timezone

from tests.factories import UserFactory, WorkbookFactory
from tests.monitoring.test_browser import LAUNCH_ARGS, Console, rum_counts

pytestmark = [
    pytest.mark.chromium,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),
]

PER_PAGE = 30  # not a multiple of the grid's 4 columns: releasing a page reflows the cards after it
PAGES = 7
MAX_ITEMS = 100  # gallery.js
LOADS = PAGES - 1

# Records where the element gallery.js focuses sits right after focus() scrolled it into view, before any
# release: the test then checks that releasing cards above did not move it.
FOCUS_PROBE = """
(() => {
  const focus = HTMLElement.prototype.focus;
  HTMLElement.prototype.focus = function (...args) {
    const result = focus.apply(this, args);
    window.__focusedTop = this.getBoundingClientRect().top;
    return result;
  };
})();
"""


def title(n: int) -> str:
    return f"Board {n:03d}"


@pytest.fixture
def boards():
    author = UserFactory(username="pager")
    now = timezone.now()
    for n in range(PER_PAGE * PAGES):  # newest first: Board 000, 001, ...
        WorkbookFactory(author=author, title=title(n), published_at=now - dt.timedelta(minutes=n))


@pytest.mark.django_db(transaction=True)
def test_load_more_keeps_the_dom_bounded_and_the_url_leads_back(live_server, chromium, boards):
    from playwright.sync_api import expect, sync_playwright

    base = live_server.url
    cards = "ul.card-grid > li"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.add_init_script(FOCUS_PROBE)
            console = Console(page)
            page.goto(f"{base}/workbooks/?sort=newest&per_page={PER_PAGE}", wait_until="load")
            urls = [page.url]  # the URL of each page shown, in order
            for load in range(1, LOADS + 1):
                first_new = title(load * PER_PAGE)
                page.get_by_role("button", name="Load more").click()
                focused = page.locator(".card-title a", has_text=first_new)
                expect(focused).to_be_focused()
                urls.append(page.url)
                assert "cursor=" in page.url and "fragment" not in page.url
                loaded = (load + 1) * PER_PAGE
                kept_pages = min(load + 1, MAX_ITEMS // PER_PAGE)
                shown = page.locator(".card-title a").all_inner_texts()
                # Bounded: whole pages are released from the top, the newest pages stay, in order.
                assert len(shown) <= MAX_ITEMS
                assert shown == [title(n) for n in range(loaded - kept_pages * PER_PAGE, loaded)]
                # The focused card stays where focus() put it, whatever was released above it.
                moved = page.evaluate(
                    "document.activeElement.getBoundingClientRect().top - window.__focusedTop"
                )
                assert abs(moved) < 1, f"load {load}: the focused card moved by {moved}px"
                if loaded > MAX_ITEMS:
                    earlier = page.locator(".load-earlier a")
                    first_kept_page = load + 1 - kept_pages
                    assert earlier.get_attribute("href") == urls[first_kept_page]
            assert page.locator(cards).count() <= MAX_ITEMS

            # A reload lands on the last page loaded: its cards only, from the URL's cursor.
            page.reload(wait_until="load")
            assert page.url == urls[-1]
            assert page.locator(".card-title a").all_inner_texts() == [
                title(n) for n in range(LOADS * PER_PAGE, (LOADS + 1) * PER_PAGE)
            ]
            # Back: the page before, as the server renders it.
            page.go_back(wait_until="load")
            expect(page.locator(".card-title a").first).to_have_text(title((LOADS - 1) * PER_PAGE))
            assert page.url == urls[-2]

            # "Earlier results" (after scrolling back up past the released cards) opens the first page still
            # shown, whose "Previous" link goes on upwards.
            page.goto(urls[0], wait_until="load")
            for load in range(1, LOADS + 1):
                page.get_by_role("button", name="Load more").click()
                expect(page.locator(".card-title a", has_text=title(load * PER_PAGE))).to_be_focused()
            assert page.url == urls[-1]
            page.evaluate("window.scrollTo(0, 0)")
            earlier = page.get_by_role("link", name=re.compile("Earlier results"))
            expect(earlier).to_be_in_viewport()
            first_kept_page = LOADS + 1 - MAX_ITEMS // PER_PAGE
            with page.expect_navigation(wait_until="load"):
                earlier.click()
            assert page.url == urls[first_kept_page]
            expect(page.locator(".card-title a").first).to_have_text(title(first_kept_page * PER_PAGE))
            assert page.get_by_role("link", name="← Previous").count() == 1

            assert console.csp_violations() == []
            errors = [m for m in console.messages if m.startswith("error")]
            assert errors == [], errors
        finally:
            browser.close()


@pytest.fixture
def every_list(settings):
    """Three pages of two on each kind of list: tag, search, people, followers, feed and favorites."""
    from accounts import services as account_services
    from tests.factories import FavoriteFactory, TagFactory

    settings.PAGE_SIZE = 2
    ops = TagFactory(name="ops")
    author = UserFactory(username="writer")
    reader = UserFactory(username="reader")
    now = timezone.now()
    boards = [
        WorkbookFactory(author=author, title=f"Revenue board {n}", tags=[ops], published_at=now - dt.timedelta(minutes=n))
        for n in range(6)
    ]  # fmt: skip
    for board in boards:
        FavoriteFactory(user=reader, workbook=board)
    for follower in [reader, *UserFactory.create_batch(5)]:
        account_services.follow(follower=follower, followed=author)
    return {"author": author, "reader": reader}


@pytest.mark.django_db(transaction=True)
def test_every_paged_list_loads_more_in_place_and_counts_it(live_server, chromium, every_list):
    """Each list appends its next page in place; the clicks (and an unfavorite in place) reach the real-user
    interaction counters under the page's route."""
    from django.test import Client
    from playwright.sync_api import expect, sync_playwright

    client = Client()
    client.force_login(every_list["reader"])
    session_id = client.cookies["sessionid"].value
    lists = {
        "workbooks:tag": ("/tags/ops/", "ul.card-grid > li"),
        "workbooks:list": ("/workbooks/?q=revenue", "ul.card-grid > li"),
        "profiles:list": ("/users/", "ul.people-grid > li"),
        "profiles:followers": ("/users/writer/followers/", "ul.people-list > li"),
        "workbooks:feed": ("/feed/", "ul.card-grid > li"),
        "workbooks:favorites": ("/favorites/", "ul.card-grid > li"),
    }
    before = rum_counts(live_server.url)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
        try:
            context = browser.new_context()
            context.add_cookies([{"name": "sessionid", "value": session_id, "url": live_server.url}])
            page = context.new_page()
            console = Console(page)
            for route, (path, items) in lists.items():
                page.goto(f"{live_server.url}{path}", wait_until="load")
                expect(page.locator(items), route).to_have_count(2)
                url = page.url
                page.get_by_role("button", name="Load more").click()
                expect(page.locator(items), route).to_have_count(4)
                assert page.url != url and "cursor=" in page.url and "fragment" not in page.url, route
                assert page.evaluate("document.activeElement.closest('li') !== null"), route
            page.get_by_role("button", name=re.compile("Favorited")).first.click()  # on /favorites/
            expect(page.get_by_role("button", name="☆ Favorite")).to_have_count(1)
            page.goto("about:blank")  # the last page is hidden and reports
            assert console.csp_violations() == []
            errors = [m for m in console.messages if m.startswith("error")]
            assert errors == [], errors
        finally:
            browser.close()
    wanted = {(route, "click:load_more") for route in lists} | {("workbooks:favorites", "submit:unfavorite")}
    deadline = time.monotonic() + 15
    while True:
        after = rum_counts(live_server.url)
        arrived = {key for key in wanted if after.get(key, 0) > before.get(key, 0)}
        if arrived == wanted or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert arrived == wanted, f"missing: {sorted(wanted - arrived)}"
