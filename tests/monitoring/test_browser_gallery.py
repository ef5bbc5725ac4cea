"""The gallery walk of issue 18 in a real browser (Debian's chromium through Playwright) against a live server:
home without duplicates, a generated preview, search by an author's name, a tag chip, share tags, "Load more",
a password reset through a real local SMTP server (aiosmtpd), favorite in place; no CSP violation anywhere."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from accounts.models import User
from tests.accounts.test_email_smtp import smtp_server  # noqa: F401 (the fixture)
from tests.factories import TagFactory, UserFactory, WorkbookFactory
from tests.monitoring.test_browser import LAUNCH_ARGS, Console
from workbooks.models import Favorite

pytestmark = [
    pytest.mark.chromium,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),
]


@pytest.fixture
def gallery():
    author = UserFactory(username="nokafor", full_name="Nadia Okafor")
    finance = TagFactory(name="finance", colour="#1a7f37")
    hot = WorkbookFactory(
        author=author, title="Cash runway board", tags=[finance], is_featured=True, trending_score=9
    )
    made = [
        WorkbookFactory(
            author=author, title=f"Finance board {i}", tags=[finance], trending_score=i,
            published_at=timezone.now() - timezone.timedelta(hours=i + 1),
        )
        for i in range(6)
    ]  # fmt: skip
    walker = UserFactory(username="walker", email="walker@example.com")
    return {"author": author, "hot": hot, "made": made, "walker": walker}


@pytest.mark.django_db(transaction=True)
def test_the_gallery_walk(live_server, chromium, gallery, smtp_server):  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    base = live_server.url
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
        try:
            page = browser.new_page()
            console = Console(page)

            # Home: each workbook once across Featured, Trending and Newest; generated previews sized.
            page.goto(f"{base}/", wait_until="load")
            titles = page.locator("main .card-title a").all_inner_texts()
            assert titles and len(titles) == len(set(titles)), titles
            preview = page.locator("main svg[data-chart]").first
            assert preview.get_attribute("width") == "640" and preview.get_attribute("height") == "360"
            assert page.locator("a", has_text="See all").first.is_visible()

            # Search by the author's name: a People block above the results, leading to the profile.
            page.fill("#site-search", "Okafor")
            with page.expect_navigation():
                page.click("form.search button")
            people = page.locator(".people-block")
            expect(people).to_contain_text("Nadia Okafor")
            with page.expect_navigation():
                people.get_by_role("link", name="Nadia Okafor").click()
            assert page.url == f"{base}/users/nokafor/"

            # A tag chip on a card leads to the tag's page.
            with page.expect_navigation():
                page.locator(".card .tag", has_text="finance").first.click()
            assert page.url == f"{base}/tags/finance/"
            expect(page.locator("h1")).to_contain_text("finance")

            # Share tags on a workbook page.
            hot = gallery["hot"]
            page.goto(f"{base}{hot.get_absolute_url()}", wait_until="load")
            assert page.locator('meta[property="og:title"]').get_attribute("content") == "Cash runway board"
            assert (
                page.locator('link[rel="canonical"]').get_attribute("href")
                == f"{base}{hot.get_absolute_url()}"
            )
            assert page.locator('link[type="application/json+oembed"]').count() == 1
            assert page.locator('meta[name="twitter:card"]').count() == 1

            # "Load more" appends the next page in place and puts it in the URL.
            page.goto(f"{base}/workbooks/?per_page=2", wait_until="load")
            more = page.get_by_role("button", name="Load more")
            more.click()
            expect(page.locator("ul.card-grid > li")).to_have_count(4)
            assert "cursor=" in page.url and "fragment" not in page.url
            assert page.evaluate("document.activeElement.closest('li') !== null")

            # Password reset through the real SMTP server, following the link in the mail.
            page.goto(f"{base}/accounts/login/", wait_until="load")
            with page.expect_navigation():
                page.get_by_role("link", name="Forgot password?").click()
            page.fill("#id_email", "walker@example.com")
            with page.expect_navigation():
                page.get_by_role("button", name="Send the link").click()
            expect(page.locator("h1")).to_have_text("Check your email")
            (message,) = smtp_server.messages
            link = re.search(r"https?://\S+/accounts/password/reset/\S+", message.get_content()).group(0)
            page.goto(link, wait_until="load")
            page.fill("#id_new_password1", "walked-through-smtp")
            page.fill("#id_new_password2", "walked-through-smtp")
            with page.expect_navigation():
                page.get_by_role("button", name="Set my password").click()
            expect(page.locator("h1")).to_have_text("Your password is set")
            with page.expect_navigation():
                page.get_by_role("link", name="Log in").last.click()
            page.fill("#id_username", "walker")
            page.fill("#id_password", "walked-through-smtp")
            with page.expect_navigation():
                page.locator("main form button[type=submit]").click()

            # Favorite in place: no navigation, the button and the count change.
            page.goto(f"{base}{hot.get_absolute_url()}", wait_until="load")
            url = page.url
            page.get_by_role("button", name="☆ Favorite").click()
            expect(page.get_by_role("button", name=re.compile("Favorited"))).to_be_focused()
            expect(page.locator("[data-favorite-count]")).to_contain_text("1 favorite")
            assert page.url == url

            assert console.csp_violations() == []
            errors = [m for m in console.messages if m.startswith("error")]
            assert errors == [], errors
        finally:
            browser.close()
    # (Django refuses database access inside Playwright's event loop.)
    assert Favorite.objects.filter(user=User.objects.get(username="walker"), workbook=hot).exists()
