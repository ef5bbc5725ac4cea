"""Counts that mean something (issue 13, section 7): GET only, never the author, once per visitor per
workbook per window, and the warming task recognised by something a client cannot send."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from sigma_playground.caching import keys, service
from tests.factories import UserFactory, WorkbookFactory
from workbooks import counters, warming

# Every test here counts in VIEW_DEDUP_SECONDS windows (and days): on the fixed clock, never across a boundary.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clock")]


@pytest.fixture
def workbook():
    return WorkbookFactory(author=UserFactory(username="author"))


def recorded(workbook) -> int:
    """Views recorded for the workbook: buffered in Redis, or (embedded) written to the database."""
    pending = counters.pending_views()
    workbook.refresh_from_db()
    return pending + workbook.view_count


def visit(
    url: str, *, address: str = "198.51.100.1", method: str = "get", client: Client | None = None, **extra
):
    response = getattr(client or Client(), method)(url, REMOTE_ADDR=address, **extra)
    assert response.status_code == 200
    return response


def test_head_requests_are_not_views(workbook):
    visit(workbook.get_absolute_url(), method="head")
    assert recorded(workbook) == 0
    visit(workbook.get_absolute_url())
    assert recorded(workbook) == 1


def test_the_authors_own_views_do_not_count(workbook):
    author = Client()
    author.force_login(workbook.author)
    for _ in range(3):
        visit(workbook.get_absolute_url(), client=author)
    assert recorded(workbook) == 0
    reader = Client()
    reader.force_login(UserFactory())
    visit(workbook.get_absolute_url(), client=reader)
    visit(workbook.get_absolute_url(), client=reader)
    assert recorded(workbook) == 1


def test_one_client_counts_once_per_window_however_many_requests(workbook):
    for _ in range(300):
        visit(workbook.get_absolute_url(), address="203.0.113.9")
    assert recorded(workbook) == 1
    visit(workbook.get_absolute_url(), address="203.0.113.10")
    assert recorded(workbook) == 2


def test_the_next_window_counts_again(workbook, settings, clock):
    settings.VIEW_DEDUP_SECONDS = 1800
    visit(workbook.get_absolute_url())
    clock.shift(1800)
    visit(workbook.get_absolute_url())
    visit(workbook.get_absolute_url())
    assert recorded(workbook) == 2


def test_a_client_sending_the_old_warming_header_is_counted(workbook):
    visit(workbook.get_absolute_url(), HTTP_X_SIGMA_WARMING="1")
    assert recorded(workbook) == 1


def test_the_warming_task_is_not_counted(workbook, settings):
    settings.PAGE_CACHE_ENABLED = True
    service.reset_backend()
    result = warming.warm()
    assert result.failed == 0 and workbook.get_absolute_url() in warming.warm_paths()
    assert recorded(workbook) == 0


@pytest.mark.redis
def test_cached_hits_are_counted_once_per_visitor_and_seen_sets_expire(workbook, settings):
    settings.PAGE_CACHE_ENABLED = True
    service.reset_backend()
    url = workbook.get_absolute_url()
    assert visit(url).get("X-Cache") != "hit"
    for _ in range(20):
        assert visit(url).get("X-Cache") == "hit"
    assert visit(url, method="head").get("X-Cache") == "hit"
    assert recorded(workbook) == 1
    assert visit(url, address="198.51.100.2").get("X-Cache") == "hit"
    assert recorded(workbook) == 2
    window = int(timezone.now().timestamp() // settings.VIEW_DEDUP_SECONDS)
    ttl = service.backend().client.ttl(keys.views_seen(window, workbook.pk))
    assert 0 < ttl <= settings.VIEW_DEDUP_SECONDS + 60  # memory stays bounded: each window's set expires
