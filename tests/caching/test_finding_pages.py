"""The new cached pages (people, tags, a search's People block) are made fresh by the writes they show."""

from __future__ import annotations

import pytest
import time_machine
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from accounts import services as account_services
from tests.caching.conftest import publish
from tests.caching.test_pages import anonymous, html, logged_in
from tests.factories import UserFactory
from workbooks import services, sharing
from workbooks.models import Visibility, Workbook

pytestmark = pytest.mark.django_db(transaction=True)

PEOPLE, TAGS = reverse("profiles:list"), reverse("workbooks:tags")


def warm(client, url: str) -> None:
    html(client, url)
    html(client, url)


@pytest.mark.parametrize("reader", ["anonymous", "logged-in"])
def test_people_pages_follow_follows_renames_and_sign_ups(world, reader):
    client = anonymous() if reader == "anonymous" else logged_in(world["reader"])
    search_url = reverse("workbooks:list") + "?q=ada"
    for url in (PEOPLE, search_url):
        warm(client, url)
    for fan in UserFactory.create_batch(2):
        account_services.follow(follower=fan, followed=world["author"])
    assert "2 followers" in html(client, PEOPLE)
    account_services.user_update_profile(user=world["author"], full_name="Ada Zebra", bio="")
    assert "Ada Zebra" in html(client, PEOPLE) and "Ada Zebra" in html(client, search_url)
    account_services.user_create(username="newcomer", email="n@example.com", password="x-very-long-pw")
    assert "newcomer" in html(client, PEOPLE)


@pytest.mark.parametrize("reader", ["anonymous", "logged-in"])
def test_tag_directory_follows_publishing_and_hiding(world, reader):
    client = anonymous() if reader == "anonymous" else logged_in(world["reader"])
    warm(client, TAGS)
    assert 'finance <span class="tag-count">2</span>' in html(client, TAGS)
    with time_machine.travel(timezone.now(), tick=True) as clock:
        # A new workbook only adds: the directory is not recomputed per publish, it shows the new tag once its
        # lifetime is over (TAG_DIRECTORY_SECONDS).
        publish(world["author"], "Zebra treasury", tags=("treasury",), n=9)
        assert "treasury" not in html(client, TAGS)
        clock.shift(settings.TAG_DIRECTORY_SECONDS + 1)
        assert "treasury" in html(client, TAGS)
        # Hiding one is shown at once: the tag count drops with the next page.
        services.workbooks_set_visibility(workbook_ids=[world["workbook"].pk], visibility=Visibility.PRIVATE)
        assert 'finance <span class="tag-count">1</span>' in html(client, TAGS)
        services.workbooks_set_visibility(workbook_ids=[world["workbook"].pk], visibility=Visibility.PUBLIC)
        assert 'finance <span class="tag-count">2</span>' in html(client, TAGS)
        # The only workbook with a tag goes private: the tag leaves the directory at once.
        treasury = Workbook.objects.get(title="Zebra treasury")
        services.workbooks_set_visibility(workbook_ids=[treasury.pk], visibility=Visibility.PRIVATE)
        assert "treasury" not in html(client, TAGS)


def test_feeds_sitemaps_and_oembed_are_cached_and_drop_a_workbook_made_private(world):
    client, workbook = anonymous(), world["workbook"]
    oembed = reverse("oembed") + f"?url=http://testserver{workbook.get_absolute_url()}"
    urls = [
        reverse("feed_newest"),
        reverse("workbooks:tag_feed", args=["finance"]),
        reverse("profiles:feed", args=["ada"]),
        reverse("sitemap_workbooks", args=[workbook.pk // sharing.SITEMAP_CHUNK]),
        oembed,
    ]
    shown = {url: workbook.title for url in urls} | {urls[3]: workbook.get_absolute_url()}
    for url in urls:
        assert shown[url] in client.get(url).content.decode(), url
        assert client.get(url)["X-Cache"] == "hit", url
    services.workbooks_set_visibility(workbook_ids=[workbook.pk], visibility=Visibility.UNLISTED)
    for url in urls[:4]:
        assert shown[url] not in client.get(url).content.decode(), url
    assert client.get(oembed).status_code == 404


@pytest.mark.parametrize("reader", ["anonymous", "logged-in"])
def test_load_more_fragments_are_cached_like_their_pages(world, reader):
    client = anonymous() if reader == "anonymous" else logged_in(world["reader"])
    made = [publish(world["author"], f"Zebra page {i}", n=20 + i) for i in range(3)]
    url = reverse("workbooks:list") + "?per_page=2"
    page = html(client, url)
    cursor = page.split("cursor=")[1].split('"')[0]
    fragment_url = f"{url}&cursor={cursor}&fragment=1"
    fragment = html(client, fragment_url)
    assert "Zebra page 0" in fragment  # the third newest: first of page 2
    assert "<!doctype" not in fragment.lower() and 'class="card-grid"' in fragment
    assert "data-load-more" in fragment and "fragment=1" not in fragment  # its links are the page's
    assert "fragment=1" not in html(client, f"{url}&cursor={cursor}")  # the page shares the fragment
    if reader == "anonymous":
        assert client.get(fragment_url)["X-Cache"] == "hit"
    services.workbooks_set_visibility(workbook_ids=[made[0].pk], visibility=Visibility.PRIVATE)
    assert "Zebra page 0" not in html(client, fragment_url)


def test_new_cached_pages_carry_their_surrogate_keys_and_the_public_rule(world):
    client = anonymous()
    expected = {
        reverse("profiles:list"): "people",
        reverse("workbooks:tags"): "lists",
        reverse("feed_newest"): "lists",
        reverse("profiles:feed", args=["ada"]): "lists user-ada",
        reverse("sitemap_index"): "lists",
        reverse("oembed") + f"?url=http://testserver{world['workbook'].get_absolute_url()}": (
            f"lists wb-{world['workbook'].pk}"
        ),
    }
    for url, surrogate in expected.items():
        response = client.get(url)
        assert response["Surrogate-Key"] == surrogate, url
        assert "public" in response["Cache-Control"] and "Cookie" in response["Vary"], url
    logged = logged_in(world["reader"]).get(reverse("feed_newest"))
    assert "Surrogate-Key" not in logged and "public" not in logged.get("Cache-Control", "")
