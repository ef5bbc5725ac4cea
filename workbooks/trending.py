"""Trending: a time-decayed score from the last 7 days of per-day statistics.

    score(w) = Σ over the 7 UTC days d = today-6 … today of
               (views(w, d) + FAVORITE_WEIGHT · favorites(w, d)) · 0.5 ** (age(d) / HALF_LIFE_DAYS)

with age(d) = today - d in days (0 for today). A favorite weighs as much as FAVORITE_WEIGHT views, and a day's
activity counts half as much every HALF_LIFE_DAYS days, so a burst this week beats a large all-time
``view_count``; nothing older than 7 days counts at all.

The score is stored on ``Workbook.trending_score`` so the trending list can be read in index order; a Celery
beat task recomputes it every ``TRENDING_REFRESH_SECONDS`` (workbooks.tasks.recompute_trending, which stores
the scores through ``services.trending_recompute``).
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings

from workbooks import selectors
from workbooks.models import Workbook, WorkbookDailyStat

WINDOW_DAYS = 7
HALF_LIFE_DAYS = 2.0
FAVORITE_WEIGHT = 5.0


def day_weight(age_days: int) -> float:
    return 0.5 ** (age_days / HALF_LIFE_DAYS)


def score(stats: list[tuple[int, int, int]]) -> float:
    """``stats``: (age in days, views, favorites) rows; the same formula as the bulk recompute."""
    return sum(
        (views + FAVORITE_WEIGHT * favorites) * day_weight(age)
        for age, views, favorites in stats
        if 0 <= age < WINDOW_DAYS
    )


def compute_scores(*, today: dt.date) -> dict[int, float]:
    """Every workbook with activity in the window ending ``today``, with its score: computed in Python over
    the window's rows (a few per active workbook). ``services.trending_recompute`` stores them."""
    start = today - dt.timedelta(days=WINDOW_DAYS - 1)
    scores: dict[int, float] = {}
    rows = WorkbookDailyStat.objects.filter(date__gte=start, date__lte=today).values_list(
        "workbook_id", "date", "views", "favorites"
    )
    for workbook_id, date, views, favorites in rows.iterator(chunk_size=5000):
        age = (today - date).days
        scores[workbook_id] = scores.get(workbook_id, 0.0) + (
            views + FAVORITE_WEIGHT * favorites
        ) * day_weight(age)
    return scores


def visible_ranking(*, rows: int | None = None) -> list[int]:
    """The ids the trending order puts on the first page of any size (``MAX_PAGE_SIZE``), home's trending
    section included: what a recompute can change on the pages people actually look at."""
    listed = Workbook.objects.listed().filter(trending_score__gt=0).order_by(*selectors.SORTS["trending"])
    return list(listed.values_list("pk", flat=True)[: rows or settings.MAX_PAGE_SIZE])
