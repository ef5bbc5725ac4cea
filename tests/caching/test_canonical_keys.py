"""Page and fragment keys come from the canonical query: parameters a page does not understand add no entry
(issue 13, section 4)."""

from __future__ import annotations

import random

import pytest
from django.test import Client

from sigma_playground.caching import service
from tests.factories import FollowFactory

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]
RANDOM_PARAMS = 1_000


def redis_keys() -> int:
    return service.backend().client.dbsize()


@pytest.fixture
def pages(world, settings):
    settings.VIEW_COUNTING_ENABLED = False  # the view buffer's keys are not what this counts
    FollowFactory(follower=world["reader"], followed=world["author"])
    workbook = world["workbook"]
    return [
        "/",
        "/workbooks/",
        "/workbooks/?q=revenue&sort=newest",
        f"/tags/{workbook.tags.first().slug}/",
        workbook.get_absolute_url(),
        world["author"].get_absolute_url(),
        world["author"].get_absolute_url() + "followers/",
        world["author"].get_absolute_url() + "following/",
    ]


def with_param(url: str, name: str, value: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{name}={value}"


def test_random_parameters_leave_the_number_of_cache_keys_unchanged(pages):
    client = Client()
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200 and response.get("X-Cache") != "hit", url
    before = redis_keys()
    rng = random.Random(13)
    for url in pages:
        for n in range(RANDOM_PARAMS):
            response = client.get(with_param(url, f"a{n}", str(rng.randrange(10**9))))
            assert response.status_code == 200 and response.get("X-Cache") == "hit", (url, n)
    assert redis_keys() == before


def test_the_same_parameters_in_another_order_are_one_entry(pages):
    client = Client()
    assert client.get("/workbooks/?sort=popular&q=revenue").get("X-Cache") != "hit"
    before = redis_keys()
    for url in (
        "/workbooks/?q=revenue&sort=popular",
        "/workbooks/?utm_source=x&q=%20revenue%20&sort=popular",
        "/workbooks/?sort=popular&q=revenue&per_page=20",
        "/workbooks/?sort=nonsense&sort=popular&q=revenue&per_page=abc",
    ):
        assert client.get(url).get("X-Cache") == "hit", url
    assert redis_keys() == before


def test_logged_in_readers_fragments_are_keyed_the_same_way(pages, world):
    client = Client()
    client.force_login(world["reader"])
    for url in pages:
        assert client.get(url).status_code == 200
    before = redis_keys()
    for url in pages:
        for n in range(50):
            assert client.get(with_param(url, f"b{n}", str(n))).status_code == 200
    # Sessions are cached too (cached_db): the reader's one session key is already there.
    assert redis_keys() == before


def test_a_stored_page_never_carries_a_parameter_its_key_does_not(world):
    client = Client()
    body = client.get("/workbooks/?q=revenue&junk=%3Cb%3Eplanted%3C%2Fb%3E").content.decode()
    assert "planted" not in body
    home = client.get("/?q=planted-search").content.decode()
    assert "planted-search" not in home  # the search box of the shared home page stays empty
