"""Cached pages never expire together: jittered lifetimes, and refresh-ahead by exactly one request while every
other reader gets the stored copy."""

from __future__ import annotations

import time

import pytest
from django.test import Client, RequestFactory
from django.urls import reverse

from sigma_playground.caching import keys, pages, service
from tests.caching.conftest import cache_hits
from tests.monitoring.helpers import sample


def responses(status: str) -> float:
    return sample("django_http_responses_total_by_status_total", {"status": status})


# Freshness is wall-clock time: stopped, so seconds of freshness left cannot run out on a loaded machine.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("frozen_clock")]


def get_during_outage(url: str):
    """GET ``url`` as an anonymous reader while the database breaker is open. The request must count as one
    response in the metrics: the 200 its client got, never also the failed rebuild's 503."""
    from django.db import OperationalError, connection

    from sigma_playground.db_breaker import BREAKER

    BREAKER.failed(OperationalError("down"))
    connection.close()
    before = {status: responses(status) for status in ("200", "503")}
    try:
        response = Client().get(url)
    finally:
        BREAKER.reset()
    assert {status: responses(status) - before[status] for status in before} == {"200": 1, "503": 0}
    return response


def stored_entry(url: str) -> tuple[str, service.Entry]:
    service.RECENT_PAGES.clear()
    lookup = pages.lookup_page(RequestFactory().get(url))
    assert lookup is not None and lookup.entry is not None, url
    return lookup.key, lookup.entry


def near_expiry(url: str, *, seconds_left: float) -> str:
    """Rewrite the stored page so that it has ``seconds_left`` of freshness left."""
    key, entry = stored_entry(url)
    service.set_entry(keys.KIND_PAGE, key, entry.value, seconds_left)
    service.RECENT_PAGES.clear()
    return key


def test_lifetimes_are_jittered_within_the_ttl(settings):
    settings.PAGE_CACHE_TTL_JITTER = 0.2
    values = [pages.jittered_ttl(60) for _ in range(2000)]
    assert min(values) >= 48 and max(values) <= 60
    assert max(values) - min(values) > 10  # spread over most of the 12 s window
    settings.PAGE_CACHE_TTL_JITTER = 0
    assert pages.jittered_ttl(60) == 60


def test_pages_stored_together_expire_apart(world, settings):
    settings.PAGE_CACHE_TTL = 60
    settings.PAGE_CACHE_TTL_JITTER = 0.2
    urls = [reverse("workbooks:list") + f"?sort={sort}" for sort in ("newest", "popular", "trending")]
    urls += [reverse("home"), reverse("workbooks:list"), world["author"].get_absolute_url()]
    urls += [reverse("workbooks:list") + f"?per_page={n}" for n in range(1, 15)]
    stored_between = {}
    for url in urls:
        before = time.time()
        assert Client().get(url).status_code == 200
        stored_between[url] = (before, time.time())
    lifetimes = []
    for url in urls:
        fresh_until = stored_entry(url)[1].fresh_until
        before, after = stored_between[url]
        assert fresh_until - after <= 60 and fresh_until - before >= 48  # stored at some moment in between
        lifetimes.append(fresh_until - (before + after) / 2)
    print("fresh for", sorted(round(e, 1) for e in lifetimes))
    assert max(lifetimes) - min(lifetimes) > 3  # 20 draws from 12 s: all within 3 s has odds below 1e-9


def test_a_page_near_expiry_is_rebuilt_by_one_request_while_the_others_get_the_stored_copy(
    world, settings, django_assert_num_queries
):
    settings.PAGE_REFRESH_AHEAD_SECONDS = 10
    url = reverse("workbooks:list")
    assert Client().get(url).status_code == 200
    key = near_expiry(url, seconds_left=5)

    # Another request is already rebuilding it (holds the lock): this one is a hit, no SQL.
    assert service.try_lock(key)
    with django_assert_num_queries(0):
        assert Client().get(url).get("X-Cache") == "hit"
    service.unlock(key)

    # The first reader to take the lock rebuilds; it does not hand the lock to anyone else meanwhile.
    service.RECENT_PAGES.clear()  # the hit above kept a local copy (never refreshed from: only Redis's is)
    refresher = pages.lookup_page(RequestFactory().get(url))
    reader = pages.lookup_page(RequestFactory().get(url))
    assert refresher.refresh and not refresher.hit
    assert not reader.refresh and reader.hit  # the stored copy
    service.unlock(key)

    service.RECENT_PAGES.clear()
    misses = cache_hits("page", "miss")
    response = Client().get(url)
    assert response.status_code == 200 and response.get("X-Cache") != "hit"
    assert cache_hits("page", "miss") == misses + 1
    _, entry = stored_entry(url)
    assert entry.fresh_until - time.time() > 30  # renewed for a whole (jittered) lifetime
    assert service.try_lock(key)  # and the lock was released
    service.unlock(key)
    with django_assert_num_queries(0):
        assert Client().get(url).get("X-Cache") == "hit"


def test_a_page_with_time_left_is_not_refreshed_and_head_never_refreshes(world, settings):
    settings.PAGE_REFRESH_AHEAD_SECONDS = 10
    url = reverse("workbooks:list")
    Client().get(url)
    key = near_expiry(url, seconds_left=40)
    assert not pages.lookup_page(RequestFactory().get(url)).refresh
    near_expiry(url, seconds_left=5)
    assert not pages.lookup_page(RequestFactory().head(url)).refresh
    assert not pages.lookup_page(RequestFactory().get(url, HTTP_IF_NONE_MATCH='"x"')).refresh
    assert service.try_lock(key)  # nobody took it
    service.unlock(key)


def test_refresh_ahead_off(world, settings):
    settings.PAGE_REFRESH_AHEAD_SECONDS = 0
    url = reverse("workbooks:list")
    Client().get(url)
    near_expiry(url, seconds_left=1)
    assert pages.lookup_page(RequestFactory().get(url)).hit


def test_the_refresh_window_is_at_most_a_quarter_of_a_short_lifetime(
    world, settings, django_assert_num_queries
):
    """A 10 s window on a 5 s TTL made every stored page due at once: each sequential request took the free lock
    and rebuilt the page, and nobody ever got a hit (the fault suite's short TTL found it)."""
    settings.PAGE_CACHE_TTL = 5
    settings.PAGE_CACHE_TTL_JITTER = 0
    settings.PAGE_REFRESH_AHEAD_SECONDS = 10
    url = reverse("workbooks:list")
    assert Client().get(url).status_code == 200
    for _ in range(3):
        service.RECENT_PAGES.clear()
        with django_assert_num_queries(0):
            assert Client().get(url).get("X-Cache") == "hit"
    near_expiry(url, seconds_left=1)  # inside the 1.25 s window (a quarter of 5 s): one refresh
    assert pages.lookup_page(RequestFactory().get(url)).refresh


@pytest.mark.postgres
def test_a_refresh_ahead_that_meets_a_database_outage_serves_the_stored_copy(world, settings):
    """The request that takes the lock rebuilds; with the database down its rebuild is the 503 page. It used to
    return that 503 although a fresh copy was in hand (the fault suite's cached pages during an outage)."""
    settings.PAGE_REFRESH_AHEAD_SECONDS = 10
    settings.DB_BREAKER_SECONDS = 30
    url = world["workbook"].get_absolute_url()  # its rebuild reads the workbook from the database
    stored = Client().get(url)
    key = near_expiry(url, seconds_left=5)
    response = get_during_outage(url)
    assert response.status_code == 200, response.status_code
    assert response.content == stored.content
    assert response["X-Cache"] == "hit"
    assert service.try_lock(key)  # released for the next request to try again
    service.unlock(key)


@pytest.mark.postgres
def test_an_expired_page_served_stale_during_an_outage_is_one_response_in_the_metrics(world, settings):
    settings.PAGE_REFRESH_AHEAD_SECONDS = 0
    settings.DB_BREAKER_SECONDS = 30
    url = world["workbook"].get_absolute_url()
    stored = Client().get(url)
    key, entry = stored_entry(url)
    # Past its freshness but still held (the grace period): the next reader rebuilds it.
    service.set_entry(keys.KIND_PAGE, key, entry.value, -1, grace=60)
    service.RECENT_PAGES.clear()
    response = get_during_outage(url)
    assert response.status_code == 200 and response["X-Cache"] == "stale"
    assert response.content == stored.content
