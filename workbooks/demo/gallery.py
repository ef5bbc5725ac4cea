"""The demo gallery (``manage.py seed_demo``): about 30 people (``accounts.demo.seed_people``), 200 workbooks,
tags, favorites, follows and 30 days of statistics. Idempotent: a workbook is identified by its deterministic
embed link, so a rerun creates nothing new (a rerun on a later day only tops up the statistics of the days
since, so trending never goes stale).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import dataclass

from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import models, transaction
from django.db.models import Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.text import slugify

from accounts.demo import DEMO_STAFF_USERNAME, demo_people, seed_people
from accounts.models import User
from workbooks import maintenance, services, thumbnails
from workbooks.demo import images as demo_images
from workbooks.demo.vocabulary import (
    DOMAINS,
    STATS_DAYS,
    TEXT,
    demo_embed_url,
    ensure_tags,
)
from workbooks.models import (
    Favorite,
    Tag,
    Visibility,
    Workbook,
    WorkbookDailyStat,
    WorkbookTag,
    new_share_token,
)
from workbooks.services import tag_names_text, trending_recompute

# =========================================================================================================
# The demo: small, believable, idempotent
# =========================================================================================================

DEMO_WORKBOOKS = 200
# Demo workbooks that get a raster thumbnail (drawn by demo_images, through the upload pipeline); the rest
# show generated previews, as a real gallery mixes both. Each costs ~0.5 s of AVIF/WebP/JPEG rendering.
DEMO_THUMBNAILS = 24
DEMO_FEATURED = 8


@dataclass(frozen=True)
class DemoWorkbook:
    index: int
    author: str  # username
    title: str
    description: str
    tags: tuple[str, ...]
    visibility: str
    published_at: dt.datetime | None
    created_at: dt.datetime
    is_featured: bool
    popularity: float  # average views per day

    @property
    def embed_url(self) -> str:
        return demo_embed_url(self.index)


def demo_workbook_plan(
    usernames: Sequence[str], *, count: int = DEMO_WORKBOOKS, now: dt.datetime | None = None
) -> list[DemoWorkbook]:
    """The demo workbooks: deterministic apart from dates, which are relative to ``now``."""
    now = now or timezone.now()
    rng = random.Random(2026)
    titles: set[str] = set()
    plan = []
    # A few prolific authors, a long tail, and the demo staff account with a handful of its own.
    weights = [1.0 / (1 + i) ** 0.7 for i in range(len(usernames))]
    for index in range(count):
        domain = DOMAINS[index % len(DOMAINS)] if index < len(DOMAINS) else rng.choice(DOMAINS)
        title = TEXT.title(domain, rng)
        for _ in range(20):  # distinct titles, as in a real gallery
            if title.lower() not in titles:
                break
            title = TEXT.title(domain, rng)
        titles.add(title.lower())
        featured = index < DEMO_FEATURED
        roll = rng.random()
        if featured or roll >= 0.13:
            visibility, draft = Visibility.PUBLIC, False
        elif roll < 0.05:
            visibility, draft = Visibility.PUBLIC, True
        elif roll < 0.08:
            visibility, draft = Visibility.PRIVATE, False
        else:
            visibility, draft = Visibility.UNLISTED, False
        # Featured ones are recent; the rest spread over two years, more of them recently.
        age_days = rng.uniform(1, 45) if featured else 730 * rng.random() ** 1.6
        published = now - dt.timedelta(days=age_days, minutes=rng.randrange(1440))
        created = published - dt.timedelta(days=rng.random() ** 2 * 10)
        author = DEMO_STAFF_USERNAME if index % 40 == 7 else rng.choices(usernames, weights=weights, k=1)[0]
        plan.append(
            DemoWorkbook(
                index=index,
                author=author,
                title=title,
                description=TEXT.description(domain, rng),
                tags=tuple(TEXT.tag_slugs(domain, rng)),
                visibility=visibility,
                published_at=None if draft else published,
                created_at=created,
                is_featured=featured,
                popularity=(8 if featured else 1) * rng.lognormvariate(2.3, 0.9),
            )
        )
    return plan


@transaction.atomic
def seed_gallery(*, users: int = 30, workbooks: int = DEMO_WORKBOOKS) -> dict[str, int]:
    """Seed the demo gallery; idempotent. Returns what was created and the totals.

    Existing demo workbooks (found by their embed link) are left as they are, so edits made in the app
    survive a rerun; only the statistics of days without a row are added, then the counters are
    recomputed from the rows.
    """
    result = seed_people(users)
    now = timezone.now()
    today = now.date()
    usernames = [u for u, _, _ in demo_people(users)]
    people = {
        u.username.lower(): u for u in User.objects.filter(username__in=[*usernames, DEMO_STAFF_USERNAME])
    }
    authors = [name for name in usernames if name.lower() in people]
    if not authors:
        authors = [DEMO_STAFF_USERNAME]
    tags, tags_created = ensure_tags()
    plan = demo_workbook_plan(authors, count=workbooks, now=now)

    existing = dict(
        Workbook.objects.filter(sigma_embed_url__in=[p.embed_url for p in plan]).values_list(
            "sigma_embed_url", "pk"
        )
    )
    new = [p for p in plan if p.embed_url not in existing]
    objs = [
        Workbook(
            author=people.get(p.author.lower()) or people[DEMO_STAFF_USERNAME],
            title=p.title,
            slug=slugify(p.title)[:200] or "workbook",
            description=p.description,
            sigma_embed_url=p.embed_url,
            visibility=p.visibility,
            # bulk_create skips Workbook.save(), which gives an unlisted workbook its token.
            share_token=new_share_token() if p.visibility == Visibility.UNLISTED else None,
            published_at=p.published_at,
            is_featured=p.is_featured,
            created_at=p.created_at,
            tag_names=tag_names_text(tags[s].name for s in p.tags),
        )
        for p in new
    ]
    Workbook.objects.bulk_create(objs, batch_size=500)
    ids = {**existing, **{o.sigma_embed_url: o.pk for o in objs}}
    WorkbookTag.objects.bulk_create(
        [WorkbookTag(workbook_id=ids[p.embed_url], tag_id=tags[s].pk) for p in new for s in p.tags],
        ignore_conflicts=True,
    )

    # Favorites (for new workbooks only, so an un-favorite made in the app stays undone).
    rng = random.Random(4242)
    by_index = {p.index: p for p in plan}
    favoritable = [p for p in plan if p.published_at is not None and p.visibility != Visibility.PRIVATE]
    fav_weights = [p.popularity for p in favoritable]
    new_indexes = {p.index for p in new}
    favorites: list[Favorite] = []
    favorite_days: dict[tuple[int, dt.date], int] = {}
    for person in sorted(people.values(), key=lambda u: u.username.lower()):
        wanted = min(len(favoritable), int(rng.paretovariate(1.6) * 6))
        chosen = {p.index for p in rng.choices(favoritable, weights=fav_weights, k=wanted)}
        for index in sorted(chosen):
            p = by_index[index]
            if p.author.lower() == person.username.lower():
                continue
            assert p.published_at is not None
            start = max(p.published_at, now - dt.timedelta(days=90))
            created = start + (now - start) * rng.random()
            if index in new_indexes:
                favorites.append(Favorite(user=person, workbook_id=ids[p.embed_url], created_at=created))
                key = (index, created.date())
                favorite_days[key] = favorite_days.get(key, 0) + 1
    Favorite.objects.bulk_create(favorites, batch_size=1000, ignore_conflicts=True)

    # Statistics: one row per day for the last 30 days of every published, non-private workbook.
    have = set(
        WorkbookDailyStat.objects.filter(
            workbook_id__in=ids.values(), date__gt=today - dt.timedelta(days=STATS_DAYS)
        ).values_list("workbook_id", "date")
    )
    stats: list[WorkbookDailyStat] = []
    for p in favoritable:
        assert p.published_at is not None
        day_rng = random.Random(p.index * 7919)
        for age in range(STATS_DAYS - 1, -1, -1):
            day = today - dt.timedelta(days=age)
            views = day_rng.random()  # drawn for every day so a later top-up does not shift the sequence
            if day < p.published_at.date() or (ids[p.embed_url], day) in have:
                continue
            weekday = 0.6 if day.weekday() >= 5 else 1.1
            burst = 6 if p.index % 17 == 3 and age < 3 else 1  # a few workbooks trending right now
            count = int(p.popularity * weekday * burst * (0.5 + views))
            favs = favorite_days.get((p.index, day), 0)
            stats.append(
                WorkbookDailyStat(
                    workbook_id=ids[p.embed_url], date=day, views=max(count, 5 * favs), favorites=favs
                )
            )
    WorkbookDailyStat.objects.bulk_create(stats, batch_size=1000, ignore_conflicts=True)

    thumbnailed = _demo_thumbnails(new, ids, tags)
    _join_before_publishing(list(people.values()))
    _recount(list(ids.values()))
    trending_recompute()
    return {
        **result,
        "workbooks": len(objs),
        "tags": tags_created,
        "favorites": len(favorites),
        "stats": len(stats),
        "thumbnails": thumbnailed,
        "total_workbooks": len(ids),
        "total_favorites": Favorite.objects.filter(workbook_id__in=ids.values()).count(),
    }


def _join_before_publishing(people: list[User]) -> None:
    """Demo people joined some days to months before their first workbook (they were created just now)."""
    firsts = (
        Workbook.objects.filter(author__in=people)
        .values("author")
        .annotate(first=models.Min("created_at"))
        .values_list("author", "first")
    )
    for author_id, first in firsts:
        joined = first - dt.timedelta(days=3 + (author_id * 37) % 120, hours=(author_id * 7) % 24)
        User.objects.filter(pk=author_id, created_at__gt=joined).update(created_at=joined, date_joined=joined)


def _demo_thumbnails(new: list, ids: dict[str, int], tags: dict[str, Tag]) -> int:
    """Raster thumbnails for the first DEMO_THUMBNAILS new listed workbooks (featured first, then newest):
    a Pillow chart, validated and stored as a master by the upload code, its derivatives rendered by the
    Celery task after commit (in-process on the embedded defaults, by the worker with a broker)."""
    listed = [p for p in new if p.published_at is not None and p.visibility == Visibility.PUBLIC]
    listed.sort(key=lambda p: (not p.is_featured, -p.published_at.timestamp()))
    chosen = listed[:DEMO_THUMBNAILS]
    workbooks = Workbook.objects.select_related("author").in_bulk([ids[p.embed_url] for p in chosen])
    for p in chosen:
        workbook = workbooks[ids[p.embed_url]]
        first = min((tags[s] for s in p.tags), key=lambda t: t.name.casefold(), default=None)
        png = demo_images.chart_png(
            workbook_id=workbook.pk, tag_slugs=list(p.tags), colour=first.colour if first else "#2456d3"
        )
        master = thumbnails.prepare_master(SimpleUploadedFile("chart.png", png, content_type="image/png"))
        services.workbook_set_thumbnail(workbook=workbook, thumbnail=master)
    return len(chosen)


def _recount(workbook_ids: list[int]) -> None:
    """favorite_count = the favorite rows and view_count = the sum of the daily views, for these workbooks."""
    Workbook.objects.filter(pk__in=workbook_ids).update(
        favorite_count=Coalesce(maintenance.favorite_rows_count(), Value(0)),
        view_count=Coalesce(maintenance.daily_views_sum(), Value(0)),
    )
