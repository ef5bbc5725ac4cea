"""Database performance: the indexes serve the queries, migrations reverse, search behaves, keyset
pagination is exact, and slow statements are logged with their parameters redacted."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from accounts import selectors as account_selectors
from accounts.models import User, ci
from sigma_playground.pagination import count_for_display, keyset_page
from tests.factories import FollowFactory, TagFactory, UserFactory, WorkbookFactory
from workbooks import selectors, services
from workbooks.models import Favorite, Visibility, Workbook

# --- EXPLAIN: each query is served by its index -------------------------------------------------------------


def plan_index_conditions(queryset) -> dict[str, str]:
    """The indexes the plan of ``queryset`` reads, each with its index condition ("" for a whole-index scan)."""
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    found: dict[str, str] = {}

    def walk(node):
        if "Index Name" in node:
            found[node["Index Name"]] = node.get("Index Cond", "")
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return found


def plan_indexes(queryset) -> set[str]:
    return set(plan_index_conditions(queryset))


@pytest.fixture
def small_gallery(db):
    """30,000 workbooks by 40 authors (one INSERT … SELECT), with tags, drafts, unlisted rows, ties,
    follows and favorites: small, but large enough that the planner makes the choices it makes at scale
    (on a few hundred rows every plan reads the same two pages)."""
    authors = UserFactory.create_batch(40)
    author_ids = [a.pk for a in authors]
    tags = [TagFactory(name=n) for n in ("finance", "saas", "ops")]
    rare = TagFactory(name="rare")
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO workbooks_workbook (author_id, title, slug, description, sigma_embed_url, thumbnail,
                thumbnail_derivatives, visibility, published_at, is_featured, view_count, favorite_count,
                trending_score, tag_names, created_at, updated_at)
            SELECT (%s::bigint[])[1 + i %% 40],
                   CASE WHEN i %% 8000 = 5 THEN 'Zebra crossing ' || i
                        WHEN i %% 3 > 0 THEN 'Revenue board ' || i ELSE 'Headcount plan ' || i END,
                   'w' || i, (ARRAY['Quarterly numbers for the board.', 'Pipeline by stage and owner.',
                   'Support tickets by priority.', 'Cloud spend by service.'])[1 + i %% 4],
                   'https://app.sigmacomputing.com/embed/1-b' || i, '', '{}',
                   CASE WHEN i %% 7 = 0 THEN 'unlisted' ELSE 'public' END,
                   CASE WHEN i %% 10 = 0 THEN NULL ELSE now() - i * interval '1 hour' END,
                   i %% 4000 = 0, 0, i %% 13, (i %% 5)::float8,
                   CASE WHEN i %% 3 = 0 THEN 'finance' ELSE '' END, now(), now()
            FROM generate_series(0, 29999) AS i
            """,
            [author_ids],
        )
        cursor.execute(
            "INSERT INTO workbooks_workbooktag (workbook_id, tag_id) "
            "SELECT id, (%s::bigint[])[1 + id %% 3] FROM workbooks_workbook",
            [[t.pk for t in tags]],
        )
        cursor.execute(
            "INSERT INTO workbooks_workbooktag (workbook_id, tag_id) "
            "SELECT id, %s FROM workbooks_workbook WHERE id %% 8000 = 1",
            [rare.pk],
        )
    me = UserFactory()
    for author in authors[:3]:
        FollowFactory(follower=me, followed=author)
    fans = UserFactory.create_batch(60)
    for fan in fans[:50]:  # a well-connected fan: the "following" list is long enough to page
        FollowFactory(follower=fans[-1], followed=fan)
    for fan in fans:  # realistic follow tables: many people, a few follows each
        for author in authors[fan.pk % 5 : fan.pk % 5 + 3]:
            FollowFactory(follower=fan, followed=author)
    workbooks = list(Workbook.objects.listed().order_by("id")[:200])
    Favorite.objects.bulk_create(
        [Favorite(user=fan, workbook=w) for fan in fans for w in workbooks[fan.pk % 100 :][:40]]
    )
    for workbook in workbooks[:30]:
        services.favorite_add(user=me, workbook=workbook)
    services.search_lexemes_refresh()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {"me": me, "author": authors[0], "tag": tags[0]}


def listing_query(params, *, cursor_after: bool = False):
    listing = selectors.workbook_list(params=selectors.resolve_tags(params))
    qs = listing.queryset.order_by(*listing.ordering)
    if cursor_after:
        page = keyset_page(listing.queryset, ordering=listing.ordering, cursor=None, per_page=20)
        deeper = keyset_page(
            listing.queryset, ordering=listing.ordering, cursor=page.next_cursor, per_page=20
        )
        assert deeper.object_list
        from django.db.models import F
        from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan, TupleLessThan

        fields = [o.lstrip("-") for o in listing.ordering]
        last = page.object_list[-1]
        op = TupleLessThan if listing.ordering[0].startswith("-") else TupleGreaterThan
        qs = qs.filter(op(Tuple(*(F(f) for f in fields)), tuple(getattr(last, f) for f in fields)))
    return qs[:21]


P = selectors.ListParams


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "index"),
    [
        (P(q="", tags=(), sort="newest"), "workbooks_listed_newest_idx"),
        (P(q="", tags=(), sort="oldest"), "workbooks_listed_newest_idx"),
        (P(q="", tags=(), sort="popular"), "workbooks_listed_popular_idx"),
        (P(q="", tags=(), sort="trending"), "workbooks_listed_trending_idx"),
        # A tag on a third of the rows: walk the newest index, probing the tag pair per row.
        (P(q="", tags=("finance",), sort="newest"), "workbooks_listed_newest_idx"),
        # A rare tag: its few rows straight from the tag index.
        (P(q="", tags=("rare",), sort="newest"), "workbooks_wbtag_tag_idx"),
        # A rare word: the GIN index; a common word: the newest index, filtered (tested below).
        (P(q="zebra", tags=(), sort="relevance"), {"workbooks_search_idx", "workbooks_listed_newest_idx"}),
        # Sorted by newest at this small size the planner may also walk the newest index and filter (seen in
        # CI after the gallery grew its join to inactive users); both are index-served, never a seq scan.
        # At scale the GIN choice is checked by bench-db.
        (P(q="zebra", tags=(), sort="newest"), {"workbooks_search_idx", "workbooks_listed_newest_idx"}),
        # A common word: either walk the newest index filtering, or the GIN bitmap and a top-N sort.
        (P(q="revenue", tags=(), sort="newest"), {"workbooks_listed_newest_idx", "workbooks_search_idx"}),
    ],
    ids=lambda v: (
        ("|".join(sorted(v)) if isinstance(v, set) else v)
        if isinstance(v, set | str)
        else f"{v.sort}-{v.q or '-'}-{','.join(v.tags) or '-'}"
    ),
)
@pytest.mark.parametrize("deep", [False, True], ids=["page1", "after-cursor"])
def test_list_queries_use_their_index(small_gallery, params, index, deep):
    if deep and (params.sort == "relevance" or params.tags == ("rare",) or params.q == "zebra"):
        return  # a handful of rows: there is no page 2 (the rare-row queries are checked on page 1)
    allowed = index if isinstance(index, set) else {index}
    used = plan_indexes(listing_query(params, cursor_after=deep))
    assert used & allowed, used


@pytest.mark.postgres
@pytest.mark.django_db
def test_profile_feed_favorites_and_follow_queries_use_their_index(small_gallery):
    me, author = small_gallery["me"], small_gallery["author"]
    newest = Workbook.objects.listed().filter(author=author).order_by(*selectors.SORTS["newest"])[:12]
    assert "workbooks_author_listed_idx" in plan_indexes(newest)
    stats = Workbook.objects.listed().filter(author=author).values("author_id")
    stats_plan = plan_indexes(stats)  # the partial author index, or the plain foreign-key index
    assert any(
        name.startswith(("workbooks_author_listed_idx", "workbooks_workbook_author_id"))
        for name in stats_plan
    )
    feed = selectors.feed_for(user=me)
    # Few followed authors: their rows through an author index; many: the newest index, filtered.
    feed_plan = plan_indexes(feed.queryset.order_by(*feed.ordering)[:20])
    assert any(
        name.startswith(
            ("workbooks_author_listed_idx", "workbooks_workbook_author_id", "workbooks_listed_newest")
        )
        for name in feed_plan
    ), feed_plan
    favorites = selectors.favorites_of(user=me)
    assert "workbooks_fav_user_date_idx" in plan_indexes(
        favorites.queryset.order_by(*favorites.ordering)[:20]
    )
    followers = account_selectors.followers_of(user=author).order_by(*account_selectors.FOLLOW_ORDER)[:20]
    assert "accounts_follow_followed_date_idx" in plan_indexes(followers)
    connected = User.objects.order_by("-id").first()
    following = account_selectors.following_of(user=connected).order_by(*account_selectors.FOLLOW_ORDER)[:20]
    assert "accounts_follow_follower_date_idx" in plan_indexes(following)
    featured = Workbook.objects.listed().filter(is_featured=True).order_by(*selectors.SORTS["newest"])[:8]
    assert "workbooks_featured_idx" in plan_indexes(featured)
    login = User.objects.filter(username__lower=ci("someone"))
    assert "accounts_user_username_ci_uniq" in plan_indexes(login)


@pytest.mark.postgres
@pytest.mark.django_db
def test_people_and_sitemap_queries_use_their_index(small_gallery):
    """Issue 18's directory and sitemap reads: /users/ walks the most-followed index, a name search probes the
    trigram index, and the sitemap's keyset probes and ranges read the primary key: never a scan of the
    table, so they cost the same at a million rows."""
    from workbooks import sharing

    with connection.cursor() as cursor:  # people enough that the planner chooses as it does at scale
        cursor.execute(
            """
            INSERT INTO accounts_user (username, email, full_name, bio, avatar, password, is_superuser,
                is_staff, is_active, date_joined, created_at, follower_count, email_verified)
            SELECT 'person' || i, 'person' || i || '@example.com', 'Person Number ' || i, '', '', '!', false,
                   false, true, now(), now(), i % 50, false
            FROM generate_series(1, 20000) AS i
            """
        )
        cursor.execute("ANALYZE accounts_user")
    directory = account_selectors.people().order_by(*account_selectors.PEOPLE_ORDER)[:21]
    used = plan_indexes(directory)
    assert "accounts_user_most_followed_idx" in used, used
    ranked = account_selectors.people(q="zebra").order_by(*account_selectors.PEOPLE_ORDER)[:4]
    used = plan_indexes(ranked)
    assert used & {"accounts_user_name_trgm_idx", "accounts_user_most_followed_idx"}, used
    # The sitemap walk as sharing.sitemap_chunks does it, from the range of the first listed id (ids are far
    # from 0 after other tests on PostgreSQL), and one range read.
    listed = Workbook.objects.listed()
    start = (
        listed.order_by("pk").values_list("pk", flat=True)[0] // sharing.SITEMAP_CHUNK * sharing.SITEMAP_CHUNK
    )
    probe = listed.filter(pk__gte=start).order_by("pk").values_list("pk", flat=True)[:1]
    used = plan_indexes(probe)
    assert "workbooks_workbook_pkey" in used, used
    chunk = listed.filter(pk__gte=start, pk__lt=start + sharing.SITEMAP_CHUNK).order_by("pk")
    used = plan_indexes(chunk.values_list("pk", "slug", "updated_at"))
    assert "workbooks_workbook_pkey" in used, used

    # The trigram index serves the name filter: its condition is the selector's LIKE (the expression is the
    # indexed one), whatever the planner's estimate of the moment (a GIN index's pending list, which every
    # rolled-back test grows, once made a scan of the whole most-followed index look cheaper here). With that
    # index out of the way (the drop is rolled back with the test) and plain index scans off, a plan that
    # does not read the whole table has to look the pattern up in the trigram index.
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX accounts_user_most_followed_idx")
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute("SET LOCAL enable_indexonlyscan = off")
    used = plan_index_conditions(account_selectors.people(q="zebra").values("pk"))
    assert "~~ '%zebra%'" in used.get("accounts_user_name_trgm_idx", ""), used


# --- Migrations -------------------------------------------------------------------------------------------


def index_names() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")
        return {row[0] for row in cursor.fetchall()}


def has_search_column() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_name = 'workbooks_workbook' "
            "AND column_name = 'search_vector'"
        )
        return cursor.fetchone() is not None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_index_migrations_apply_backward_and_forward():
    hand_written = {
        "workbooks_listed_newest_idx",
        "workbooks_search_idx",
        "workbooks_fav_user_date_idx",
        "workbooks_lexeme_prefix_idx",
    }
    follows = {
        "accounts_follow_followed_date_idx",
        "accounts_follow_follower_date_idx",
        "accounts_user_inactive_idx",
    }
    assert hand_written | follows <= index_names() and has_search_column()
    executor = MigrationExecutor(connection)
    executor.migrate([("workbooks", "0001_initial"), ("accounts", "0001_initial")])
    assert not (hand_written | follows) & index_names()
    assert not has_search_column()
    executor = MigrationExecutor(connection)
    # Forward to the latest migrations, so that the tests after this one find every table.
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert hand_written | follows <= index_names() and has_search_column()


def test_index_migrations_are_no_ops_on_sqlite(settings):
    from sigma_playground.migration_ops import PostgresOnlySQL

    class FakeEditor:
        class connection:
            vendor = "sqlite"

        def execute(self, *args, **kwargs):
            raise AssertionError("PostgreSQL-only SQL ran on SQLite")

    op = PostgresOnlySQL(sql="CREATE INDEX CONCURRENTLY x ON y (z)", reverse_sql="DROP INDEX x")
    op.database_forwards("workbooks", FakeEditor(), None, None)
    op.database_backwards("workbooks", FakeEditor(), None, None)


# --- Full-text search semantics (PostgreSQL) -----------------------------------------------------------------


@pytest.fixture
def corpus(db):
    finance = TagFactory(name="finance")
    rows = {
        "forecast": WorkbookFactory(
            title="Revenue forecasting model", description="Quarterly plan.", tags=[finance]
        ),
        "churn": WorkbookFactory(title="Churn rate by cohort", description="Monthly logo churn."),
        "rate_churn": WorkbookFactory(title="Rate of growth", description="Churn appears later here."),
        "headcount": WorkbookFactory(title="Headcount plan", description="Hiring by team."),
        "desc_only": WorkbookFactory(title="Board pack", description="Includes a revenue bridge."),
        "tagged": WorkbookFactory(title="Margins", description="Gross margin.", tags=[finance]),
    }
    services.search_lexemes_refresh()
    return rows


def search_ids(q: str, *, tags: tuple[str, ...] = (), sort: str | None = None) -> list[int]:
    params = selectors.resolve_tags(selectors.parse_list_params(q=q, tags=list(tags), sort=sort))
    listing = selectors.workbook_list(params=params)
    return [w.pk for w in listing.queryset.order_by(*listing.ordering)]


@pytest.mark.postgres
@pytest.mark.django_db
def test_search_semantics(corpus):
    ids = {k: w.pk for k, w in corpus.items()}
    assert search_ids("forecasts") == [ids["forecast"]]  # stemming
    assert set(search_ids("churn")) == {ids["churn"], ids["rate_churn"]}
    assert search_ids('"churn rate"') == [ids["churn"]]  # phrase: adjacent, in order
    assert set(search_ids("headcount or margins")) == {ids["headcount"], ids["tagged"]}
    assert search_ids("churn -cohort") == [ids["rate_churn"]]  # exclusion
    assert search_ids("reven")[:2] and set(search_ids("reven")) == {
        ids["forecast"],
        ids["desc_only"],
    }  # prefix
    assert search_ids("revenue")[0] == ids["forecast"]  # a title match ranks above a description match
    assert set(search_ids("finance")) == {ids["forecast"], ids["tagged"]}  # tag names are searched
    assert search_ids("revenue", tags=("finance",)) == [ids["forecast"]]  # combined with a tag filter
    newest_first = search_ids("churn", sort="newest")
    assert newest_first == sorted(newest_first, reverse=True)  # combined with another sort
    assert search_ids("the") == []  # a stop word alone matches nothing rather than everything
    for odd in ('"', "-", "or", "!!!", "a:b & c | d", "'", "(((", "reven:*"):
        search_ids(odd)  # never a syntax error


@pytest.mark.postgres
@pytest.mark.django_db
def test_renaming_a_tag_updates_search(corpus):
    from workbooks.models import Tag

    services.tag_update(tag=Tag.objects.get(slug="finance"), name="treasury", colour="#123456")
    assert set(search_ids("treasury")) == {corpus["forecast"].pk, corpus["tagged"].pk}
    assert search_ids("finance") == []


# --- Keyset pagination ------------------------------------------------------------------------------------


def walk(listing, per_page: int, between=None) -> list[int]:
    seen: list[int] = []
    cursor = None
    while True:
        page = keyset_page(
            listing.queryset,
            ordering=listing.ordering,
            cursor=cursor,
            per_page=per_page,
            narrow=listing.narrow,
        )
        seen.extend(w.pk for w in page.object_list)
        if between:
            between()
        if not page.has_next:
            return seen
        cursor = page.next_cursor


@pytest.mark.django_db
@pytest.mark.parametrize("sort", ["newest", "oldest", "popular", "trending"])
def test_walking_all_pages_returns_every_visible_row_once_including_ties(sort):
    same_moment = timezone.now() - dt.timedelta(days=1)
    WorkbookFactory.create_batch(7, published_at=same_moment, favorite_count=3, trending_score=1.5)  # ties
    WorkbookFactory.create_batch(6, favorite_count=0)
    WorkbookFactory(visibility=Visibility.PRIVATE)
    WorkbookFactory(published_at=None)
    listing = selectors.workbook_list(params=P(q="", tags=(), sort=sort))
    expected = list(listing.queryset.order_by(*listing.ordering).values_list("pk", flat=True))
    assert len(expected) == 13
    for per_page in (1, 2, 5, 13, 20):
        assert walk(listing, per_page) == expected, per_page


@pytest.mark.django_db
def test_rows_inserted_while_walking_never_duplicate_earlier_ones():
    WorkbookFactory.create_batch(9)
    listing = selectors.workbook_list(params=P(q="", tags=(), sort="newest"))
    seen = walk(listing, 2, between=lambda: WorkbookFactory())  # a new newest row after every page
    assert len(seen) == len(set(seen)) == 9


@pytest.fixture
def followed_gallery():
    """A reader following four authors: ties on the publish moment across authors, every kind of row that
    must stay out (private, unlisted, draft, an inactive author's, an unfollowed author's)."""
    me = UserFactory()
    authors = UserFactory.create_batch(4)
    for author in authors:
        FollowFactory(follower=me, followed=author)
    same_moment = timezone.now() - dt.timedelta(hours=5)
    for i, author in enumerate(authors):
        WorkbookFactory.create_batch(2, author=author, published_at=same_moment)
        WorkbookFactory.create_batch(i + 1, author=author)
        WorkbookFactory(author=author, visibility=Visibility.PRIVATE)
        WorkbookFactory(author=author, visibility=Visibility.UNLISTED)
        WorkbookFactory(author=author, published_at=None)
    gone = UserFactory()
    FollowFactory(follower=me, followed=gone)
    WorkbookFactory.create_batch(3, author=gone)
    gone.is_active = False
    gone.save(update_fields=["is_active"])
    WorkbookFactory.create_batch(3)  # by people nobody here follows
    return {"me": me, "authors": authors}


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_feed_read_per_author_walks_every_row_once_both_ways(followed_gallery):
    listing = selectors.feed_for(user=followed_gallery["me"])
    assert listing.narrow is not None
    expected = list(listing.queryset.order_by(*listing.ordering).values_list("pk", flat=True))
    assert len(expected) == 2 * 4 + (1 + 2 + 3 + 4)
    for per_page in (1, 2, 3, 7, 18, 40):
        assert walk(listing, per_page) == expected, per_page
    pages = [
        keyset_page(
            listing.queryset, ordering=listing.ordering, cursor=None, per_page=4, narrow=listing.narrow
        )
    ]
    while pages[-1].has_next:
        pages.append(
            keyset_page(
                listing.queryset,
                ordering=listing.ordering,
                cursor=pages[-1].next_cursor,
                per_page=4,
                narrow=listing.narrow,
            )
        )
    for later, earlier in zip(pages[2:], pages[1:], strict=False):
        back = keyset_page(
            listing.queryset,
            ordering=listing.ordering,
            cursor=later.previous_cursor,
            per_page=4,
            narrow=listing.narrow,
        )
        assert [w.pk for w in back.object_list] == [w.pk for w in earlier.object_list]


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_feed_reads_each_followed_authors_index_range(small_gallery, monkeypatch):
    listing = selectors.feed_for(user=small_gallery["me"])
    assert listing.narrow is not None
    narrowed = listing.narrow(listing.queryset, None, True, 21).order_by(*listing.ordering)[:20]
    assert "workbooks_author_listed_idx" in plan_indexes(narrowed)
    monkeypatch.setattr(selectors, "FEED_PER_AUTHOR_MAX_FOLLOWS", 0)  # too many follows: one planned query
    assert selectors.feed_for(user=small_gallery["me"]).narrow is None


@pytest.mark.django_db
def test_previous_links_walk_back_to_the_same_pages():
    WorkbookFactory.create_batch(7)
    listing = selectors.workbook_list(params=P(q="", tags=(), sort="popular"))
    pages = [keyset_page(listing.queryset, ordering=listing.ordering, cursor=None, per_page=3)]
    while pages[-1].has_next:
        pages.append(
            keyset_page(listing.queryset, ordering=listing.ordering, cursor=pages[-1].next_cursor, per_page=3)
        )
    assert [p.number for p in pages] == [1, 2, 3]
    back = keyset_page(
        listing.queryset, ordering=listing.ordering, cursor=pages[2].previous_cursor, per_page=3
    )
    assert [w.pk for w in back.object_list] == [w.pk for w in pages[1].object_list]
    assert back.number == 2 and back.has_previous and back.previous_cursor is None  # page 1 needs no cursor


@pytest.mark.django_db
def test_totals_are_exact_below_the_limit_and_honest_above():
    WorkbookFactory.create_batch(12)
    if connection.vendor == "postgresql":
        analyze()  # statistics left by earlier tests' 30,000 rows would make the planner guess high
    qs = Workbook.objects.listed()
    assert (count_for_display(qs, limit=20).value, count_for_display(qs, limit=20).exact) == (12, True)
    above = count_for_display(qs, limit=5)
    assert not above.exact and above.value >= 6


def analyze() -> None:
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE workbooks_workbook, accounts_user")


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_planner_estimate_replaces_the_count_only_once_the_table_has_statistics():
    from django.test.utils import CaptureQueriesContext

    WorkbookFactory.create_batch(30)
    qs = Workbook.objects.listed()

    def counted() -> tuple[object, list[str]]:
        with CaptureQueriesContext(connection) as queries:
            total = count_for_display(qs, limit=5)
        return total, [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]

    analyze()
    total, counts = counted()
    assert counts == [] and not total.exact and 20 <= total.value <= 40, (total, counts)
    with connection.cursor() as cursor:  # as a table never analyzed looks (rolled back with the test)
        cursor.execute("UPDATE pg_class SET reltuples = -1 WHERE oid = 'workbooks_workbook'::regclass")
    total, counts = counted()
    assert counts and not total.exact and total.value >= 6


def test_approximate_labels():
    from sigma_playground.pagination import Total
    from workbooks.templatetags.gallery import total_label

    assert total_label(Total(1, True)) == "1 workbook"
    assert total_label(Total(1234, True)) == "1,234 workbooks"
    assert total_label(Total(1_234_567, False)) == "about 1.2 million workbooks"
    assert total_label(Total(12_345, False)) == "about 12,000 workbooks"


# --- Query instrumentation ----------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db
def test_slow_query_is_logged_redacted_and_aggregated(settings, caplog):
    from monitoring.models import SlowQuery
    from sigma_playground.db_instrumentation import flush_slow_statements

    flush_slow_statements()  # whatever earlier slow statements this thread queued
    SlowQuery.objects.all().delete()
    settings.DB_SLOW_QUERY_SECONDS = 0.05
    with caplog.at_level(logging.WARNING, logger="sigma_playground.db.slow"), connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(0.1), %s::text AS secret", ["hunter2-password"])
        cursor.execute("SELECT pg_sleep(0.1), %s::text AS secret", ["another-secret"])
    lines = [r.getMessage() for r in caplog.records if r.name == "sigma_playground.db.slow"]
    assert len(lines) == 2
    assert "pg_sleep" in lines[0] and "[1 redacted]" in lines[0]
    assert "hunter2" not in " ".join(lines) and "another-secret" not in " ".join(lines)
    assert flush_slow_statements() == 2
    row = SlowQuery.objects.get()
    assert row.calls == 2 and row.max_seconds >= 0.1 and row.mean_seconds >= 0.1
    assert "hunter2" not in row.sql


def test_statement_classification_and_fingerprints():
    from sigma_playground.db_instrumentation import classify, fingerprint

    assert classify('SELECT "a" FROM "workbooks_workbook" WHERE id = %s') == ("select", "workbooks_workbook")
    assert classify('INSERT INTO "accounts_follow" (a) VALUES (%s)') == ("insert", "accounts_follow")
    assert classify('UPDATE "workbooks_workbook" SET x = 1') == ("update", "workbooks_workbook")
    assert classify('DELETE FROM "workbooks_favorite" WHERE id = 1') == ("delete", "workbooks_favorite")
    assert classify("SAVEPOINT s1") == ("other", "other")
    assert fingerprint("SELECT * FROM t WHERE id IN (%s, %s, %s)") == fingerprint(
        "SELECT * FROM t WHERE id IN (%s)"
    )
    assert fingerprint("SELECT * FROM t WHERE a = 'x'") == fingerprint("SELECT * FROM t WHERE a = 'yy'")


@pytest.mark.django_db
def test_every_query_is_timed_with_bounded_labels(client):
    from prometheus_client import REGISTRY

    def observed(table: str) -> float:
        return (
            REGISTRY.get_sample_value(
                "sigma_db_query_duration_seconds_count", {"statement": "select", "table": table}
            )
            or 0.0
        )

    WorkbookFactory()
    before = observed("workbooks_workbook")
    assert client.get("/workbooks/").status_code == 200
    assert observed("workbooks_workbook") > before
