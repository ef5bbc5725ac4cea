"""The bulk loader (``manage.py seed_demo --workbooks N``, :class:`BulkLoader`): adds N workbooks, M users,
favorites, follows, tags and statistics on top of what exists. Ids are assigned here (max(id) + 1), so related
rows are written without reading anything back; everything is planned in memory first (favorites before the
workbooks, so ``favorite_count`` and ``view_count`` go into the workbook rows as they are written) and then
streamed with ``COPY`` on PostgreSQL or batched ``executemany`` elsewhere. On PostgreSQL the whole load is one
transaction; for large loads the secondary indexes, unique and foreign-key constraints of the tables being
filled are dropped first and recreated (same definitions) before commit, which is several times faster than
maintaining them row by row and leaves nothing half-done if the load fails.

Statistics at scale: every favoritable workbook gets a daily view *rate* that falls with its popularity
rank; a day gets a row only if it had views (or favorites), so popular workbooks have all 30 days and the
long tail a day or two. That keeps the row count near 3 per workbook at 1,000,000 workbooks while
``view_count`` is still exactly the sum of the workbook's rows. ``WorkbookDailyStat.favorites`` counts the
generated favorites made on that day, and ``favorite_count`` the generated favorite rows.

Everything random comes from ``random.Random(seed)``, so a run is reproducible for a given seed, database
state and day.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from django.db import connection, models, transaction
from django.utils import timezone
from django.utils.text import slugify

from accounts.demo import demo_people
from accounts.models import Follow, User
from sigma_playground.progress import Progress
from workbooks.demo.vocabulary import (
    _BASE62,
    DOMAINS,
    EMAIL_DOMAINS,
    MORE_FIRST_NAMES,
    MORE_LAST_NAMES,
    REGIONS,
    STATS_DAYS,
    TEXT,
    _ascii,
    _sentence,
    bulk_embed_url,
    ensure_tags,
)
from workbooks.models import (
    Favorite,
    Workbook,
    WorkbookDailyStat,
    WorkbookTag,
    new_share_token,
)
from workbooks.services import tag_names_text
from workbooks.trending import score

# =========================================================================================================
# The bulk loader
# =========================================================================================================

MINUTES_PER_DAY = 1440
HISTORY_DAYS = 3 * 365  # users joined over the last three years
PUBLISH_DAYS = 2 * 365  # workbooks were published over the last two years
FAVORITE_SKEW = 2.2  # popularity rank = n * u**skew: larger is more concentrated on the top workbooks
AUTHOR_SKEW = 2.5
FOLLOW_SKEW = 2.5
VIEW_RATE_TOP = 2000.0  # views per day of the most popular workbook
VIEW_RATE_DECAY = 0.8  # rate(rank) = VIEW_RATE_TOP * (rank + 1) ** -VIEW_RATE_DECAY
DEFAULT_FAVORITES_PER_WORKBOOK = 5
DEFAULT_FOLLOWS_PER_USER = 10
DEFAULT_MAX_DENSITY = 0.25  # default favorites/follows never exceed this share of the possible pairs
INDEX_REBUILD_MIN_ROWS = 50_000


class BulkError(ValueError):
    """The request cannot be met (e.g. more favorites than possible pairs); the message says why."""


@dataclass
class TableStat:
    table: str
    rows: int = 0
    seconds: float = 0.0


@dataclass
class BulkResult:
    tables: list[TableStat] = field(default_factory=list)
    phases: list[tuple[str, float]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def count(self, table: str) -> int:
        return sum(t.rows for t in self.tables if t.table == table)


def spread_counts(total: int, n: int, cap: int, rng: random.Random, *, alpha: float = 1.5) -> list[int]:
    """Split ``total`` into ``n`` heavy-tailed counts, each at most ``cap`` (a few power users, a long
    tail). Raises BulkError when ``n * cap < total``."""
    if total <= 0 or n <= 0:
        return [0] * max(n, 0)
    if n * cap < total:
        raise BulkError(f"cannot place {total:,} rows: at most {n * cap:,} are possible")
    weights = [min(rng.paretovariate(alpha), 60.0) for _ in range(n)]
    scale = total / sum(weights)
    counts = [min(cap, int(w * scale)) for w in weights]
    remaining = total - sum(counts)
    while remaining > 0:
        open_slots = [i for i in range(n) if counts[i] < cap]
        rng.shuffle(open_slots)
        for i in open_slots[:remaining]:
            counts[i] += 1
        remaining = total - sum(counts)
    return counts


def _pick_distinct(
    k: int,
    n: int,
    skew: float,
    rng: random.Random,
    exclude: Callable[[int], bool] | None = None,
) -> list[int]:
    """``k`` distinct ranks in [0, n), drawn with a power law towards rank 0; falls back to uniform draws
    when the skewed ones keep hitting ranks already taken. ``exclude(rank)`` rejects a rank."""
    chosen: set[int] = set()
    rnd = rng.random
    if k > n // 3:
        pool = [r for r in range(n) if not (exclude and exclude(r))]
        return rng.sample(pool, min(k, len(pool)))
    attempts = 0
    limit = 4 * k + 50
    while len(chosen) < k and attempts < limit:
        attempts += 1
        rank = int(n * rnd() ** skew)
        if rank in chosen or (exclude is not None and exclude(rank)):
            continue
        chosen.add(rank)
    while len(chosen) < k:  # rare: only for small n
        rank = int(n * rnd())
        if rank not in chosen and not (exclude is not None and exclude(rank)):
            chosen.add(rank)
    return list(chosen)


@dataclass
class _TableSpec:
    """Where rows go: a model's table and the columns we write, plus constant values for any column we do
    not know about (added by a later migration) that needs a value."""

    model: type[models.Model]
    fields: tuple[str, ...]
    columns: tuple[str, ...] = ()
    extra: tuple[Any, ...] = ()

    @property
    def table(self) -> str:
        return self.model._meta.db_table

    def resolve(self) -> None:
        opts = self.model._meta
        concrete = {f.name: f for f in opts.concrete_fields}
        columns = [concrete[name].column for name in self.fields]
        extra_cols, extra_vals = [], []
        for f in opts.concrete_fields:
            if f.name in self.fields or getattr(f, "generated", False):
                continue
            if getattr(f, "db_default", models.NOT_PROVIDED) is not models.NOT_PROVIDED:
                continue
            if f.null and not f.has_default():
                continue
            extra_cols.append(f.column)
            extra_vals.append(f.get_db_prep_save(f.get_default(), connection))
        self.columns = tuple(columns + extra_cols)
        self.extra = tuple(extra_vals)


class BulkLoader:
    """Add ``workbooks`` workbooks, ``users`` users, ``favorites`` favorites and ``follows`` follows
    (plus their tags and daily statistics) on top of what exists. See the module docstring."""

    def __init__(
        self,
        *,
        workbooks: int,
        users: int,
        favorites: int | None = None,
        follows: int | None = None,
        batch_size: int = 10_000,
        seed: int = 2026,
        progress_stream: TextIO | None = None,
        log: Callable[[str], None] | None = None,
        rebuild_indexes: str = "auto",
        now: dt.datetime | None = None,
    ) -> None:
        if min(workbooks, users) < 0 or (favorites or 0) < 0 or (follows or 0) < 0:
            raise BulkError("row counts must be zero or more")
        if batch_size < 1:
            raise BulkError("the batch size must be at least 1")
        if rebuild_indexes not in {"auto", "always", "never"}:
            raise BulkError("rebuild_indexes must be auto, always or never")
        self.n_workbooks, self.n_users = workbooks, users
        self.want_favorites, self.want_follows = favorites, follows
        self.batch_size, self.seed = batch_size, seed
        self.progress_stream = progress_stream
        self.log = log or (lambda message: None)
        self.rebuild_indexes = rebuild_indexes
        self.now = now or timezone.now()
        self.vendor = connection.vendor
        self.result = BulkResult()

    # --- time: every timestamp is a minute offset from self.t0; strings are built from two lookups ---

    def _init_clock(self) -> None:
        today = self.now.astimezone(dt.UTC).date()
        self.t0 = dt.datetime.combine(today - dt.timedelta(days=HISTORY_DAYS), dt.time(), tzinfo=dt.UTC)
        self.now_min = int((self.now - self.t0).total_seconds() // 60) - 1  # nothing in the future
        self.today_day = HISTORY_DAYS
        suffix = "+00" if self.vendor == "postgresql" else ""
        rng = random.Random(self.seed ^ 0x5EC0)
        self.day_str = [
            (self.t0.date() + dt.timedelta(days=d)).isoformat() + " " for d in range(HISTORY_DAYS + 2)
        ]
        self.date_str = [s[:10] for s in self.day_str]
        self.minute_str = [
            f"{m // 60:02d}:{m % 60:02d}:{rng.randrange(60):02d}{suffix}" for m in range(MINUTES_PER_DAY)
        ]
        self.weekday0 = self.t0.weekday()

    def ts(self, minute: int) -> str:
        day, rest = divmod(minute, MINUTES_PER_DAY)
        return self.day_str[day] + self.minute_str[rest]

    # --- entry point ---

    def run(self) -> BulkResult:
        started = time.perf_counter()
        self._init_clock()
        self.tags, _ = ensure_tags()
        with transaction.atomic():
            self._prepare_session()
            phase = time.perf_counter()
            self._read_existing()
            self._check_capacity()
            self._plan_users()
            self._plan_workbooks()
            self._plan_favorites()
            self._plan_stats()
            self._phase("plan", phase)
            specs = self._specs()
            deferred = self._defer_indexes(specs)
            self._write(specs["user"], self._user_rows(), self.n_users)
            self._write(specs["workbook"], self._workbook_rows(), self.n_workbooks)
            self._write(specs["workbooktag"], self._workbooktag_rows(), self.n_workbook_tags)
            self._write(specs["favorite"], self._favorite_rows(), len(self.fav_user))
            self._write(specs["stat"], self._stat_rows(), len(self.st_wb))
            self._write(specs["follow"], self._follow_rows(), self.n_follows)
            self._restore_indexes(deferred)
            phase = time.perf_counter()
            self._reset_sequences()
            self._phase("sequences", phase)
        if self.vendor == "postgresql":
            phase = time.perf_counter()
            with connection.cursor() as cursor:
                for spec in specs.values():
                    cursor.execute(f"ANALYZE {connection.ops.quote_name(spec.table)}")
            self._phase("analyze", phase)
        self.result.seconds = time.perf_counter() - started
        return self.result

    def _phase(self, name: str, started: float) -> None:
        seconds = time.perf_counter() - started
        self.result.phases.append((name, seconds))
        self.log(f"{name}: {seconds:.1f}s")

    def _prepare_session(self) -> None:
        if self.vendor != "postgresql":
            return
        tables = ", ".join(
            connection.ops.quote_name(m._meta.db_table)
            for m in (User, Workbook, WorkbookTag, Favorite, WorkbookDailyStat, Follow)
        )
        with connection.cursor() as cursor:
            # The site's connection settings cap statements at 30 s; a load is one long transaction.
            cursor.execute("SET LOCAL statement_timeout = 0")
            cursor.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
            cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
            cursor.execute("SET LOCAL synchronous_commit = off")
            # Check now whatever foreign keys earlier writes in this transaction deferred: PostgreSQL
            # refuses to rebuild an index on a table with pending trigger events. Our own writes go in
            # dependency order (users, workbooks, then the rows that point at them), so immediate
            # checks cost nothing extra.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            # No concurrent inserts while we hand out ids; readers are not blocked (until index rebuilds).
            cursor.execute(f"LOCK TABLE {tables} IN SHARE ROW EXCLUSIVE MODE")

    # --- planning ---

    def _read_existing(self) -> None:
        def next_id(model: type[models.Model]) -> int:
            top = model._default_manager.aggregate(m=models.Max("pk"))["m"]
            return (top or 0) + 1

        self.existing_user_ids = list(User.objects.order_by("pk").values_list("pk", flat=True))
        self.user0 = next_id(User)
        self.workbook0 = next_id(Workbook)
        self.workbooktag0 = next_id(WorkbookTag)
        self.favorite0 = next_id(Favorite)
        self.stat0 = next_id(WorkbookDailyStat)
        self.follow0 = next_id(Follow)
        # Generated names end with the new id; only existing names ending in digits could collide.
        self.taken_usernames = {
            u.lower()
            for u in User.objects.filter(username__regex=r"[0-9]$").values_list("username", flat=True)
        }
        self.taken_emails = {
            e.lower() for e in User.objects.filter(email__regex=r"[0-9]@").values_list("email", flat=True)
        }
        self.existing_rows = {
            m._meta.db_table: m.objects.count()
            for m in (User, Workbook, WorkbookTag, Favorite, WorkbookDailyStat, Follow)
        }

    def _check_capacity(self) -> None:
        n_all_users = len(self.existing_user_ids) + self.n_users
        if self.n_workbooks and not n_all_users:
            raise BulkError("workbooks need authors: there are no users yet, so add some with --users")
        # At most ~95% of new workbooks are favoritable (published, public or unlisted); use 85% to be safe.
        favoritable_estimate = int(self.n_workbooks * 0.85)
        fav_capacity = n_all_users * favoritable_estimate
        if self.want_favorites is None:
            self.target_favorites = min(
                self.n_workbooks * DEFAULT_FAVORITES_PER_WORKBOOK, int(fav_capacity * DEFAULT_MAX_DENSITY)
            )
        else:
            if self.want_favorites and not self.n_workbooks:
                raise BulkError("favorites are added to the new workbooks: give --workbooks N as well")
            if self.want_favorites > fav_capacity // 2:
                raise BulkError(
                    f"{self.want_favorites:,} favorites is more than half of the {fav_capacity:,} possible "
                    "(user, new workbook) pairs; add users or workbooks, or ask for fewer favorites"
                )
            self.target_favorites = self.want_favorites
        follow_capacity = self.n_users * max(n_all_users - 1, 0)
        if self.want_follows is None:
            self.n_follows = min(
                self.n_users * DEFAULT_FOLLOWS_PER_USER, int(follow_capacity * DEFAULT_MAX_DENSITY)
            )
        else:
            if self.want_follows and not self.n_users:
                raise BulkError("follows are made by the new users: give --users M as well")
            if self.want_follows > follow_capacity // 2:
                raise BulkError(
                    f"{self.want_follows:,} follows is more than half of the {follow_capacity:,} possible "
                    "(new user, user) pairs; add users or ask for fewer follows"
                )
            self.n_follows = self.want_follows

    def _plan_users(self) -> None:
        rng = random.Random(self.seed * 31 + 1)
        self.user_created = array("i", [0]) * self.n_users
        span = max(self.now_min - MINUTES_PER_DAY, 1)
        for j in range(self.n_users):
            self.user_created[j] = int(span * rng.random())
        # Ranked users: prolific authors are also the most followed.
        self.all_users = self.existing_user_ids + list(range(self.user0, self.user0 + self.n_users))
        ranked = list(self.all_users)
        rng.shuffle(ranked)
        self.ranked_users = ranked

    def created_of(self, user_id: int) -> int:
        j = user_id - self.user0
        return self.user_created[j] if j >= 0 else 0

    def _plan_workbooks(self) -> None:
        n = self.n_workbooks
        rng = random.Random(self.seed * 31 + 2)
        rnd = rng.random
        self.wb_author = array("q", [0]) * n
        self.wb_pub = array("i", [-1]) * n
        self.wb_created = array("i", [0]) * n
        self.wb_vis = bytearray(n)  # 0 public, 1 unlisted, 2 private
        self.wb_featured = bytearray(n)
        ranked, n_users = self.ranked_users, len(self.ranked_users)
        user0, user_created = self.user0, self.user_created
        now_min = self.now_min
        publish_span = PUBLISH_DAYS * MINUTES_PER_DAY
        progress = Progress(self.progress_stream, "plan workbooks", n)
        for i in range(n):
            author = ranked[int(n_users * rnd() ** AUTHOR_SKEW)] if n_users else 0
            self.wb_author[i] = author
            joined = user_created[author - user0] if author >= user0 else 0
            roll = rnd()
            if roll < 0.05:  # draft
                created = now_min - int(90 * MINUTES_PER_DAY * rnd())
                self.wb_created[i] = max(created, joined)
                continue
            if roll < 0.08:
                self.wb_vis[i] = 2
            elif roll < 0.13:
                self.wb_vis[i] = 1
            elif rnd() < 0.023:
                self.wb_featured[i] = 1
            pub = now_min - int(publish_span * rnd() ** 1.35)
            if pub < joined + 60:
                pub = min(now_min, joined + 60 + int((now_min - joined - 60) * rnd()))
            self.wb_pub[i] = pub
            self.wb_created[i] = max(joined, pub - int(14 * MINUTES_PER_DAY * rnd() ** 2))
            if i % 65536 == 0:
                progress.update(i)
        progress.update(n)
        progress.close()
        favoritable = [i for i in range(n) if self.wb_pub[i] >= 0 and self.wb_vis[i] != 2]
        rng.shuffle(favoritable)  # popularity rank is independent of id and date
        self.favoritable = array("i", favoritable)
        self.n_workbook_tags = int(n * 2.9)  # an estimate until the workbook rows are generated

    def _plan_favorites(self) -> None:
        rng = random.Random(self.seed * 31 + 3)
        rnd = rng.random
        n_fav = len(self.favoritable)
        users = self.all_users
        total = (
            min(self.target_favorites, len(users) * n_fav // 2)
            if self.want_favorites is None
            else self.target_favorites
        )
        if self.want_favorites is not None and total > len(users) * n_fav:
            raise BulkError(f"only {len(users) * n_fav:,} (user, workbook) pairs are possible")
        # At most half of the workbooks per person, so the skewed draws stay cheap.
        counts = (
            spread_counts(total, len(users), max(1, (n_fav + 1) // 2), rng) if total else [0] * len(users)
        )
        self.fav_user = array("q")
        self.fav_wb = array("i")
        self.fav_min = array("i")
        self.fav_count = array("i", [0]) * self.n_workbooks
        self.recent_favs: dict[int, list[int]] = {}
        stats_start = (self.today_day - STATS_DAYS + 1) * MINUTES_PER_DAY
        favoritable, wb_author, wb_pub = self.favoritable, self.wb_author, self.wb_pub
        now_min = self.now_min
        progress = Progress(self.progress_stream, "plan favorites", total)
        done = 0
        for user_id, k in zip(users, counts, strict=True):
            if not k:
                continue
            joined = self.created_of(user_id)

            def own(r: int, u: int = user_id) -> bool:  # nobody favorites their own workbook
                return wb_author[favoritable[r]] == u

            ranks = _pick_distinct(k, n_fav, FAVORITE_SKEW, rng, exclude=own)
            for rank in sorted(ranks):
                off = favoritable[rank]
                lo = max(wb_pub[off], joined)
                minute = lo + int((now_min - lo) * rnd()) if now_min > lo else now_min
                self.fav_user.append(user_id)
                self.fav_wb.append(off)
                self.fav_min.append(minute)
                self.fav_count[off] += 1
                if minute >= stats_start:
                    self.recent_favs.setdefault(off, []).append(minute // MINUTES_PER_DAY)
            done += len(ranks)
            if done - progress.done >= 100_000:
                progress.update(done)
        progress.update(done)
        progress.close()

    def _plan_stats(self) -> None:
        """Daily rows for the last 30 days: see the module docstring. Also fills view_count and the
        trending score (with the trending module's own formula when it exists)."""
        rng = random.Random(self.seed * 31 + 4)
        rnd = rng.random
        score_fn = score
        self.st_wb = array("i")
        self.st_day = array("i")
        self.st_views = array("i")
        self.st_favs = array("i")
        self.wb_views = array("q", [0]) * self.n_workbooks
        self.wb_trending = array("d", [0.0]) * self.n_workbooks
        first_window_day = self.today_day - STATS_DAYS + 1
        today = self.today_day
        weekday_factor = [1.1, 1.15, 1.1, 1.05, 0.95, 0.55, 0.5]
        weekday0 = self.weekday0
        progress = Progress(self.progress_stream, "plan statistics", len(self.favoritable))
        log = math.log
        for rank, off in enumerate(self.favoritable):
            rate = VIEW_RATE_TOP * (rank + 1) ** -VIEW_RATE_DECAY
            first = max(first_window_day, self.wb_pub[off] // MINUTES_PER_DAY)
            if rate >= 1:
                days = list(range(first, today + 1))
            else:  # geometric gaps: only the days that had a view are drawn
                days = []
                step = log(1.0 - rate)
                day = first - 1
                while True:
                    day += 1 + int(log(1.0 - rnd()) / step)
                    if day > today:
                        break
                    days.append(day)
            fav_days = self.recent_favs.get(off)
            fav_per_day: dict[int, int] = {}
            if fav_days:
                for d in fav_days:
                    fav_per_day[d] = fav_per_day.get(d, 0) + 1
                days = sorted(set(days).union(fav_per_day))
            burst = rnd() < 0.005
            total = 0
            recent: list[tuple[int, int, int]] = []
            for day in days:
                base = rate * weekday_factor[(weekday0 + day) % 7]
                if burst and today - day < 4:
                    base = max(base, 20.0) * 8
                views = int(base * (0.55 + 0.9 * rnd())) if base >= 1 else 1 + int(2 * rnd())
                favs = fav_per_day.get(day, 0)
                if favs:  # people view a workbook several times for every favorite
                    views = max(views, int(favs * (4 + 8 * rnd())))
                self.st_wb.append(off)
                self.st_day.append(day)
                self.st_views.append(views)
                self.st_favs.append(favs)
                total += views
                if today - day < 7:
                    recent.append((today - day, views, favs))
            self.wb_views[off] = total
            if recent:
                self.wb_trending[off] = round(score_fn(recent), 6)
            if rank % 65536 == 0:
                progress.update(rank)
        progress.update(len(self.favoritable))
        progress.close()

    # --- rows ---

    def _specs(self) -> dict[str, _TableSpec]:
        specs = {
            "user": _TableSpec(
                User,
                ("id", "password", "last_login", "is_superuser", "username", "email", "is_staff", "is_active",
                 "date_joined", "full_name", "bio", "avatar", "avatar_width", "avatar_height", "created_at"),
            ),
            "workbook": _TableSpec(
                Workbook,
                ("id", "author", "title", "slug", "description", "sigma_embed_url", "thumbnail", "thumbnail_width",
                 "thumbnail_height", "thumbnail_derivatives", "visibility", "published_at", "is_featured",
                 "view_count", "favorite_count", "trending_score", "created_at", "updated_at", "share_token",
                 "tag_names"),
            ),
            "workbooktag": _TableSpec(WorkbookTag, ("id", "workbook", "tag")),
            "favorite": _TableSpec(Favorite, ("id", "user", "workbook", "created_at")),
            "stat": _TableSpec(WorkbookDailyStat, ("id", "workbook", "date", "views", "favorites")),
            "follow": _TableSpec(Follow, ("id", "follower", "followed", "created_at")),
        }  # fmt: skip
        for spec in specs.values():
            spec.resolve()
        return specs

    def _user_rows(self) -> Iterator[tuple]:
        rng = random.Random(self.seed * 31 + 5)
        rnd = rng.random
        firsts = [(_ascii(n), n) for n in (*MORE_FIRST_NAMES, *{p[1].split(" ")[0] for p in demo_people(30)})]
        lasts = [
            (_ascii(n), n) for n in (*MORE_LAST_NAMES, *{p[1].split(" ", 1)[1] for p in demo_people(30)})
        ]
        bios = [TEXT.bio(rng) for _ in range(4000)]
        passwords = ["!" + "".join(rng.choice(_BASE62) for _ in range(40)) for _ in range(256)]
        taken_u, taken_e = self.taken_usernames, self.taken_emails
        for j in range(self.n_users):
            uid = self.user0 + j
            first_ascii, first = firsts[int(rnd() * len(firsts))]
            last_ascii, last = lasts[int(rnd() * len(lasts))]
            form = int(rnd() * 4)
            if form == 0:
                stem = f"{first_ascii}{last_ascii}".lower()
            elif form == 1:
                stem = f"{first_ascii}_{last_ascii}".lower()
            elif form == 2:
                stem = f"{first_ascii[0]}-{last_ascii}".lower()
            else:
                stem = f"{last_ascii}{first_ascii[:2]}".lower()
            suffix = str(uid)
            username = stem[: 30 - len(suffix)] + suffix
            email = f"{username}@{EMAIL_DOMAINS[uid % 3]}"
            if username in taken_u or email in taken_e:  # an existing person's name: rare, so be simple
                username = f"user{suffix}x"[:30]
                email = f"{username}@seed.example.com"
                while username in taken_u or email in taken_e:
                    username = f"u{int(rnd() * 10**12)}x"
                    email = f"{username}@seed.example.com"
            joined = self.ts(self.user_created[j])
            yield (
                uid, passwords[j & 255], None, False, username, email, False, True,
                joined, f"{first} {last}", bios[int(rnd() * len(bios))], "", None, None, joined,
            )  # fmt: skip

    def _text_pools(self, rng: random.Random) -> None:
        """Per domain: ~2,000 distinct titles (with slugs) and a few hundred variants of each description
        sentence, so a row is a handful of list lookups; suffixes multiply the distinct titles further."""
        self.title_pool: list[list[tuple[str, str]]] = []
        self.sentence_pools: list[tuple[list[str], ...]] = []
        self.tagset_pool: list[list[tuple[int, ...]]] = []
        self.tagtext_pool: list[list[str]] = []
        for domain in DOMAINS:
            seen: dict[str, str] = {}
            for _ in range(12_000):
                title = TEXT.title(domain, rng)
                if title not in seen:
                    seen[title] = slugify(title)[:180] or "workbook"
                if len(seen) >= 2_000:
                    break
            self.title_pool.append(list(seen.items()))
            self.sentence_pools.append(
                (
                    [_sentence(TEXT.opening(domain, rng)) for _ in range(600)],
                    [_sentence(TEXT.visuals(domain, rng)) for _ in range(400)],
                    [_sentence(TEXT.purpose(domain, rng)) for _ in range(200)],
                    [_sentence(TEXT.note(domain, rng)) for _ in range(200)],
                    [_sentence(TEXT.tip(domain, rng)) for _ in range(200)],
                )
            )
            tagsets = [TEXT.tag_slugs(domain, rng) for _ in range(128)]
            self.tagset_pool.append([tuple(self.tags[s].pk for s in slugs) for slugs in tagsets])
            self.tagtext_pool.append([tag_names_text(self.tags[s].name for s in slugs) for slugs in tagsets])
        suffixes: list[tuple[str, str]] = [("", "")] * 300
        for region in REGIONS:
            suffixes.append((f" ({region})", "-" + slugify(region)))
        for year in (2024, 2025, 2026):
            for q in (1, 2, 3, 4):
                suffixes.append((f" (Q{q} {year})", f"-q{q}-{year}"))
        for v in (2, 3, 4):
            suffixes.append((f" v{v}", f"-v{v}"))
        for extra in ("Template", "Sample Data", "Draft Ideas", "Beta", "Archive", "Team Copy"):
            suffixes.append((f" [{extra}]", "-" + slugify(extra)))
        for team in ("Finance", "Ops", "Leadership", "Analysts", "Managers", "Sales", "Marketing"):
            suffixes.append((f" for {team}", f"-for-{team.lower()}"))
        self.title_suffixes = suffixes

    def _workbook_rows(self) -> Iterator[tuple]:
        rng = random.Random(self.seed * 31 + 6)
        self._text_pools(rng)
        rnd = rng.random
        n_domains = len(DOMAINS)
        self.wb_tagset = array("H", [0]) * self.n_workbooks
        self.wb_domain = bytearray(self.n_workbooks)
        visibility = ("public", "unlisted", "private")
        suffixes, n_suffixes = self.title_suffixes, len(self.title_suffixes)
        now_min, ts = self.now_min, self.ts
        tagset_total = 0
        for i in range(self.n_workbooks):
            wid = self.workbook0 + i
            d = int(rnd() * n_domains)
            self.wb_domain[i] = d
            titles = self.title_pool[d]
            base_title, base_slug = titles[int(rnd() * len(titles))]
            sfx_title, sfx_slug = suffixes[int(rnd() * n_suffixes)]
            s1, s2, s3, s4, s5 = self.sentence_pools[d]
            parts = [s1[int(rnd() * 600)], s2[int(rnd() * 400)], s3[int(rnd() * 200)]]
            roll = rnd()
            if roll < 0.7:
                parts.append(s4[int(rnd() * 200)])
            if roll < 0.3 or roll > 0.9:
                parts.append(s5[int(rnd() * 200)])
            tagset = int(rnd() * 128)
            self.wb_tagset[i] = tagset
            tagset_total += len(self.tagset_pool[d][tagset])
            pub = self.wb_pub[i]
            created = self.wb_created[i]
            if pub >= 0:
                updated = pub if rnd() < 0.7 else pub + int((now_min - pub) * rnd())
                published = ts(pub)
            else:
                updated = created + int((now_min - created) * rnd())
                published = None
            row = (
                wid, self.wb_author[i], base_title + sfx_title, base_slug + sfx_slug, " ".join(parts),
                bulk_embed_url(wid), "", None, None, "{}", visibility[self.wb_vis[i]], published,
                bool(self.wb_featured[i]), self.wb_views[i], self.fav_count[i], self.wb_trending[i],
                ts(created), ts(updated),
                # An unlisted workbook is reached only through its token link (random: never from the seed).
                new_share_token() if self.wb_vis[i] == 1 else None,
            )  # fmt: skip
            yield (*row, self.tagtext_pool[d][tagset])
        self.n_workbook_tags = tagset_total

    def _workbooktag_rows(self) -> Iterator[tuple]:
        next_id = self.workbooktag0
        pool, wb0 = self.tagset_pool, self.workbook0
        for i in range(self.n_workbooks):
            wid = wb0 + i
            for tag_id in pool[self.wb_domain[i]][self.wb_tagset[i]]:
                yield (next_id, wid, tag_id)
                next_id += 1

    def _favorite_rows(self) -> Iterator[tuple]:
        wb0, fid, ts = self.workbook0, self.favorite0, self.ts
        for k, (user_id, off, minute) in enumerate(
            zip(self.fav_user, self.fav_wb, self.fav_min, strict=True)
        ):
            yield (fid + k, user_id, wb0 + off, ts(minute))

    def _stat_rows(self) -> Iterator[tuple]:
        wb0, sid, dates = self.workbook0, self.stat0, self.date_str
        for k, (off, day, views, favs) in enumerate(
            zip(self.st_wb, self.st_day, self.st_views, self.st_favs, strict=True)
        ):
            yield (sid + k, wb0 + off, dates[day], views, favs)

    def _follow_rows(self) -> Iterator[tuple]:
        if not self.n_follows:
            return
        rng = random.Random(self.seed * 31 + 7)
        rnd = rng.random
        ranked, n = self.ranked_users, len(self.ranked_users)
        counts = spread_counts(self.n_follows, self.n_users, n - 1, rng)
        next_id, ts, now_min = self.follow0, self.ts, self.now_min
        for j, k in enumerate(counts):
            if not k:
                continue
            follower = self.user0 + j

            def themselves(r: int, f: int = follower) -> bool:  # nobody follows themselves
                return ranked[r] == f

            for rank in sorted(_pick_distinct(k, n, FOLLOW_SKEW, rng, exclude=themselves)):
                followed = ranked[rank]
                lo = max(self.user_created[j], self.created_of(followed))
                minute = lo + int((now_min - lo) * rnd()) if now_min > lo else now_min
                yield (next_id, follower, followed, ts(minute))
                next_id += 1

    # --- writing ---

    def _write(self, spec: _TableSpec, rows: Iterator[tuple], total: int) -> None:
        started = time.perf_counter()
        progress = Progress(self.progress_stream, spec.table, total)
        batch = self.batch_size
        extra = spec.extra
        if extra:
            rows = (row + extra for row in rows)
        done = 0
        if self.vendor == "postgresql":
            columns = ", ".join(connection.ops.quote_name(c) for c in spec.columns)
            sql = f"COPY {connection.ops.quote_name(spec.table)} ({columns}) FROM STDIN"
            connection.ensure_connection()
            with connection.connection.cursor() as cursor, cursor.copy(sql) as copy:
                write_row = copy.write_row
                next_report = batch
                for row in rows:
                    write_row(row)
                    done += 1
                    if done >= next_report:
                        progress.update(done)
                        next_report += batch
        else:
            columns = ", ".join(connection.ops.quote_name(c) for c in spec.columns)
            placeholders = ", ".join(["%s"] * len(spec.columns))
            sql = f"INSERT INTO {connection.ops.quote_name(spec.table)} ({columns}) VALUES ({placeholders})"  # noqa: S608 (names are ours)
            with connection.cursor() as cursor:
                chunk: list[tuple] = []
                for row in rows:
                    chunk.append(row)
                    if len(chunk) >= batch:
                        cursor.executemany(sql, chunk)
                        done += len(chunk)
                        chunk = []
                        progress.update(done)
                if chunk:
                    cursor.executemany(sql, chunk)
                    done += len(chunk)
        progress.total = max(progress.total, done)
        progress.update(done)
        progress.close()
        self.result.tables.append(TableStat(spec.table, done, time.perf_counter() - started))

    # --- PostgreSQL index handling ---

    def _planned_rows(self) -> dict[str, int]:
        return {
            User._meta.db_table: self.n_users,
            Workbook._meta.db_table: self.n_workbooks,
            WorkbookTag._meta.db_table: self.n_workbook_tags,
            Favorite._meta.db_table: len(self.fav_user),
            WorkbookDailyStat._meta.db_table: len(self.st_wb),
            Follow._meta.db_table: self.n_follows,
        }

    def _defer_indexes(self, specs: dict[str, _TableSpec]) -> list[tuple[str, str]]:
        """Drop secondary indexes, unique and foreign-key constraints of the big tables (PostgreSQL only);
        returns (description, SQL) to recreate them. Anything that cannot be dropped (another object
        depends on it) simply stays."""
        if self.vendor != "postgresql" or self.rebuild_indexes == "never":
            return []
        started = time.perf_counter()
        planned = self._planned_rows()
        restore: list[tuple[str, str]] = []
        fks: list[tuple[str, str]] = []
        with connection.cursor() as cursor:
            for spec in specs.values():
                table = spec.table
                new_rows = planned[table]
                if self.rebuild_indexes == "auto" and (
                    new_rows < INDEX_REBUILD_MIN_ROWS or new_rows < self.existing_rows[table] // 4
                ):
                    continue
                qtable = connection.ops.quote_name(table)
                cursor.execute(
                    "SELECT conname, pg_get_constraintdef(oid), contype FROM pg_constraint "
                    "WHERE conrelid = %s::regclass AND contype IN ('u', 'f', 'x') ORDER BY contype DESC, conname",
                    [qtable],
                )
                for name, definition, kind in cursor.fetchall():
                    if self._try(
                        cursor, f"ALTER TABLE {qtable} DROP CONSTRAINT {connection.ops.quote_name(name)}"
                    ):
                        sql = f"ALTER TABLE {qtable} ADD CONSTRAINT {connection.ops.quote_name(name)} {definition}"
                        (fks if kind == "f" else restore).append((f"{table}.{name}", sql))
                cursor.execute(
                    "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                    "WHERE i.indrelid = %s::regclass AND NOT i.indisprimary "
                    "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) "
                    "ORDER BY 1",
                    [qtable],
                )
                for name, definition in cursor.fetchall():
                    if self._try(cursor, f"DROP INDEX {name}"):
                        restore.append((name, definition))
        if restore or fks:
            self._phase(f"drop {len(restore) + len(fks)} indexes and constraints", started)
        return restore + fks  # foreign keys last: they are checked against the rebuilt tables

    @staticmethod
    def _try(cursor: Any, sql: str) -> bool:
        sid = transaction.savepoint()
        try:
            cursor.execute(sql)
        except Exception:  # a dependent object (e.g. a foreign key elsewhere) keeps it in place
            transaction.savepoint_rollback(sid)
            return False
        transaction.savepoint_commit(sid)
        return True

    def _restore_indexes(self, deferred: list[tuple[str, str]]) -> None:
        if not deferred:
            return
        started = time.perf_counter()
        with connection.cursor() as cursor:
            for i, (name, sql) in enumerate(deferred, 1):
                step = time.perf_counter()
                cursor.execute(sql)
                if self.progress_stream is not None:
                    self.progress_stream.write(
                        f"rebuilt {i}/{len(deferred)} {name} in {time.perf_counter() - step:.1f}s\n"
                    )
        self._phase("rebuild indexes and constraints", started)

    def _reset_sequences(self) -> None:
        from django.core.management.color import no_style

        statements = connection.ops.sequence_reset_sql(
            no_style(), [User, Workbook, WorkbookTag, Favorite, WorkbookDailyStat, Follow]
        )
        if statements:
            with connection.cursor() as cursor:
                for sql in statements:
                    cursor.execute(sql)
