"""Reads for gallery pages. Every list starts from ``Workbook.objects.listed()`` so private, unlisted and
draft workbooks cannot reach a list, a search, a tag page, a feed or a count shown to others.

Each list comes with the ordering its keyset pagination seeks on; each ordering is served by one of the
hand-written indexes in workbooks/migrations/0003_indexes.py.
"""

from __future__ import annotations

import functools
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Sum
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.http import Http404

from accounts.models import Follow, User
from sigma_playground.caching import keys
from sigma_playground.caching.service import cached
from sigma_playground.pagination import Narrow, Total, count_for_display
from workbooks import search
from workbooks.models import Favorite, Tag, Visibility, Workbook, WorkbookTag

SORTS: dict[str, tuple[str, ...]] = {
    "newest": ("-published_at", "-id"),
    "oldest": ("published_at", "id"),
    "popular": ("-favorite_count", "-id"),
    "trending": ("-trending_score", "-id"),
}
DEFAULT_SORT = "newest"
RELEVANCE = "relevance"
RELEVANCE_ORDER = ("-search_rank", "-id")
MAX_TAG_FILTERS = 5
MAX_QUERY_LENGTH = search.MAX_QUERY_LENGTH


@dataclass(frozen=True)
class ListParams:
    q: str
    tags: tuple[str, ...]
    sort: str
    featured: bool = False
    # The Tag rows for ``tags``, once looked up (see resolve_tags); None until then.
    tag_objects: tuple[Tag, ...] | None = None


@dataclass(frozen=True)
class Listing:
    """A list query, not yet paginated, the ordering to paginate it by, and, for lists no single index
    serves in order, how to narrow it to one page's candidates (``keyset_page(narrow=...)``)."""

    queryset: QuerySet
    ordering: tuple[str, ...]
    narrow: Narrow | None = None


def normalise_query(q: str | None) -> str:
    return re.sub(r"\s+", " ", (q or "")).strip()[:MAX_QUERY_LENGTH]


def normalise_tag(tag: str) -> str:
    return tag.strip().lower()


def parse_list_params(
    *, q: str | None, tags: list[str], sort: str | None, featured: bool = False
) -> ListParams:
    """Normalise what came in the URL: an unknown sort falls back to the default (relevance when searching)."""
    query = normalise_query(q)
    tag_slugs = tuple(dict.fromkeys(normalise_tag(t) for t in tags if t.strip()))[:MAX_TAG_FILTERS]
    allowed = set(SORTS) | ({RELEVANCE} if query else set())
    chosen = sort if sort in allowed else (RELEVANCE if query else DEFAULT_SORT)
    return ListParams(q=query, tags=tag_slugs, sort=chosen, featured=featured)


def sort_names(params: ListParams) -> list[str]:
    """The sorts a list offers, relevance first when a search is active."""
    return [RELEVANCE, *SORTS] if params.q else list(SORTS)


def resolve_tags(params: ListParams, *, known: Sequence[Tag] = ()) -> ListParams:
    """Look the filter's tags up once (none when ``known`` has them all), for the list, its total and
    the page's "Tagged" line."""
    if params.tag_objects is not None:
        return params
    found = {tag.slug: tag for tag in known}
    missing = [slug for slug in params.tags if slug not in found]
    if missing:
        found.update({tag.slug: tag for tag in Tag.objects.filter(slug__in=missing)})
    return replace(params, tag_objects=tuple(found[s] for s in params.tags if s in found))


def with_cards(qs: QuerySet[Workbook]) -> QuerySet[Workbook]:
    """What a workbook card shows: the author in the same query, the tags in one more."""
    return qs.select_related("author").prefetch_related("tags").defer("description", "tag_names")


def _filtered(params: ListParams) -> QuerySet[Workbook]:
    qs: QuerySet[Workbook] = Workbook.objects.listed()
    if params.featured:
        qs = qs.filter(is_featured=True)
    if params.tags:
        tags = resolve_tags(params).tag_objects or ()
        if len(tags) < len(params.tags):
            return qs.none()  # an unknown tag matches nothing
        for tag in tags:
            qs = qs.filter(Exists(WorkbookTag.objects.filter(workbook_id=OuterRef("pk"), tag_id=tag.pk)))
    if params.q and params.sort != RELEVANCE:
        qs = search.matches(qs, params.q)
    return qs


def workbook_list(*, params: ListParams) -> Listing:
    qs = _filtered(params)
    if params.sort == RELEVANCE:
        return Listing(with_cards(search.ranked(qs, params.q)), RELEVANCE_ORDER)
    return Listing(with_cards(qs), SORTS[params.sort])


def workbook_list_total(*, params: ListParams) -> Total:
    qs = _filtered(params)
    if params.q and params.sort == RELEVANCE:
        qs = search.matches(qs, params.q)
    return count_for_display(qs)


def tag_get(*, slug: str) -> Tag:
    """A tag with at least one listed workbook. One whose workbooks are all private, unlisted or drafts is
    the same 404 as an unknown tag: its name would otherwise tell that they exist."""
    listed = Workbook.objects.listed().filter(tag_links__tag_id=OuterRef("pk"))
    tag = Tag.objects.filter(slug=slug).filter(Exists(listed)).first()
    if tag is None:
        raise Http404("No such tag.")
    return tag


def home_sections(*, size: int = 8) -> dict[str, list[Workbook]]:
    """Featured, Trending and Newest, each workbook in one section only (the first that has it)."""
    listed = Workbook.objects.listed()
    featured = list(with_cards(listed.filter(is_featured=True).order_by(*SORTS["newest"]))[:size])
    shown = [w.pk for w in featured]
    trending = list(
        with_cards(listed.filter(trending_score__gt=0).exclude(pk__in=shown).order_by(*SORTS["trending"]))[
            :size
        ]
    )
    shown += [w.pk for w in trending]
    newest = list(with_cards(listed.exclude(pk__in=shown).order_by(*SORTS["newest"]))[:size])
    return {"featured": featured, "trending": trending, "newest": newest}


# --- Tags directory -------------------------------------------------------------------------------------

POPULAR_TAGS = 12


def tag_directory() -> list[Tag]:
    """The tag directory, cached with the pages (not when PAGE_CACHE_ENABLED is off, as in most tests)."""
    rows = _tag_directory() if settings.PAGE_CACHE_ENABLED else _tag_directory.uncached()
    tags = []
    for row in rows:
        tag = Tag(id=row["id"], name=row["name"], slug=row["slug"], colour=row["colour"])
        tag.workbook_total = row["workbook_total"]  # type: ignore[attr-defined]  # as .annotate() would
        tags.append(tag)
    return tags


@cached(
    "tag_directory",
    ttl=settings.TAG_DIRECTORY_SECONDS,
    key=lambda: "",
    namespaces=lambda: [keys.TAG_DIRECTORY],
)
def _tag_directory() -> list[dict[str, Any]]:
    """Every tag on at least one listed workbook, with ``workbook_total`` (listed workbooks only), most
    used first. One aggregate over the tag links of listed workbooks (at a million workbooks it reads every
    tag link), cached until a write that may hide or change a tag (caching/invalidate.py); a new workbook's
    tags show within TAG_DIRECTORY_SECONDS.
    Plain rows, not model instances: the cache stores JSON only (docs/security.md)."""
    return list(
        Tag.objects.filter(workbook_links__workbook_id__in=Workbook.objects.listed().values("pk"))
        .annotate(workbook_total=Count("workbook_links"))
        .order_by("-workbook_total", "name", "id")
        .values("id", "name", "slug", "colour", "workbook_total")
    )


def popular_tags(*, limit: int = POPULAR_TAGS, exclude: Sequence[str] = ()) -> list[Tag]:
    return [tag for tag in tag_directory() if tag.slug not in exclude][:limit]


def can_view(*, workbook: Workbook, user: User | AnonymousUser, share_token: str | None = None) -> bool:
    """May ``user`` see ``workbook``? An unlisted one needs its share token, unless they are its author or
    staff (ids are sequential: the id alone must not be enough)."""
    is_author = user.is_authenticated and workbook.author_id == user.pk
    if workbook.published_at is None:
        return is_author  # drafts: their author only
    is_staff = user.is_authenticated and user.is_staff
    if workbook.visibility == Visibility.PRIVATE:
        return is_author or is_staff
    if workbook.visibility == Visibility.UNLISTED and not (is_author or is_staff):
        token = workbook.share_token
        if not (token and share_token and hmac.compare_digest(token.encode(), share_token.encode())):
            return False
    return workbook.author.is_active or is_author or user.is_staff


def workbook_get_for_viewer(
    *, pk: int, user: User | AnonymousUser, share_token: str | None = None
) -> Workbook:
    """The workbook if ``user`` may see it. Private, draft, unlisted (without its token) and missing
    workbooks are the same 404."""
    workbook = Workbook.objects.select_related("author").prefetch_related("tags").filter(pk=pk).first()
    if workbook is None or not can_view(workbook=workbook, user=user, share_token=share_token):
        raise Http404("No such workbook.")
    return workbook


def workbook_get_shared(*, token: str, user: User | AnonymousUser) -> Workbook:
    """An unlisted workbook by its share link; anything else (another visibility, a draft, an unknown or
    revoked token, a deactivated author) is a 404."""
    workbook = (
        Workbook.objects.select_related("author").prefetch_related("tags").filter(share_token=token).first()
    )
    if (
        workbook is None
        or workbook.visibility != Visibility.UNLISTED
        or not can_view(workbook=workbook, user=user, share_token=token)
    ):
        raise Http404("No such workbook.")
    return workbook


def workbook_get_for_author(*, pk: int, user: User) -> Workbook:
    """For edit and delete: the author's own workbook, else a 404 that says nothing about it."""
    workbook = Workbook.objects.prefetch_related("tags").filter(pk=pk, author_id=user.pk).first()
    if workbook is None:
        raise Http404("No such workbook.")
    return workbook


RELATED_PER_TAG = 50


def related_workbooks(*, workbook: Workbook, limit: int = 6) -> list[Workbook]:
    """Listed workbooks sharing tags with this one, most shared tags first.

    On PostgreSQL the candidates are, per tag, its ``RELATED_PER_TAG`` newest listed workbooks (one index
    walk each, in one LATERAL query), so a tag on 100,000 workbooks costs what a tag on 100 does.
    """
    tag_ids = [tag.pk for tag in workbook.tags.all()]
    if not tag_ids:
        return []
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT c.id FROM unnest(%s::bigint[]) AS t(tag_id)
                CROSS JOIN LATERAL (
                    SELECT w.id FROM workbooks_workbook w
                    WHERE w.visibility = 'public' AND w.published_at IS NOT NULL AND NOT w.embed_broken
                      AND w.id <> %s
                      AND EXISTS (SELECT 1 FROM workbooks_workbooktag wt
                                  WHERE wt.workbook_id = w.id AND wt.tag_id = t.tag_id)
                    ORDER BY w.published_at DESC, w.id DESC LIMIT %s
                ) c
                GROUP BY c.id ORDER BY count(*) DESC, c.id DESC LIMIT %s
                """,
                [tag_ids, workbook.pk, RELATED_PER_TAG, limit * 2],
            )
            ranked_ids = [row[0] for row in cursor.fetchall()]
        found = {w.pk: w for w in with_cards(Workbook.objects.listed().filter(pk__in=ranked_ids))}
        return [found[pk] for pk in ranked_ids if pk in found][:limit]
    qs = (
        Workbook.objects.listed()
        .filter(tag_links__tag_id__in=tag_ids)
        .exclude(pk=workbook.pk)
        .annotate(shared=Count("tag_links"))
        .order_by("-shared", "-favorite_count", "-id")
    )
    return list(with_cards(qs)[:limit])


def favorite_count(*, workbook_id: int) -> int:
    return Workbook.objects.filter(pk=workbook_id).values_list("favorite_count", flat=True).first() or 0


def is_favorited(*, user: User | AnonymousUser, workbook: Workbook) -> bool:
    if not user.is_authenticated:
        return False
    return Favorite.objects.filter(user=user, workbook=workbook).exists()


# Up to this many followed authors, a feed page reads each one's newest rows from its own index range;
# beyond it, the newest-first index walked and filtered by author is cheaper.
FEED_PER_AUTHOR_MAX_FOLLOWS = 200


def feed_for(*, user: User) -> Listing:
    """Newest listed workbooks of the people ``user`` follows.

    Planned as one query (``author_id IN (followed)``), PostgreSQL reads every listed workbook of every
    followed author and sorts them: cost grows with how much they have published (bench-db: no faster than
    without the indexes). For up to FEED_PER_AUTHOR_MAX_FOLLOWS follows the page is narrowed first: for
    each followed author the next page-size rows after the cursor from ``workbooks_author_listed_idx``
    (index-only), merged, the page's worth kept. A page then costs about follows x page size index entries,
    whatever the authors published.
    """
    followed = Follow.objects.filter(follower=user).values("followed_id")
    listing = Listing(with_cards(Workbook.objects.listed().filter(author_id__in=followed)), SORTS["newest"])
    if connection.vendor != "postgresql":
        return listing
    follows = Follow.objects.filter(follower=user).values("pk")[: FEED_PER_AUTHOR_MAX_FOLLOWS + 1].count()
    if follows > FEED_PER_AUTHOR_MAX_FOLLOWS:
        return listing
    base = with_cards(Workbook.objects.listed())
    return replace(listing, narrow=functools.partial(_feed_candidates, base=base, follower_id=user.pk))


def _feed_candidates(
    qs: QuerySet, boundary: tuple | None, forward: bool, limit: int, *, base: QuerySet, follower_id: int
) -> QuerySet:
    """The ``limit`` feed rows after ``boundary`` (newest first; backward: oldest first), as listed rows.

    Each followed author's rows come from the partial index on (author_id, published_at DESC, id DESC) of
    listed workbooks, read forward or backward from the cursor; inactive authors are skipped here as in
    ``listed()``, so they cannot take the place of rows that belong on the page. ``qs`` (the whole feed,
    cursor applied) is not used: with its ``author_id IN (followed)`` PostgreSQL may still start from every
    row of the followed authors; the few ids found here are looked up by primary key in ``base`` instead.
    """
    workbooks, follows, users = Workbook._meta.db_table, Follow._meta.db_table, User._meta.db_table
    compare, direction = ("<", "DESC") if forward else (">", "ASC")
    seek = f"AND (v.published_at, v.id) {compare} (%s, %s)" if boundary is not None else ""
    sql = (
        f"SELECT w.id FROM {follows} f CROSS JOIN LATERAL ("  # noqa: S608 (our table names)
        f"SELECT v.id, v.published_at FROM {workbooks} v WHERE v.author_id = f.followed_id "
        f"AND v.visibility = %s AND v.published_at IS NOT NULL AND NOT v.embed_broken {seek} "
        f"ORDER BY v.published_at {direction}, v.id {direction} LIMIT %s) w "
        f"WHERE f.follower_id = %s AND NOT EXISTS "
        f"(SELECT 1 FROM {users} u WHERE u.id = f.followed_id AND NOT u.is_active) "
        f"ORDER BY w.published_at {direction}, w.id {direction} LIMIT %s"
    )
    params = [Visibility.PUBLIC.value, *(boundary or ()), limit, follower_id, limit]
    return base.filter(pk__in=RawSQL(sql, params))  # noqa: S611 (values are bound parameters)


FAVORITES_ORDER = ("-created_at", "-id")


def favorites_of(*, user: User) -> Listing:
    """The user's favorites that they can still open: listed or unlisted (they had the link), never one
    that became private or a draft, unless it is their own."""
    visible = Q(workbook__published_at__isnull=False, workbook__author__is_active=True) & ~Q(
        workbook__visibility=Visibility.PRIVATE
    )
    qs = (
        Favorite.objects.filter(user=user)
        .filter(visible | Q(workbook__author=user))
        .select_related("workbook__author")
        .prefetch_related("workbook__tags")
        .defer("workbook__description", "workbook__tag_names")
    )
    return Listing(qs, FAVORITES_ORDER)


def profile_workbooks(*, user: User, limit: int = 12) -> list[Workbook]:
    """The author's public workbooks, those with a broken embed link included (they leave the lists, not the
    author's own page)."""
    return list(with_cards(Workbook.objects.public().filter(author=user).order_by(*SORTS["newest"]))[:limit])


def own_unlisted_workbooks(*, user: User, limit: int = 50) -> list[Workbook]:
    """For the author's own eyes: drafts, private and unlisted workbooks, most recently edited first."""
    listed = Q(visibility=Visibility.PUBLIC, published_at__isnull=False)
    return list(Workbook.objects.filter(author=user).exclude(listed).order_by("-updated_at", "-id")[:limit])


def profile_stats(*, user: User) -> dict[str, int]:
    """Counts shown on a profile, from listed workbooks only: nothing private is counted."""
    totals = (
        Workbook.objects.public()
        .filter(author=user)
        .aggregate(workbooks=Count("id"), favorites_received=Coalesce(Sum("favorite_count"), 0))
    )
    return {"workbooks": totals["workbooks"], "favorites_received": totals["favorites_received"]}
