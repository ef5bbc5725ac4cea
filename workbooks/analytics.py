"""Author analytics: reads of the per-day statistics for ``/me/workbooks/`` and ``/workbooks/<id>/stats/``.

Every query is bounded by what one author or one workbook owns, never by the size of the site:

- one workbook's days come from the unique (workbook_id, date) index, at most ``MAX_DAYS`` rows whatever
  the years of history;
- one author's workbooks come from the ``author_id`` index; their 30-day numbers are, per workbook, one
  range of at most 30 index entries of that same unique index (so a page costs the author's workbooks x 30
  entries, however big the gallery);
- the trending rank counts the listed workbooks ahead of this one in ``workbooks_listed_trending_idx``,
  and stops at ``TRENDING_RANK_LIMIT`` ("not in the top 1,000" beyond).

tests/workbooks/test_analytics.py checks the plans with EXPLAIN on PostgreSQL at five years of days;
``make bench-db`` times them at 1,000,000 workbooks (docs/performance.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.db.models import Count, IntegerField, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import Http404
from django.utils import timezone

from accounts.models import User
from workbooks.models import Workbook, WorkbookDailyStat

WINDOW_DAYS = 30
PERIODS = (7, 30, 90, 365)
MAX_DAYS = max(PERIODS)
TRENDING_RANK_LIMIT = 1000
MINE_PER_PAGE = 50
# Sorts of /me/workbooks/: the 30-day numbers (the point of the page), then newest and title.
MINE_SORTS: dict[str, tuple[str, ...]] = {
    "views": ("-views_30", "-id"),
    "favorites": ("-favorites_30", "-id"),
    "newest": ("-created_at", "-id"),
    "title": ("title", "id"),
}
MINE_DEFAULT_SORT = "views"


def today() -> dt.date:
    return timezone.now().date()


def days_back(end: dt.date, days: int) -> list[dt.date]:
    """The ``days`` UTC dates ending with ``end``, oldest first."""
    return [end - dt.timedelta(days=days - 1 - i) for i in range(days)]


def _window_sum(column: str, start: dt.date) -> Coalesce:
    """The sum of ``column`` over one workbook's days since ``start``: one range of the unique index."""
    rows = (
        WorkbookDailyStat.objects.filter(workbook_id=OuterRef("pk"), date__gte=start)
        .order_by()
        .values("workbook_id")
        .annotate(total=Sum(column))
        .values("total")
    )
    return Coalesce(Subquery(rows, output_field=IntegerField()), 0)


@dataclass
class Series:
    dates: list[dt.date]
    views: list[int]
    favorites: list[int]

    @property
    def total_views(self) -> int:
        return sum(self.views)

    @property
    def total_favorites(self) -> int:
        return sum(self.favorites)


def _series(end: dt.date, days: int, rows: Iterable[tuple[dt.date, int, int]]) -> Series:
    by_day = {date: (views, favorites) for date, views, favorites in rows}
    dates = days_back(end, days)
    return Series(
        dates=dates,
        views=[by_day.get(d, (0, 0))[0] for d in dates],
        favorites=[by_day.get(d, (0, 0))[1] for d in dates],
    )


@dataclass
class MinePage:
    sort: str
    page: int
    rows: list[tuple[Workbook, Series]]
    has_next: bool
    totals: dict[str, int]
    daily: Series  # the author's whole 30 days, all workbooks summed
    end: dt.date = field(default_factory=today)


def _days_of(*, ids: list[int], start: dt.date, end: dt.date) -> list[tuple[dt.date, int, int]]:
    """The days of these workbooks summed per date, read as one short range of the unique (workbook_id,
    date) index per workbook: at most len(ids) x the window's days entries.

    On PostgreSQL a LATERAL join per id keeps it so: planned as one ``workbook_id IN (...)`` filter, the
    planner may read the whole site's window from ``workbooks_dailystat_date_idx`` instead whenever the
    ids are a noticeable share of the active workbooks, a cost that grows with the gallery."""
    if not ids:
        return []
    if connection.vendor == "postgresql":
        table = WorkbookDailyStat._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT s.date, SUM(s.views), SUM(s.favorites) FROM unnest(%s::bigint[]) AS w(id) "  # noqa: S608 (our table name)
                f"CROSS JOIN LATERAL (SELECT date, views, favorites FROM {table} "
                f"WHERE workbook_id = w.id AND date >= %s AND date <= %s) s GROUP BY s.date",
                [ids, start, end],
            )
            return [(date, int(v), int(f)) for date, v, f in cursor.fetchall()]
    return list(
        WorkbookDailyStat.objects.filter(workbook_id__in=ids, date__gte=start, date__lte=end)
        .order_by()
        .values("date")
        .annotate(v=Sum("views"), f=Sum("favorites"))
        .values_list("date", "v", "f")
    )


def parse_mine_params(*, sort: str | None, page: str | None) -> tuple[str, int]:
    chosen = sort if sort in MINE_SORTS else MINE_DEFAULT_SORT
    try:
        number = int(page or 1)
    except ValueError:
        number = 1
    return chosen, max(1, min(number, 10_000))


def author_workbooks(*, user: User, sort: str, page: int, per_page: int = MINE_PER_PAGE) -> MinePage:
    """The author's workbooks, every visibility and drafts, one page sorted by ``MINE_SORTS[sort]``, each
    with its last 30 days; and the author's totals. Four queries whatever the page size.

    Offset pages: the order is by computed sums, which no index holds; the cost of a page is the author's
    own workbooks x 30 index entries (the sort needs them all), not the gallery's size."""
    end = today()
    start = end - dt.timedelta(days=WINDOW_DAYS - 1)
    # The author's workbooks (ids and all-time counters, from the author_id index), then their 30 days.
    owned = list(
        Workbook.objects.filter(author=user).values_list("id", "view_count", "favorite_count", "embed_broken")
    )
    totals = {
        "workbooks": len(owned),
        "views_all_time": sum(row[1] for row in owned),
        "favorites_all_time": sum(row[2] for row in owned),
        "broken": sum(1 for row in owned if row[3]),
    }
    daily = _series(end, WINDOW_DAYS, _days_of(ids=[row[0] for row in owned], start=start, end=end))
    totals["views_30"], totals["favorites_30"] = daily.total_views, daily.total_favorites
    offset = (page - 1) * per_page
    found = list(
        Workbook.objects.filter(author=user)
        .annotate(views_30=_window_sum("views", start), favorites_30=_window_sum("favorites", start))
        .defer("description", "tag_names")
        .order_by(*MINE_SORTS[sort])[offset : offset + per_page + 1]
    )
    has_next, found = len(found) > per_page, found[:per_page]
    per_workbook: dict[int, list[tuple[dt.date, int, int]]] = {w.pk: [] for w in found}
    if found:
        for workbook_id, date, views, favorites in WorkbookDailyStat.objects.filter(
            workbook_id__in=list(per_workbook), date__gte=start, date__lte=end
        ).values_list("workbook_id", "date", "views", "favorites"):
            per_workbook[workbook_id].append((date, views, favorites))
    rows = [(w, _series(end, WINDOW_DAYS, per_workbook[w.pk])) for w in found]
    return MinePage(sort=sort, page=page, rows=rows, has_next=has_next, totals=totals, daily=daily, end=end)


def workbook_for_stats(*, pk: int, user: User | AnonymousUser) -> Workbook:
    """The workbook if ``user`` is its author or staff; the same 404 as a missing one for anyone else."""
    workbook = Workbook.objects.select_related("author").filter(pk=pk).first()
    if workbook is None or not user.is_authenticated:
        raise Http404("No such workbook.")
    if workbook.author_id != user.pk and not user.is_staff:
        raise Http404("No such workbook.")
    return workbook


def workbook_days(*, workbook: Workbook, days: int = MAX_DAYS) -> Series:
    """One workbook's last ``days`` days (at most MAX_DAYS rows of the unique index)."""
    end = today()
    start = end - dt.timedelta(days=days - 1)
    rows = WorkbookDailyStat.objects.filter(
        workbook_id=workbook.pk, date__gte=start, date__lte=end
    ).values_list("date", "views", "favorites")
    return _series(end, days, rows)


def last(series: Series, days: int) -> Series:
    return Series(dates=series.dates[-days:], views=series.views[-days:], favorites=series.favorites[-days:])


def trending_rank(*, workbook: Workbook) -> int | None:
    """1-based place in the trending list; None when it is not there (not listed, no score) or further than
    TRENDING_RANK_LIMIT (the count stops there, so a workbook far down costs no more than the limit)."""
    if not workbook.is_listed or workbook.trending_score <= 0:  # is_listed: not broken either
        return None
    score = workbook.trending_score
    ahead = (
        Workbook.objects.listed()
        .filter(Q(trending_score__gt=score) | Q(trending_score=score, id__gt=workbook.pk))
        .order_by("-trending_score", "-id")
        .values("id")[:TRENDING_RANK_LIMIT]
    )
    count = ahead.count()
    return None if count >= TRENDING_RANK_LIMIT else count + 1


def rank_among_author(*, workbook: Workbook) -> dict[str, int]:
    """Where the workbook sits among its author's workbooks by all-time views and favorites (1 = first)."""
    found = Workbook.objects.filter(author_id=workbook.author_id).aggregate(
        of=Count("id"),
        views_ahead=Count("id", filter=Q(view_count__gt=workbook.view_count)),
        favorites_ahead=Count("id", filter=Q(favorite_count__gt=workbook.favorite_count)),
    )
    return {
        "of": found["of"],
        "by_views": found["views_ahead"] + 1,
        "by_favorites": found["favorites_ahead"] + 1,
    }
