"""Reads for gallery pages. Every list starts from ``Workbook.objects.listed()`` so private, unlisted and
draft workbooks cannot reach a list, a search, a tag page, a feed or a count shown to others."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector
from django.db import connection
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.http import Http404

from accounts.models import Follow, User
from workbooks.models import Favorite, Tag, Visibility, Workbook

SORTS: dict[str, tuple[str, ...]] = {
    "newest": ("-published_at", "-id"),
    "oldest": ("published_at", "id"),
    "popular": ("-favorite_count", "-id"),
    "trending": ("-trending_score", "-id"),
}
DEFAULT_SORT = "newest"
RELEVANCE = "relevance"
MAX_TAG_FILTERS = 5
MAX_QUERY_LENGTH = 200


@dataclass(frozen=True)
class ListParams:
    q: str
    tags: tuple[str, ...]
    sort: str


def parse_list_params(*, q: str | None, tags: list[str], sort: str | None) -> ListParams:
    """Normalise what came in the URL: an unknown sort falls back to the default (relevance when searching)."""
    query = re.sub(r"\s+", " ", (q or "")).strip()[:MAX_QUERY_LENGTH]
    tag_slugs = tuple(dict.fromkeys(t.strip().lower() for t in tags if t.strip()))[:MAX_TAG_FILTERS]
    allowed = set(SORTS) | ({RELEVANCE} if query else set())
    chosen = sort if sort in allowed else (RELEVANCE if query else DEFAULT_SORT)
    return ListParams(q=query, tags=tag_slugs, sort=chosen)


def _with_cards(qs: QuerySet[Workbook]) -> QuerySet[Workbook]:
    """What a workbook card shows: the author in the same query, the tags in one more."""
    return qs.select_related("author").prefetch_related("tags")


def apply_search(qs: QuerySet[Workbook], query: str) -> QuerySet[Workbook]:
    if not query:
        return qs
    if connection.vendor == "postgresql":
        vector = SearchVector("title", weight="A", config="english") + SearchVector(
            "description", weight="B", config="english"
        )
        search = SearchQuery(query, search_type="websearch", config="english")
        return qs.annotate(search_rank=SearchRank(vector, search)).filter(search_rank__gt=0)
    # The embedded SQLite default: every word must appear in the title or the description.
    for word in query.split()[:10]:
        word = word.strip("\"'")
        if word and not word.startswith("-"):
            qs = qs.filter(Q(title__icontains=word) | Q(description__icontains=word))
    return qs


def workbook_list(*, params: ListParams) -> QuerySet[Workbook]:
    qs = Workbook.objects.listed()
    for slug in params.tags:
        qs = qs.filter(tag_links__tag__slug=slug)
    qs = apply_search(qs, params.q)
    if params.sort == RELEVANCE:
        order = (
            ("-search_rank", "-published_at", "-id")
            if connection.vendor == "postgresql"
            else SORTS[DEFAULT_SORT]
        )
    else:
        order = SORTS[params.sort]
    return _with_cards(qs.order_by(*order))


def tags_by_slugs(*, slugs: tuple[str, ...]) -> list[Tag]:
    if not slugs:
        return []
    found = {tag.slug: tag for tag in Tag.objects.filter(slug__in=slugs)}
    return [found[s] for s in slugs if s in found]


def tag_get(*, slug: str) -> Tag:
    tag = Tag.objects.filter(slug=slug).first()
    if tag is None:
        raise Http404("No such tag.")
    return tag


def home_sections(*, size: int = 8) -> dict[str, list[Workbook]]:
    listed = Workbook.objects.listed()
    return {
        "featured": list(_with_cards(listed.filter(is_featured=True).order_by(*SORTS["newest"]))[:size]),
        "trending": list(
            _with_cards(listed.filter(trending_score__gt=0).order_by(*SORTS["trending"]))[:size]
        ),
        "newest": list(_with_cards(listed.order_by(*SORTS["newest"]))[:size]),
    }


def can_view(*, workbook: Workbook, user: User) -> bool:
    is_author = user.is_authenticated and workbook.author_id == user.pk
    if workbook.published_at is None:
        return is_author  # drafts: their author only
    if workbook.visibility == Visibility.PRIVATE:
        return is_author or (user.is_authenticated and user.is_staff)
    return workbook.author.is_active or is_author or user.is_staff


def workbook_get_for_viewer(*, pk: int, user: User) -> Workbook:
    """The workbook if ``user`` may see it. Private, draft and missing workbooks are the same 404."""
    workbook = Workbook.objects.select_related("author").prefetch_related("tags").filter(pk=pk).first()
    if workbook is None or not can_view(workbook=workbook, user=user):
        raise Http404("No such workbook.")
    return workbook


def workbook_get_for_author(*, pk: int, user: User) -> Workbook:
    """For edit and delete: the author's own workbook, else a 404 that says nothing about it."""
    workbook = Workbook.objects.prefetch_related("tags").filter(pk=pk, author_id=user.pk).first()
    if workbook is None:
        raise Http404("No such workbook.")
    return workbook


def related_workbooks(*, workbook: Workbook, limit: int = 6) -> list[Workbook]:
    """Listed workbooks sharing tags with this one, most shared tags first."""
    tag_ids = [tag.pk for tag in workbook.tags.all()]
    if not tag_ids:
        return []
    qs = (
        Workbook.objects.listed()
        .filter(tag_links__tag_id__in=tag_ids)
        .exclude(pk=workbook.pk)
        .annotate(shared=Count("tag_links"))
        .order_by("-shared", "-favorite_count", "-id")
    )
    return list(_with_cards(qs)[:limit])


def is_favorited(*, user: User, workbook: Workbook) -> bool:
    if not user.is_authenticated:
        return False
    return Favorite.objects.filter(user=user, workbook=workbook).exists()


def feed_for(*, user: User) -> QuerySet[Workbook]:
    followed = Follow.objects.filter(follower=user).values("followed_id")
    return _with_cards(Workbook.objects.listed().filter(author_id__in=followed).order_by(*SORTS["newest"]))


def favorites_of(*, user: User) -> QuerySet[Favorite]:
    """The user's favorites that they can still open: listed or unlisted (they had the link), never one
    that became private or a draft, unless it is their own."""
    visible = Q(workbook__published_at__isnull=False, workbook__author__is_active=True) & ~Q(
        workbook__visibility=Visibility.PRIVATE
    )
    return (
        Favorite.objects.filter(user=user)
        .filter(visible | Q(workbook__author=user))
        .select_related("workbook__author")
        .prefetch_related("workbook__tags")
        .order_by("-created_at", "-id")
    )


def profile_workbooks(*, user: User, limit: int = 12) -> list[Workbook]:
    return list(_with_cards(Workbook.objects.listed().filter(author=user).order_by(*SORTS["newest"]))[:limit])


def profile_stats(*, user: User) -> dict[str, int]:
    """Counts shown on a profile, from listed workbooks only: nothing private is counted."""
    totals = (
        Workbook.objects.listed()
        .filter(author=user)
        .aggregate(workbooks=Count("id"), favorites_received=Coalesce(Sum("favorite_count"), 0))
    )
    return {"workbooks": totals["workbooks"], "favorites_received": totals["favorites_received"]}


def tag_usage(*, tag: Tag) -> int:
    return Workbook.objects.listed().filter(tag_links__tag=tag).count()
