"""Author analytics: /me/workbooks/ and /workbooks/<id>/stats/, their access rules, numbers, query budgets
and (PostgreSQL) the plans at five years of days."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests.factories import UserFactory, WorkbookFactory
from workbooks import analytics
from workbooks.models import Visibility, Workbook, WorkbookDailyStat

# Days ending today, built by the test and by the page: on the fixed clock, never across midnight.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]
MINE = reverse("workbooks:mine")


def stats_url(workbook: Workbook, **params) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return reverse("workbooks:stats", args=[workbook.pk]) + (f"?{query}" if query else "")


def add_days(workbook: Workbook, days: dict[int, tuple[int, int]]) -> None:
    """``{days_ago: (views, favorites)}``"""
    today = timezone.now().date()
    WorkbookDailyStat.objects.bulk_create(
        [
            WorkbookDailyStat(workbook=workbook, date=today - dt.timedelta(days=ago), views=v, favorites=f)
            for ago, (v, f) in days.items()
        ]
    )


def row_order(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'<tr data-workbook="(\d+)"', html)]


@pytest.fixture
def author_world():
    author = UserFactory()
    hot = WorkbookFactory(author=author, title="Hot", view_count=10, favorite_count=1)
    loved = WorkbookFactory(author=author, title="Loved", visibility=Visibility.UNLISTED, view_count=500)
    draft = WorkbookFactory(author=author, title="Draft one", published_at=None)
    private = WorkbookFactory(author=author, title="Private one", visibility=Visibility.PRIVATE)
    other = WorkbookFactory(title="Someone else's")
    add_days(hot, {0: (50, 0), 3: (30, 1), 29: (20, 0), 30: (1000, 0), 400: (5000, 9)})
    add_days(loved, {1: (5, 7), 10: (5, 2)})
    add_days(other, {0: (999, 99)})
    return {"author": author, "hot": hot, "loved": loved, "draft": draft, "private": private, "other": other}


# --- /me/workbooks/ ---------------------------------------------------------------------------------------


def test_my_workbooks_needs_a_login(client):
    response = client.get(MINE)
    assert response.status_code == 302 and reverse("accounts:login") in response["Location"]


def test_my_workbooks_lists_every_visibility_with_30_day_numbers(client, author_world):
    client.force_login(author_world["author"])
    response = client.get(MINE)
    html = response.content.decode()
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"] or "private" in response["Cache-Control"]
    for key in ("hot", "loved", "draft", "private"):
        assert f'data-workbook="{author_world[key].pk}"' in html
    assert f'data-workbook="{author_world["other"].pk}"' not in html
    # Hot: 50 + 30 + 20 in the window; the day 30 days ago and older are outside it.
    mine = response.context["mine"]
    numbers = {w.pk: (w.views_30, w.favorites_30) for w, _ in mine.rows}
    assert numbers[author_world["hot"].pk] == (100, 1)
    assert numbers[author_world["loved"].pk] == (10, 9)
    assert numbers[author_world["draft"].pk] == (0, 0)
    assert mine.totals["views_30"] == 110 and mine.totals["favorites_30"] == 10
    assert mine.totals["workbooks"] == 4
    series = dict(mine.rows)[author_world["hot"]]
    assert len(series.views) == 30 and series.views[-1] == 50 and series.views[0] == 20
    assert html.count('class="sparkline"') == 2 * 4 + 2  # each row, and the totals
    assert "<script" not in html.split("<main", 1)[1].split("</main>", 1)[0]


def test_my_workbooks_sorts_by_the_30_day_numbers(client, author_world):
    client.force_login(author_world["author"])
    w = author_world
    assert row_order(client.get(MINE).content.decode())[:2] == [w["hot"].pk, w["loved"].pk]
    by_fav = row_order(client.get(MINE, {"sort": "favorites"}).content.decode())
    assert by_fav[:2] == [w["loved"].pk, w["hot"].pk]
    by_title = row_order(client.get(MINE, {"sort": "title"}).content.decode())
    assert by_title == [w["draft"].pk, w["hot"].pk, w["loved"].pk, w["private"].pk]
    # An unknown sort or page falls back instead of failing.
    assert client.get(MINE, {"sort": "nope", "page": "x"}).status_code == 200


def test_my_workbooks_pages(client):
    author = UserFactory()
    workbooks = WorkbookFactory.create_batch(7, author=author)
    for i, workbook in enumerate(workbooks):
        add_days(workbook, {0: (i + 1, 0)})
    client.force_login(author)
    mine = analytics.author_workbooks(user=author, sort="views", page=1, per_page=3)
    assert [w.pk for w, _ in mine.rows] == [w.pk for w in workbooks[::-1][:3]] and mine.has_next
    last = analytics.author_workbooks(user=author, sort="views", page=3, per_page=3)
    assert [w.pk for w, _ in last.rows] == [workbooks[0].pk] and not last.has_next


# --- /workbooks/<id>/stats/ -------------------------------------------------------------------------------


def test_stats_page_is_for_the_author_and_staff_only(client, author_world, staff_user):
    hot = author_world["hot"]
    assert client.get(stats_url(hot)).status_code == 404  # anonymous
    client.force_login(UserFactory())
    assert client.get(stats_url(hot)).status_code == 404
    assert client.get(stats_url(author_world["private"])).status_code == 404
    assert client.get(reverse("workbooks:stats", args=[999999])).status_code == 404
    client.force_login(author_world["author"])
    assert client.get(stats_url(author_world["draft"])).status_code == 200
    client.force_login(staff_user)
    assert client.get(stats_url(hot)).status_code == 200


@pytest.mark.parametrize("days", [7, 30, 90, 365])
def test_stats_page_draws_the_period_as_svg(client, author_world, days):
    client.force_login(author_world["author"])
    response = client.get(stats_url(author_world["hot"], days=days))
    html = response.content.decode()
    assert response.status_code == 200 and response.context["days"] == days
    series = response.context["series"]
    assert len(series.dates) == days and series.dates[-1] == timezone.now().date()
    expected_views = {7: 80, 30: 100, 90: 1100, 365: 1100}[days]
    assert series.total_views == expected_views
    assert html.count('<svg xmlns="http://www.w3.org/2000/svg"') == 2
    assert f"Views per day, last {days} days" in html and f"Favorites per day, last {days} days" in html
    # Totals for every period, and the all-time counters.
    totals = response.context["totals"]
    assert [totals[p].total_views for p in analytics.PERIODS] == [80, 100, 1100, 1100]


def test_stats_period_falls_back_on_nonsense(client, author_world):
    client.force_login(author_world["author"])
    for value in ("12", "abc", "-1", "99999999999999999999"):
        response = client.get(stats_url(author_world["hot"], days=value))
        assert response.status_code == 200 and response.context["days"] == 30


def test_trending_rank_and_rank_among_the_authors_workbooks(client, author_world, monkeypatch):
    hot, loved = author_world["hot"], author_world["loved"]
    Workbook.objects.filter(pk=hot.pk).update(trending_score=5.0)
    Workbook.objects.filter(pk=author_world["other"].pk).update(trending_score=9.0)
    ahead_tie = WorkbookFactory(trending_score=5.0)  # same score, higher id: ahead
    WorkbookFactory(trending_score=1.0)
    WorkbookFactory(trending_score=50.0, visibility=Visibility.PRIVATE)  # never in trending
    hot.refresh_from_db()
    assert ahead_tie.pk > hot.pk
    assert analytics.trending_rank(workbook=hot) == 3
    monkeypatch.setattr(analytics, "TRENDING_RANK_LIMIT", 2)
    assert analytics.trending_rank(workbook=hot) is None  # beyond the counted limit
    loved.refresh_from_db()
    assert analytics.trending_rank(workbook=loved) is None  # unlisted
    assert analytics.rank_among_author(workbook=loved) == {"of": 4, "by_views": 1, "by_favorites": 2}
    client.force_login(author_world["author"])
    html = client.get(stats_url(hot)).content.decode()
    assert "Trending, beyond the top 2" in html
    assert "#2 of 4 of your workbooks by views, #1 by favorites" in html


# --- Query budgets --------------------------------------------------------------------------------------


def count_queries(client, url: str) -> tuple[int, list[str]]:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(ctx.captured_queries), [q["sql"] for q in ctx.captured_queries]


# user; the author's totals; the 30-day sums by day; the page; the page's days; the bell's unread count
MINE_BUDGET = 6
# user; the workbook with its author; its 365 days; the trending rank; the rank among the author's; the bell
STATS_BUDGET = 6


@pytest.mark.parametrize("workbooks", [3, 60])
def test_query_budgets_of_the_author_pages(client, workbooks):
    author = UserFactory()
    created = WorkbookFactory.create_batch(workbooks, author=author, trending_score=1.0)
    for workbook in created[:20]:
        add_days(workbook, {0: (3, 1), 5: (2, 0), 200: (9, 9)})
    client.force_login(author)
    urls = [MINE, MINE + "?sort=favorites", MINE + "?sort=title&page=2"]
    for url in urls:
        # A page past the end has no days to read: one query less.
        budget = MINE_BUDGET - (1 if "page=2" in url and workbooks <= analytics.MINE_PER_PAGE else 0)
        count, sql = count_queries(client, url)
        assert count == budget, f"{url}: {count} queries, budget {budget}:\n" + "\n".join(sql)
    count, sql = count_queries(client, stats_url(created[0], days=365))
    assert count == STATS_BUDGET, f"stats: {count} queries, budget {STATS_BUDGET}:\n" + "\n".join(sql)


# --- PostgreSQL: the plans at five years of days ----------------------------------------------------------

FIVE_YEARS = 5 * 365


def plan_of(sql: str, params) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]


def nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def scans(plan: dict) -> list[tuple[str, str, str]]:
    return [
        (n["Node Type"], n.get("Relation Name", ""), n.get("Index Name", ""))
        for n in nodes(plan)
        if "Scan" in n["Node Type"]
    ]


@pytest.fixture
def five_years(db):
    """5,000 workbooks by 30 authors, one of them with 40: the author's workbooks have a row for each of
    the last five years of days (73,000 rows), every other one for each of the last 60 days (297,600):
    at scale the window's days of the whole site far outnumber one author's five years."""
    authors = UserFactory.create_batch(30)
    prolific = authors[0]
    now = timezone.now()  # the test's clock, not the database's
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO workbooks_workbook (author_id, title, slug, description, sigma_embed_url, thumbnail,
                thumbnail_derivatives, visibility, published_at, is_featured, view_count, favorite_count,
                trending_score, tag_names, created_at, updated_at)
            SELECT CASE WHEN i < 40 THEN %s ELSE (%s::bigint[])[1 + i %% 29] END,
                   'Board ' || i, 'board-' || i, '', 'https://app.sigmacomputing.com/embed/1-s' || i, '', '{}',
                   'public', %s::timestamptz - i * interval '1 hour', false, i, i %% 17,
                   CASE WHEN i < 40 THEN 100 + i ELSE i %% 50 END::float8, '', %s, %s
            FROM generate_series(0, 4999) AS i
            """,
            [prolific.pk, [a.pk for a in authors[1:]], now, now, now],
        )
        cursor.execute(
            """
            INSERT INTO workbooks_workbookdailystat (workbook_id, date, views, favorites)
            SELECT w.id, %s::date - d, (w.id + d) %% 40, (w.id + d) %% 3
            FROM workbooks_workbook w
            CROSS JOIN generate_series(0, %s - 1) AS d
            WHERE w.author_id = %s OR d < 60
            """,
            [now.date(), FIVE_YEARS, prolific.pk],
        )
        cursor.execute("ANALYZE workbooks_workbook")
        cursor.execute("ANALYZE workbooks_workbookdailystat")
    return prolific


@pytest.mark.postgres
def test_analytics_queries_read_ranges_of_indexes_at_five_years(five_years):
    """No sequential scan of the statistics: each query reads its workbook's (or its author's workbooks')
    index range of the unique (workbook_id, date) index, however many years of days the table holds."""
    author = five_years
    assert WorkbookDailyStat.objects.count() > 350_000
    workbook = Workbook.objects.filter(author=author, trending_score__gt=0).order_by("id").first()
    captured: list[tuple[str, tuple]] = []
    with CaptureQueriesContext(connection) as ctx:
        analytics.author_workbooks(user=author, sort="views", page=1)
        analytics.author_workbooks(user=author, sort="favorites", page=2, per_page=25)
        analytics.workbook_days(workbook=workbook)
        analytics.trending_rank(workbook=workbook)
        analytics.rank_among_author(workbook=workbook)
    for query in ctx.captured_queries:
        captured.append(query["sql"])
    assert len(captured) == 11
    allowed = {
        "workbooks_dailystat_pair_uniq",
        "workbooks_listed_trending_idx",
        "workbooks_workbook_pkey",
        # listed()'s anti-join on inactive authors (the planner may probe it or scan the 31 users).
        "accounts_user_inactive_idx",
        "accounts_user_pkey",
    }
    for sql in captured:
        found = scans(plan_of(sql, None))
        indexes = {s[2] for s in found if s[2]}
        # (accounts_user: listed()'s anti-join on inactive authors; 31 rows here, a partial index at scale.)
        seq = [s for s in found if s[0] == "Seq Scan" and s[1] != "accounts_user"]
        assert not seq, f"sequential scan in {found} for:\n{sql}"
        assert all(i in allowed or i.startswith("workbooks_workbook_author_id") for i in indexes), (
            f"{found} for:\n{sql}"
        )
        if "workbooks_workbookdailystat" in sql:
            assert "workbooks_dailystat_pair_uniq" in indexes, f"{found} for:\n{sql}"
