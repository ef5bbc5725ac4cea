"""Database benchmark of the gallery's read paths at 100,000 and 1,000,000 workbooks (``make bench-db``).

Not a test: it prints what the queries cost on this machine, next to a naive baseline, and checks the
goals of the performance issue. ``DATABASE_URL`` names a scratch PostgreSQL database, which must have
"bench" in its name (the shared databases are refused). Subcommands::

    python -m bench.bench_db createdb                          # drop the scratch database if it exists, create it
    python -m bench.bench_db measure --label 100k --results F  # measure the loaded data, add it to F (JSON)
    python -m bench.bench_db summary --results F               # goal checks (PASS/FAIL) over every size in F
    python -m bench.bench_db dropdb                            # drop the scratch database

``measure`` first runs ``VACUUM ANALYZE`` (the loader analyzes; vacuum sets the visibility map that
index-only scans need) and rebuilds the search lexeme table (the daily beat task), then picks realistic
parameters (once: later sizes reuse them so the same tags, words and people are measured at every size):
the most and the least used tag; three search words, the most frequent tag word (common), the tag word
nearest 5% of the listed workbooks (medium: the hardest case for the newest-first candidate walk) and the
rarest word; the most prolific author; a reader following 20 authors.

What is timed is the real code path (the selectors, ``keyset_page``, ``workbook_list_total``,
``search.build_tsquery`` through ``ranked``/``matches``), and what is measured is database time: the sum,
over every SQL statement one operation issues, of the wall time of ``cursor.execute`` (Django's
``connection.execute_wrapper``; psycopg's client cursor returns once the whole result has arrived, so this
is execution plus transfer, without building model instances). For each operation the statements of the
last run are then run once more under ``EXPLAIN (ANALYZE, FORMAT JSON)``: the indexes (or sequential scans)
of each plan are printed, with EXPLAIN's execution time as a cross-check.

"Search uses the GIN index" is checked per search operation: a total answered from the planner's estimate
scans nothing and passes; a plan that reads ``workbooks_search_idx`` passes; a plan that does not (a word in
half the rows: walking the newest-first index until 200 candidates match reads a few hundred rows, where the
GIN bitmap would hold every match) is run again with only bitmap scans allowed, and passes only if that GIN
plan is measured slower than the one the planner chose.

The naive baseline runs in the same process on the same data: inside one transaction every hand-written
index (the ``CREATE INDEX`` statements of the project's migrations; primary keys, unique constraints and
Django's automatic foreign-key indexes stay) is dropped, the naive forms run (``OFFSET`` pagination with
the same ``ORDER BY``, ``COUNT(*)`` of the whole filtered set, ``icontains`` search on title or
description, newest first), and the transaction is rolled back, which brings the indexes back.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

PROTECTED_DATABASES = {"sigma_playground", "sigma_lead", "postgres", "template0", "template1"}
PROJECT_APPS = ("accounts", "workbooks", "monitoring")
DEEP_PAGE = 500
P95_LIMIT_MS = 50.0
DEPTH_LIMIT = 1.5  # page 500 / page 1
SCALE_LIMIT = 1.5  # largest size / smallest size
SCALE_FLOOR_MS = 2.0  # both under this: a ratio of tiny numbers says nothing, count it as a pass
GIN_INDEX = "workbooks_search_idx"
MEDIUM_SHARE = 0.05  # the medium search word is in about this share of the listed workbooks
SEARCH_WORDS = ("common", "medium", "rare")


def say(message: str = "") -> None:
    print(message, flush=True)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# =========================================================================================================
# Scratch database
# =========================================================================================================


def scratch_database() -> tuple[str, str]:
    """(URL of the server's maintenance database, scratch database name), from DATABASE_URL."""
    url = os.environ.get("DATABASE_URL", "")
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql"}:
        sys.exit("bench_db: DATABASE_URL must be a postgres:// URL of the scratch database")
    name = parts.path.lstrip("/")
    if (
        not re.fullmatch(r"[A-Za-z0-9_]+", name)
        or name in PROTECTED_DATABASES
        or name.startswith("test_")
        or "bench" not in name
    ):
        sys.exit(
            f"bench_db: refusing to use database {name!r}: the scratch database needs 'bench' in its name"
        )
    return urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, "")), name


def _admin(statements: Sequence[str]) -> None:
    import psycopg
    from psycopg import sql

    maintenance, name = scratch_database()
    with psycopg.connect(maintenance, autocommit=True) as conn:
        for statement in statements:
            conn.execute(sql.SQL(statement).format(sql.Identifier(name)))


def createdb() -> None:
    _, name = scratch_database()
    _admin(["DROP DATABASE IF EXISTS {} WITH (FORCE)", "CREATE DATABASE {}"])
    say(f"Scratch database {name} created (dropped first if it existed).")


def dropdb() -> None:
    _, name = scratch_database()
    _admin(["DROP DATABASE IF EXISTS {} WITH (FORCE)"])
    say(f"Scratch database {name} dropped.")


# =========================================================================================================
# Timing and plans
# =========================================================================================================


def setup_django() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sigma_playground.settings")
    import django

    django.setup()
    # Naive baseline statements can take seconds: the slow-statement log would print each one's SQL.
    logging.getLogger("sigma_playground.db.slow").setLevel(logging.ERROR)


class Recorder:
    """``connection.execute_wrapper``: the SQL, parameters and execute() time of every statement."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, Any, float]] = []

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.statements.append((sql, params, time.perf_counter() - started))

    def take(self) -> list[tuple[str, Any, float]]:
        taken, self.statements = self.statements, []
        return taken


def percentile(samples: Sequence[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass
class Timing:
    n: int
    p50: float
    p95: float
    statements: list[tuple[str, Any, float]]


def sample(
    fn: Callable[[], object], *, runs: int, warmup: int, budget_s: float | None = None, min_runs: int = 10
) -> Timing:
    """Run ``fn`` ``runs`` times (after ``warmup`` untimed runs) and record its database time per run.
    With a budget, stop early once ``budget_s`` seconds have passed and at least ``min_runs`` ran."""
    from django.db import connection

    recorder = Recorder()
    samples: list[float] = []
    statements: list[tuple[str, Any, float]] = []
    with connection.execute_wrapper(recorder):
        for _ in range(warmup):
            fn()
            recorder.take()
        started = time.perf_counter()
        while len(samples) < runs:
            fn()
            statements = recorder.take()
            samples.append(1000 * sum(seconds for _, _, seconds in statements))
            if (
                budget_s is not None
                and len(samples) >= min_runs
                and time.perf_counter() - started >= budget_s
            ):
                break
    return Timing(len(samples), percentile(samples, 50), percentile(samples, 95), statements)


def statement_role(sql: str) -> str:
    if sql.lstrip().upper().startswith("EXPLAIN"):
        return "estimate"
    if "pg_class" in sql:
        return "statistics"
    if "workbooks_searchlexeme" in sql:
        return "prefix"
    if "_prefetch_related_val" in sql:
        return "tags"
    if 'FROM "workbooks_tag" WHERE' in sql:
        return "tag lookup"
    if sql.lstrip().upper().startswith("SELECT COUNT(*)"):
        return "count"
    return "main"


def _plan_nodes(node: dict[str, Any]) -> Iterator[str]:
    kind = node.get("Node Type", "")
    if "Index Name" in node:
        suffix = {"Index Only Scan": " (index only)", "Bitmap Index Scan": " (bitmap)"}.get(kind, "")
        if node.get("Scan Direction") == "Backward":
            suffix += " (backward)"
        yield node["Index Name"] + suffix
    elif kind == "Seq Scan":
        yield f"Seq Scan on {node['Relation Name']}"
    for child in node.get("Plans", ()):
        yield from _plan_nodes(child)


def explain(statements: Sequence[tuple[str, Any, float]]) -> list[dict[str, Any]]:
    """Each statement (but EXPLAINs and the card tags prefetch) once under EXPLAIN ANALYZE."""
    from django.db import connection

    plans = []
    with connection.cursor() as cursor:
        for sql, params, _ in statements:
            if sql.lstrip().upper().startswith("EXPLAIN"):
                continue
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
            document = cursor.fetchone()[0]
            if isinstance(document, str):
                document = json.loads(document)
            root = document[0]
            plans.append(
                {
                    "role": statement_role(sql),
                    "indexes": list(dict.fromkeys(_plan_nodes(root["Plan"]))),
                    "ms": root["Execution Time"],
                }
            )
    return plans


def explain_forced_gin(statements: Sequence[tuple[str, Any, float]]) -> dict[str, Any] | None:
    """What the GIN plan the planner turned down would have cost: the scanning statements once more under
    EXPLAIN ANALYZE in a transaction that drops every other hand-written index and disables plain, index-only
    and sequential scans (so the GIN index, which can only be read through a bitmap, is the way in), then
    rolls back."""
    from django.db import connection, transaction

    scans = [
        (sql, params)
        for sql, params, _ in statements
        if statement_role(sql) in {"main", "count"} and not sql.lstrip().upper().startswith("EXPLAIN")
    ]
    if not scans:
        return None
    indexes: list[str] = []
    ms = 0.0
    with transaction.atomic(), connection.cursor() as cursor:
        for name in hand_written_indexes():
            if name != GIN_INDEX:
                cursor.execute(f"DROP INDEX {connection.ops.quote_name(name)}")
        for setting in ("enable_indexscan", "enable_indexonlyscan", "enable_seqscan"):
            cursor.execute(f"SET LOCAL {setting} = off")
        for sql, params in scans:
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
            document = cursor.fetchone()[0]
            root = (json.loads(document) if isinstance(document, str) else document)[0]
            indexes += [i for i in _plan_nodes(root["Plan"]) if i not in indexes]
            ms += root["Execution Time"]
        transaction.set_rollback(True)
    return {"indexes": indexes, "ms": ms}


def plan_text(plans: Sequence[dict[str, Any]]) -> str:
    parts = [f"{p['role']}: {', '.join(p['indexes']) or '-'}" for p in plans if p["role"] != "tags"]
    return "; ".join(parts)


def plan_indexes(plans: Sequence[dict[str, Any]]) -> set[str]:
    return {name.split(" ")[0] for p in plans for name in p["indexes"]}


# =========================================================================================================
# The operations
# =========================================================================================================


@dataclass
class Op:
    key: str
    label: str
    group: str  # list, count, tag, search, profile, feed, analytics
    ours: Callable[[], object]
    naive: Callable[[], object]
    sort: str | None = None
    page: int | None = None


def build_ops(params: dict[str, Any]) -> tuple[list[Op], list[str]]:
    """The operations to time, and sanity-check messages (keyset page 500 == OFFSET page 500)."""
    from django.conf import settings
    from django.db.models import Q

    from accounts import selectors as account_selectors
    from accounts.models import User
    from sigma_playground.pagination import encode_cursor, keyset_page
    from workbooks import selectors
    from workbooks.models import Workbook

    per_page = settings.PAGE_SIZE

    def resolved(*, q: str | None = None, tags: Sequence[str] = (), sort: str | None = None):
        return selectors.resolve_tags(selectors.parse_list_params(q=q, tags=list(tags), sort=sort))

    def ours_page(*, q=None, tags=(), sort=None, cursor=None):
        def run():
            listing = selectors.workbook_list(params=resolved(q=q, tags=tags, sort=sort))
            return keyset_page(listing.queryset, ordering=listing.ordering, cursor=cursor, per_page=per_page)

        return run

    def ours_total(*, q=None, tags=(), sort=None):
        params = resolved(q=q, tags=tags, sort=sort)  # the view looks the tags up once, for the page
        return lambda: selectors.workbook_list_total(params=params)

    def naive_page(*, tags=(), sort=None, page=1):
        offset = (page - 1) * per_page

        def run():
            listing = selectors.workbook_list(params=resolved(tags=tags, sort=sort))
            return list(listing.queryset.order_by(*listing.ordering)[offset : offset + per_page])

        return run

    def naive_total(*, tags=()):
        params = resolved(tags=tags)
        return lambda: selectors.workbook_list(params=params).queryset.count()

    def naive_search(word: str):
        return selectors.with_cards(
            Workbook.objects.listed().filter(Q(title__icontains=word) | Q(description__icontains=word))
        ).order_by(*selectors.SORTS["newest"])

    def deep_cursor(sort: str) -> tuple[str, list[int]]:
        listing = selectors.workbook_list(params=resolved(sort=sort))
        fields = [o.lstrip("-") for o in listing.ordering]
        ordered = listing.queryset.order_by(*listing.ordering)
        boundary = ordered.values_list(*fields)[(DEEP_PAGE - 1) * per_page - 1]
        offset = (DEEP_PAGE - 1) * per_page
        expected = list(ordered.values_list("id", flat=True)[offset : offset + per_page])
        return encode_cursor(list(boundary), forward=True, page=DEEP_PAGE), expected

    ops: list[Op] = []
    checks: list[str] = []
    for sort in selectors.SORTS:
        ops.append(
            Op(
                f"list.{sort}.p1",
                f"list {sort} p1",
                "list",
                ours_page(sort=sort),
                naive_page(sort=sort),
                sort,
                1,
            )
        )
        cursor, expected = deep_cursor(sort)
        got = [w.pk for w in ours_page(sort=sort, cursor=cursor)()]
        checks.append(
            f"keyset page {DEEP_PAGE} of {sort} == OFFSET page {DEEP_PAGE}: "
            + ("ok" if got == expected else f"MISMATCH ({got[:3]}... vs {expected[:3]}...)")
        )
        ops.append(
            Op(
                f"list.{sort}.p{DEEP_PAGE}",
                f"list {sort} p{DEEP_PAGE}",
                "list",
                ours_page(sort=sort, cursor=cursor),
                naive_page(sort=sort, page=DEEP_PAGE),
                sort,
                DEEP_PAGE,
            )
        )
    ops.append(Op("list.count", "list total (count)", "count", ours_total(), naive_total()))
    for which in ("common", "rare"):
        slug = params[f"tag_{which}"]
        ops.append(
            Op(
                f"tag.{which}.p1",
                f"tag {which} p1",
                "tag",
                ours_page(tags=[slug]),
                naive_page(tags=[slug]),
                "newest",
                1,
            )
        )
        ops.append(
            Op(
                f"tag.{which}.count",
                f"tag {which} total",
                "tag",
                ours_total(tags=[slug]),
                naive_total(tags=[slug]),
            )
        )
    for which in SEARCH_WORDS:
        word = params[f"word_{which}"]
        ops.append(
            Op(
                f"search.{which}.p1",
                f"search {which} p1",
                "search",
                ours_page(q=word),
                lambda word=word: list(naive_search(word)[:per_page]),
            )
        )
        ops.append(
            Op(
                f"search.{which}.count",
                f"search {which} total",
                "search",
                ours_total(q=word),
                lambda word=word: naive_search(word).count(),
            )
        )
    author = User.objects.get(pk=params["profile_user_id"])
    ops += [
        Op(
            "profile.workbooks",
            "profile workbooks",
            "profile",
            lambda: selectors.profile_workbooks(user=author),
            lambda: selectors.profile_workbooks(user=author),
        ),
        Op(
            "profile.stats",
            "profile stats",
            "profile",
            lambda: selectors.profile_stats(user=author),
            lambda: selectors.profile_stats(user=author),
        ),
        Op(
            "profile.follows",
            "profile follow counts",
            "profile",
            lambda: account_selectors.follow_counts(user=author),
            lambda: account_selectors.follow_counts(user=author),
        ),
    ]
    reader = User.objects.get(pk=params["feed_user_id"])

    def feed_ours():
        listing = selectors.feed_for(user=reader)
        return keyset_page(
            listing.queryset,
            ordering=listing.ordering,
            cursor=None,
            per_page=per_page,
            narrow=listing.narrow,
        )

    def feed_naive():
        listing = selectors.feed_for(user=reader)
        return list(listing.queryset.order_by(*listing.ordering)[:per_page])

    ops.append(Op("feed.p1", "feed p1", "feed", feed_ours, feed_naive, "newest", 1))

    # Author analytics (workbooks.analytics) for the most prolific author: /me/workbooks/ (totals, the
    # 30 days by day, the page sorted by 30-day views, the page's days) and /workbooks/<id>/stats/ of their
    # newest workbook (365 days, trending rank, rank among theirs). Naive: the same numbers as one ORM join
    # and GROUP BY over the author's statistics.
    from datetime import timedelta

    from django.db.models import Sum as _Sum

    from workbooks import analytics
    from workbooks.models import WorkbookDailyStat

    newest = Workbook.objects.filter(author=author).order_by("-id").first()

    def analytics_naive_mine():
        start = analytics.today() - timedelta(days=analytics.WINDOW_DAYS - 1)
        rows = (
            Workbook.objects.filter(author=author, daily_stats__date__gte=start)
            .annotate(v=_Sum("daily_stats__views"), f=_Sum("daily_stats__favorites"))
            .order_by("-v", "-id")
        )
        page = list(rows[: analytics.MINE_PER_PAGE])
        days = list(
            WorkbookDailyStat.objects.filter(workbook__author=author, date__gte=start)
            .values("date")
            .annotate(v=_Sum("views"))
        )
        return page, days

    def analytics_stats():
        return (
            analytics.workbook_days(workbook=newest),
            analytics.trending_rank(workbook=newest),
            analytics.rank_among_author(workbook=newest),
        )

    ops.append(
        Op(
            "analytics.mine",
            "author analytics page",
            "analytics",
            lambda: analytics.author_workbooks(user=author, sort="views", page=1),
            analytics_naive_mine,
        )
    )
    ops.append(Op("analytics.stats", "workbook stats page", "analytics", analytics_stats, analytics_stats))
    return ops, checks


# =========================================================================================================
# Parameters and data description
# =========================================================================================================


def pick_params() -> dict[str, Any]:
    """Realistic parameters, chosen from the data: see the module docstring."""
    from django.db import connection
    from django.db.models import Count

    from workbooks.models import Tag, Workbook

    tags = list(
        Tag.objects.annotate(n=Count("workbook_links"))
        .filter(n__gt=0)
        .order_by("-n", "slug")
        .values("slug", "n")
    )
    listed = Workbook.objects.listed().count()
    with connection.cursor() as cursor:
        # Words as people type them (the lexeme table holds stems: "everi", "revenu"). Topical words come
        # from the tag names: the most frequent one is the common word, the one nearest MEDIUM_SHARE of the
        # listed workbooks the medium word (the hardest case for a newest-first candidate walk).
        tag_words = sorted({w for t in tags for w in t["slug"].split("-") if re.fullmatch(r"[a-z]{4,}", w)})
        cursor.execute(
            "SELECT w, l.documents FROM unnest(%s::text[]) AS w "
            "JOIN workbooks_searchlexeme l ON l.word = (ts_lexize('english_stem', w))[1] "
            "ORDER BY l.documents DESC, w",
            [tag_words],
        )
        topical = cursor.fetchall()
        common = topical[0][0]
        medium = min(topical, key=lambda row: (abs(row[1] - MEDIUM_SHARE * listed), row[0]))[0]
        # The rare word: the rarest stem, spelled as it appears in the text of the first listed workbooks.
        cursor.execute(
            "SELECT w FROM (SELECT DISTINCT unnest(regexp_split_to_array(lower(title || ' ' || description), "
            "'[^a-z]+')) AS w FROM (SELECT title, description FROM workbooks_workbook "
            "WHERE visibility = 'public' AND published_at IS NOT NULL ORDER BY id LIMIT 5000) AS s) AS t "
            "JOIN workbooks_searchlexeme l ON l.word = (ts_lexize('english_stem', w))[1] "
            "WHERE length(w) >= 4 ORDER BY l.documents, w LIMIT 1"
        )
        rare = cursor.fetchone()[0]
        # A reader following 20 authors (the closest to 20; follows are random).
        cursor.execute(
            "SELECT follower_id FROM accounts_follow GROUP BY follower_id "
            "ORDER BY abs(count(*) - 20), follower_id LIMIT 1"
        )
        feed_user_id = cursor.fetchone()[0]
    top_author = (
        Workbook.objects.listed()
        .values("author_id")
        .annotate(n=Count("id"))
        .order_by("-n", "author_id")
        .first()
    )
    return {
        "tag_common": tags[0]["slug"],
        "tag_rare": tags[-1]["slug"],
        "word_common": common,
        "word_medium": medium,
        "word_rare": rare,
        "profile_user_id": top_author["author_id"],
        "feed_user_id": feed_user_id,
    }


def describe_params(params: dict[str, Any]) -> list[str]:
    from django.db import connection
    from django.db.models import Count

    from accounts.models import Follow, User
    from workbooks.models import Workbook

    listed = Workbook.objects.listed()
    lines = []
    for which in ("common", "rare"):
        slug = params[f"tag_{which}"]
        lines.append(f"tag {which}: {slug!r} on {listed.filter(tags__slug=slug).count():,} listed workbooks")
    with connection.cursor() as cursor:
        for which in SEARCH_WORDS:
            word = params[f"word_{which}"]
            cursor.execute(
                "SELECT documents FROM workbooks_searchlexeme WHERE word = (ts_lexize('english_stem', %s))[1]",
                [word],
            )
            row = cursor.fetchone()
            lines.append(
                f"search {which}: {word!r} in {row[0] if row else 0:,} listed workbooks (search lexeme table)"
            )
    author = User.objects.get(pk=params["profile_user_id"])
    top = listed.values("author_id").annotate(n=Count("id")).order_by("-n").first()
    lines.append(
        f"profile: {author.username} (id {author.pk}), {listed.filter(author=author).count():,} listed workbooks, "
        f"{Follow.objects.filter(followed=author).count():,} followers "
        f"(the most prolific author now has {top['n']:,})"
    )
    reader = User.objects.get(pk=params["feed_user_id"])
    followed = Follow.objects.filter(follower=reader).values("followed_id")
    lines.append(
        f"feed: {reader.username} (id {reader.pk}) follows {followed.count()} authors with "
        f"{listed.filter(author_id__in=followed).count():,} listed workbooks"
    )
    return lines


def describe_data() -> dict[str, int]:
    from accounts.models import Follow, User
    from workbooks.models import Favorite, Workbook, WorkbookTag

    return {
        "workbooks": Workbook.objects.count(),
        "listed workbooks": Workbook.objects.listed().count(),
        "users": User.objects.count(),
        "favorites": Favorite.objects.count(),
        "follows": Follow.objects.count(),
        "workbook tags": WorkbookTag.objects.count(),
    }


def server_settings() -> str:
    from django.db import connection

    names = (
        "server_version",
        "shared_buffers",
        "work_mem",
        "effective_cache_size",
        "random_page_cost",
        "max_parallel_workers_per_gather",
        "jit",
    )
    with connection.cursor() as cursor:
        values = []
        for name in names:
            cursor.execute("SELECT current_setting(%s)", [name])
            values.append(f"{name}={cursor.fetchone()[0]}")
    return ", ".join(values)


def hand_written_indexes() -> list[str]:
    """Indexes created by ``CREATE INDEX`` in the project's migrations that exist in the database."""
    from django.db import connection, migrations
    from django.db.migrations.loader import MigrationLoader

    pattern = re.compile(
        r"CREATE\s+INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", re.IGNORECASE
    )
    loader = MigrationLoader(None, ignore_no_migrations=True)
    names: list[str] = []
    for (app, _), migration in sorted(loader.disk_migrations.items()):
        if app not in PROJECT_APPS:
            continue
        for operation in migration.operations:
            if isinstance(operation, migrations.RunSQL):
                names += pattern.findall(str(operation.sql))
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")
        existing = {row[0] for row in cursor.fetchall()}
    return [name for name in dict.fromkeys(names) if name in existing]


# =========================================================================================================
# measure
# =========================================================================================================


def load_results(path: Path) -> dict[str, Any]:
    if path.exists():
        return json.loads(path.read_text())
    return {"params": None, "sizes": []}


def measure(*, label: str, results_path: Path, runs: int, naive_budget: float, naive_min_runs: int) -> None:
    setup_django()
    from django.conf import settings
    from django.db import connection, transaction

    from sigma_playground.pagination import EXACT_COUNT_LIMIT
    from workbooks import search, services

    started = time.perf_counter()
    results = load_results(results_path)
    say(f"== Measuring at {label} ==")
    progress("refreshing the search lexeme table (the daily beat task) ...")
    lexemes = services.search_lexemes_refresh()
    progress("VACUUM ANALYZE ...")
    phase = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")
    say(f"VACUUM ANALYZE in {time.perf_counter() - phase:.1f}s; {lexemes:,} search lexemes.")
    data = describe_data()
    say("Data: " + ", ".join(f"{value:,} {name}" for name, value in data.items()))
    say(f"Server: {server_settings()}")
    say(f"Machine: {os.cpu_count()} CPUs, load average {_load()} at the start of measuring.")
    params = results["params"]
    if params is None:
        params = results["params"] = pick_params()
        say("Parameters (picked from this data; later sizes reuse them):")
    else:
        say("Parameters (picked at the first size, reused):")
    for line in describe_params(params):
        say(f"  {line}")
    say(
        f"Page size {settings.PAGE_SIZE}, "
        f"deep page {DEEP_PAGE}, exact counts up to {EXACT_COUNT_LIMIT:,}, "
        f"search candidates {search.SEARCH_CANDIDATES:,}."
    )

    ops, checks = build_ops(params)
    for check in checks:
        say(check)
    measured: dict[str, dict[str, Any]] = {}

    progress(f"timing {len(ops)} operations, {runs} runs each ...")
    for i, op in enumerate(ops, 1):
        timing = sample(op.ours, runs=runs, warmup=5)
        plans = explain(timing.statements)
        forced = None
        if op.group == "search" and GIN_INDEX not in plan_indexes(plans):
            forced = explain_forced_gin(timing.statements)
        measured[op.key] = {
            "forced_gin": forced,
            "label": op.label,
            "group": op.group,
            "sort": op.sort,
            "page": op.page,
            "n": timing.n,
            "p50": timing.p50,
            "p95": timing.p95,
            "statements": len(timing.statements),
            "plans": plans,
        }
        progress(
            f"  [{i:2}/{len(ops)}] {op.label:<24} n={timing.n} p50={timing.p50:.2f} ms p95={timing.p95:.2f} ms"
        )

    dropped = hand_written_indexes()
    say(f"Naive baseline: in one transaction, DROP INDEX {', '.join(dropped)}; ROLLBACK afterwards.")
    progress(f"naive baseline: {len(ops)} operations, {runs} runs or ~{naive_budget:.0f} s each ...")
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL statement_timeout = 0")
            for name in dropped:
                cursor.execute(f"DROP INDEX {connection.ops.quote_name(name)}")
        for i, op in enumerate(ops, 1):
            timing = sample(op.naive, runs=runs, warmup=1, budget_s=naive_budget, min_runs=naive_min_runs)
            plans = explain(timing.statements)
            measured[op.key]["naive"] = {
                "n": timing.n,
                "p50": timing.p50,
                "p95": timing.p95,
                "statements": len(timing.statements),
                "plans": plans,
            }
            progress(
                f"  [{i:2}/{len(ops)}] naive {op.label:<24} n={timing.n} p50={timing.p50:.2f} ms "
                f"p95={timing.p95:.2f} ms"
            )
        transaction.set_rollback(True)
    missing = set(dropped) - set(hand_written_indexes())
    if missing:
        sys.exit(f"bench_db: indexes missing after the rollback: {sorted(missing)}")

    size = {
        "label": label,
        "data": data,
        "ops": measured,
        "checks": checks,
        "params": describe_params(params),
    }
    results["sizes"] = [s for s in results["sizes"] if s["label"] != label] + [size]
    results_path.write_text(json.dumps(results, indent=1))
    say()
    print_size(size)
    say(f"Measured {label} in {time.perf_counter() - started:.0f}s; load average {_load()} at the end.")


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def print_size(size: dict[str, Any]) -> None:
    say(
        f"Database time per operation at {size['label']} (ms; every statement of the code path, card tags "
        "prefetch included; naive = no hand-written indexes, OFFSET, COUNT(*), icontains):"
    )
    header = f"{'query':<24} {'n':>4} {'p50':>8} {'p95':>8} | {'naive n':>7} {'p50':>9} {'p95':>9} | {'naive/ours':>10}"
    say(header)
    say("-" * len(header))
    for op in size["ops"].values():
        naive = op["naive"]
        ratio = naive["p95"] / op["p95"] if op["p95"] > 0 else float("inf")
        say(
            f"{op['label']:<24} {op['n']:>4} {op['p50']:>8.2f} {op['p95']:>8.2f} | {naive['n']:>7} "
            f"{naive['p50']:>9.2f} {naive['p95']:>9.2f} | {ratio:>9.1f}x"
        )
        explain_ours = sum(p["ms"] for p in op["plans"])
        explain_naive = sum(p["ms"] for p in naive["plans"])
        say(
            f"    ours  ({op['statements']} stmts, EXPLAIN ANALYZE {explain_ours:.2f} ms): {plan_text(op['plans'])}"
        )
        say(
            f"    naive ({naive['statements']} stmts, EXPLAIN ANALYZE {explain_naive:.2f} ms): "
            f"{plan_text(naive['plans'])}"
        )


# =========================================================================================================
# summary
# =========================================================================================================


def summary(*, results_path: Path) -> int:
    results = load_results(results_path)
    sizes = results["sizes"]
    if not sizes:
        say("No measurements.")
        return 1
    small, large = sizes[0], sizes[-1]
    rows: list[tuple[str, str, str, str, str]] = []  # check, query, value, limit, result

    for op in large["ops"].values():
        ok = op["p95"] <= P95_LIMIT_MS
        rows.append(
            (
                f"p95 at {large['label']}",
                op["label"],
                f"{op['p95']:.2f} ms",
                f"{P95_LIMIT_MS:.0f} ms",
                _verdict(ok),
            )
        )
    for op in large["ops"].values():
        if op["group"] != "list" or op["page"] != DEEP_PAGE:
            continue
        first = large["ops"][f"list.{op['sort']}.p1"]
        ratio = op["p95"] / first["p95"]
        ok = ratio <= DEPTH_LIMIT
        rows.append(
            (
                f"p{DEEP_PAGE}/p1 p95 at {large['label']}",
                f"list {op['sort']}",
                f"{ratio:.2f}x ({op['p95']:.2f}/{first['p95']:.2f}; p50 {op['p50'] / first['p50']:.2f}x)",
                f"{DEPTH_LIMIT}x",
                _verdict(ok),
            )
        )
    if large is not small:
        for key, op in large["ops"].items():
            before = small["ops"].get(key)
            if before is None:
                continue
            ratio = op["p95"] / before["p95"]
            floor = op["p95"] < SCALE_FLOOR_MS and before["p95"] < SCALE_FLOOR_MS
            ok = ratio <= SCALE_LIMIT or floor
            note = f" (both < {SCALE_FLOOR_MS:.0f} ms)" if floor and ratio > SCALE_LIMIT else ""
            rows.append(
                (
                    f"p95 {large['label']}/{small['label']}",
                    op["label"],
                    f"{ratio:.2f}x ({op['p95']:.2f}/{before['p95']:.2f}; p50 {op['p50'] / before['p50']:.2f}x)",
                    f"{SCALE_LIMIT}x",
                    _verdict(ok) + note,
                )
            )
    for size in sizes:
        for op in size["ops"].values():
            if op["group"] != "search":
                continue
            scans = [p for p in op["plans"] if p["role"] in {"main", "count"}]
            forced = op.get("forced_gin")
            note = ""
            if not scans:
                value, ok = "no scan: the planner's estimate is the total", True
            elif GIN_INDEX in plan_indexes(op["plans"]):
                value, ok = "yes", True
            else:
                chosen_ms = sum(p["ms"] for p in scans)
                value = f"no: {scans[0]['indexes'][0]} ({chosen_ms:.1f} ms)"
                forced_gin = bool(forced and GIN_INDEX in plan_indexes([forced]))
                ok = forced_gin and forced["ms"] > chosen_ms
                if forced:
                    via = "" if forced_gin else f", without it: {', '.join(forced['indexes'])}"
                    value += f"; GIN forced: {forced['ms']:.1f} ms{via}"
                if ok:
                    note = " (the planner's plan is the faster one)"
            rows.append((f"GIN at {size['label']}", op["label"], value, GIN_INDEX, _verdict(ok) + note))

    say(
        f"Goal checks ({large['label']}{'' if large is small else ' vs ' + small['label']}; the ratios are of "
        "p95s, the p50 ratio is shown for context):"
    )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    headings = ("check", "query", "value", "limit", "result")
    say("  ".join(h.ljust(w) for h, w in zip(headings, [*widths, 6], strict=True)))
    say("  ".join("-" * w for w in [*widths, 6]))
    for row in rows:
        say("  ".join(cell.ljust(w) for cell, w in zip(row, [*widths, 0], strict=True)).rstrip())
    failed = [r for r in rows if r[4].startswith("FAIL")]
    say()
    say(f"{len(rows) - len(failed)} of {len(rows)} checks pass; {len(failed)} fail.")
    for row in failed:
        say(f"  FAIL  {row[0]}: {row[1]} = {row[2]} (limit {row[3]})")
    return 0


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# =========================================================================================================
# Entry point
# =========================================================================================================


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_db", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "createdb", help="drop the scratch database (DATABASE_URL) if it exists and create it"
    )
    commands.add_parser("dropdb", help="drop the scratch database")
    m = commands.add_parser("measure", help="measure the data now loaded")
    m.add_argument("--label", required=True, help="name of this size, e.g. 100k")
    m.add_argument("--results", required=True, type=Path, help="JSON file the sizes accumulate in")
    m.add_argument("--runs", type=int, default=200, help="timed runs per query (default 200)")
    m.add_argument(
        "--naive-budget",
        type=float,
        default=20.0,
        help="seconds after which a naive query stops (default 20)",
    )
    m.add_argument("--naive-min-runs", type=int, default=10, help="naive runs before the budget applies")
    s = commands.add_parser("summary", help="goal checks over every measured size")
    s.add_argument("--results", required=True, type=Path)
    args = parser.parse_args(argv)

    if args.command == "createdb":
        createdb()
    elif args.command == "dropdb":
        dropdb()
    elif args.command == "measure":
        scratch_database()  # refuse anything but a scratch database before touching it
        measure(
            label=args.label,
            results_path=args.results,
            runs=args.runs,
            naive_budget=args.naive_budget,
            naive_min_runs=args.naive_min_runs,
        )
    else:
        return summary(results_path=args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
