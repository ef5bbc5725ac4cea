"""The trending recompute bumps ``lists`` only when the order on the pages people look at changed, then warms
the first pages, so a recompute is not a wave of rebuilds of every cached page."""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from sigma_playground.caching import keys, pages, service
from tests.factories import WorkbookFactory
from workbooks import tasks
from workbooks.models import WorkbookDailyStat

# The bump runs on commit, as in production; trending reads the last days up to today: on the fixed clock.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clock")]


def lists_generation() -> int:
    return service.generations([keys.LISTS]).get(keys.LISTS, 0)


def views_today(workbook, views: int) -> None:
    WorkbookDailyStat.objects.update_or_create(
        workbook=workbook, date=timezone.now().date(), defaults={"views": views}
    )


def cached(url: str) -> bool:
    service.RECENT_PAGES.clear()
    lookup = pages.lookup_page(RequestFactory().get(url))
    return lookup is not None and lookup.hit


def test_bumps_only_when_the_visible_order_changes_and_warms_the_first_pages():
    a, b = WorkbookFactory(), WorkbookFactory()
    views_today(a, 10)
    views_today(b, 5)
    generation = lists_generation()

    assert tasks.recompute_trending() == 2  # a, then b: a new order on the first page
    assert lists_generation() == generation + 1
    for url in (reverse("home"), reverse("workbooks:list") + "?sort=trending", reverse("workbooks:list")):
        assert cached(url), f"{url} was not warmed after the bump"

    views_today(a, 30)  # a's score changes, the order (a, b) does not
    assert tasks.recompute_trending() == 1
    assert lists_generation() == generation + 1, "scores changed but no page shows them: no bump"

    assert tasks.recompute_trending() == 0  # nothing changed at all
    assert lists_generation() == generation + 1

    views_today(b, 100)  # b overtakes a
    assert tasks.recompute_trending() == 1
    assert lists_generation() == generation + 2
