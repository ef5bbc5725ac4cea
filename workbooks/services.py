"""Writes to the gallery. Views, admin actions, tasks and the view-count pipeline (workbooks.counters) call
these and nothing else writes workbooks, tags, favorites, statistics, link checks or the search word list;
that makes this module the one place where cache invalidation goes (tests/test_write_boundary.py checks it).

Services queue Celery tasks (thumbnail renders, embed previews) after their transaction commits, by the
tasks' registered names: ``workbooks.tasks`` calls these services, so it sits above this module and is never
imported here.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import User, ci
from sigma_playground.caching import invalidate, keys
from sigma_playground.images import ProcessedImage
from workbooks import maintenance, search, signals, thumbnails, trending
from workbooks.embed import Outcome, interval
from workbooks.models import (
    AppliedViewBatch,
    EmbedCheck,
    EmbedStatus,
    Favorite,
    SearchLexeme,
    Tag,
    Visibility,
    Workbook,
    WorkbookDailyStat,
    WorkbookTag,
    new_share_token,
)

logger = logging.getLogger(__name__)

# The tasks these services queue, by registered name (see the module docstring); tests check each resolves.
RENDER_THUMBNAIL_TASK = "workbooks.tasks.render_thumbnail_derivatives"
CAPTURE_PREVIEW_TASK = "workbooks.tasks.capture_embed_preview"


# What _store_thumbnail sets on a workbook.
THUMBNAIL_FIELDS = [
    "thumbnail",
    "thumbnail_source",
    "thumbnail_width",
    "thumbnail_height",
    "thumbnail_derivatives",
]


def _enqueue_on_commit(task_name: str, *args: object) -> None:
    """Queue a task once the transaction commits. ``robust``: a broker outage must not turn a committed save
    into an error page; the beat sweeps (``render_pending_thumbnails``, ``refresh_embed_previews``) pick up
    what was not queued."""
    transaction.on_commit(lambda: current_app.tasks[task_name].delay(*args), robust=True)


MAX_TAGS = 10
MAX_TAG_LENGTH = 40
# Path segments that follow /workbooks/<id>/ for actions; a title must not produce one as its slug.
RESERVED_SLUGS = frozenset({"edit", "delete", "favorite", "unfavorite", "stats"})
TAG_PALETTE = (
    "#2456d3", "#1a7f37", "#b42318", "#9a6700", "#8250df", "#0f766e",
    "#c2410c", "#be185d", "#4d7c0f", "#0369a1", "#6d28d9", "#475569",
)  # fmt: skip


def make_slug(title: str) -> str:
    slug = slugify(title)[:200].strip("-") or "workbook"
    return f"{slug}-workbook" if slug in RESERVED_SLUGS else slug


def tag_colour(name: str) -> str:
    digest = hashlib.sha256(name.lower().encode()).digest()
    return TAG_PALETTE[digest[0] % len(TAG_PALETTE)]


def tags_resolve(*, names: Sequence[str]) -> list[Tag]:
    """The tags for ``names``, creating missing ones. The slug is a tag's identity: "Supply Chain" and
    "supply-chain" are the same tag."""
    tags: list[Tag] = []
    seen: set[str] = set()
    for name in names:
        slug = slugify(name)[:50]
        if not slug or slug in seen:
            continue
        seen.add(slug)
        tag = Tag.objects.filter(slug=slug).first()
        if tag is None:
            try:
                with transaction.atomic():
                    tag = Tag.objects.create(name=name, slug=slug, colour=tag_colour(name))
            except IntegrityError:  # created concurrently, or same name in another case
                tag = Tag.objects.filter(slug=slug).first() or Tag.objects.get(name__lower=ci(name))
        tags.append(tag)
    return tags


def _set_tags(workbook: Workbook, names: Sequence[str]) -> None:
    tags = tags_resolve(names=names)
    wanted = {tag.pk for tag in tags}
    current = set(WorkbookTag.objects.filter(workbook=workbook).values_list("tag_id", flat=True))
    if current - wanted:
        WorkbookTag.objects.filter(workbook=workbook, tag_id__in=current - wanted).delete()
    if wanted - current:
        WorkbookTag.objects.bulk_create(
            [WorkbookTag(workbook=workbook, tag_id=pk) for pk in sorted(wanted - current)],
            ignore_conflicts=True,
        )
    tag_names = tag_names_text(tag.name for tag in tags)
    if workbook.tag_names != tag_names:
        workbook.tag_names = tag_names
        Workbook.objects.filter(pk=workbook.pk).update(tag_names=tag_names)


def tag_names_text(names: Iterable[str]) -> str:
    """The denormalised ``Workbook.tag_names`` that the full-text column indexes."""
    return " ".join(sorted(names, key=str.lower))


def _refresh_tag_names(*, workbook_ids: Iterable[int]) -> None:
    """Recompute ``tag_names`` for these workbooks (after a tag is renamed or deleted)."""
    ids = sorted(set(workbook_ids))
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        names: dict[int, list[str]] = {pk: [] for pk in chunk}
        for workbook_id, name in WorkbookTag.objects.filter(workbook_id__in=chunk).values_list(
            "workbook_id", "tag__name"
        ):
            names[workbook_id].append(name)
        Workbook.objects.bulk_update(
            [Workbook(pk=pk, tag_names=tag_names_text(n)) for pk, n in names.items()], ["tag_names"]
        )


P = ParamSpec("P")
R = TypeVar("R")
# Masters saved by the service call running in this context (see _removes_orphan_masters).
_saved_masters: ContextVar[list[str] | None] = ContextVar("saved_masters", default=None)


def _removes_orphan_masters(fn: Callable[P, R]) -> Callable[P, R]:
    """A master saved inside a transaction that rolls back is an orphan file: delete it when the service's
    own transaction was the outermost one. (A caller's outer transaction that rolls back later is not seen
    here; the daily sweep, thumbnail_orphans_sweep, removes those.)"""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        saved: list[str] = []
        token = _saved_masters.set(saved)
        try:
            return fn(*args, **kwargs)
        except BaseException:
            if saved and not transaction.get_connection().in_atomic_block:
                for name in saved:
                    thumbnails.delete_files({"master": name})
            raise
        finally:
            _saved_masters.reset(token)

    return wrapper


def _store_thumbnail(workbook: Workbook, image: ProcessedImage, *, source: str = "upload") -> None:
    old = dict(workbook.thumbnail_derivatives or {}), workbook.thumbnail
    name = thumbnails.save_master(workbook_id=workbook.pk, image=image)
    saved = _saved_masters.get()
    if saved is not None:
        saved.append(name)
    workbook.thumbnail = name
    workbook.thumbnail_source = source
    workbook.thumbnail_width, workbook.thumbnail_height = image.width, image.height
    workbook.thumbnail_derivatives = {}
    thumbnail_render_enqueue(workbook_id=workbook.pk, master_name=name)
    _delete_thumbnail_files_on_commit(*old)


def thumbnail_render_enqueue(*, workbook_id: int, master_name: str) -> None:
    """Render a new master's derivatives (``workbooks.tasks.render_thumbnail_derivatives``) once the
    transaction that stored it has committed; nothing when it rolls back. The workbook shows its placeholder
    until the derivatives are recorded (``workbook_thumbnail_rendered``)."""
    _enqueue_on_commit(RENDER_THUMBNAIL_TASK, workbook_id, master_name)


def _delete_thumbnail_files_on_commit(derivatives: dict, master: str) -> None:
    if derivatives or master:
        description = {**derivatives, "master": master or derivatives.get("master", "")}
        transaction.on_commit(lambda: thumbnails.delete_files(description))


@_removes_orphan_masters
@transaction.atomic
def workbook_publish(
    *,
    author: User,
    title: str,
    sigma_embed_url: str,
    description: str = "",
    tags: Sequence[str] = (),
    visibility: str = Visibility.PUBLIC,
    publish: bool = True,
    thumbnail: ProcessedImage | None = None,
) -> Workbook:
    """Create a workbook: published now when ``publish``, otherwise a draft only its author sees."""
    workbook = Workbook(
        author=author,
        title=title,
        slug=make_slug(title),
        description=description,
        sigma_embed_url=sigma_embed_url,
        visibility=visibility,
        published_at=timezone.now() if publish else None,
    )
    workbook.full_clean(exclude=["thumbnail"])
    workbook.save()
    _set_tags(workbook, tags)
    if thumbnail is not None:
        _store_thumbnail(workbook, thumbnail)
        workbook.save(update_fields=THUMBNAIL_FIELDS)
    _search_lexemes_add(workbook_id=workbook.pk)
    _embed_link_set(workbook)
    invalidate.workbooks_changed(workbook_ids=[workbook.pk], author_usernames=[author.username], created=True)
    if workbook.published_at is not None and workbook.visibility == Visibility.PUBLIC:
        _announce(workbook)
    return workbook


def _announce(workbook: Workbook) -> None:
    """A workbook just became public and published: its author's followers hear of it (never of an unlisted
    one, whose link is for the people its author gives it to)."""
    transaction.on_commit(
        lambda: signals.workbook_published.send(sender=Workbook, workbook=workbook), robust=True
    )


@_removes_orphan_masters
@transaction.atomic
def workbook_update(
    *,
    workbook: Workbook,
    title: str,
    sigma_embed_url: str,
    description: str,
    tags: Sequence[str],
    visibility: str,
    publish: bool,
    thumbnail: ProcessedImage | None = None,
    clear_thumbnail: bool = False,
) -> Workbook:
    """Edit a workbook. Unticking ``publish`` turns a published workbook back into a draft; ticking it
    keeps the original publish date."""
    link_changed = workbook.sigma_embed_url != sigma_embed_url
    was_announced = workbook.published_at is not None and workbook.visibility == Visibility.PUBLIC
    if title != workbook.title:
        workbook.slug = make_slug(title)  # unchanged otherwise: a slug staff set in admin stays
    workbook.title = title
    workbook.description = description
    workbook.sigma_embed_url = sigma_embed_url
    workbook.visibility = visibility
    if publish and workbook.published_at is None:
        workbook.published_at = timezone.now()
    elif not publish:
        workbook.published_at = None
    if thumbnail is not None:
        _store_thumbnail(workbook, thumbnail)
    elif clear_thumbnail and workbook.thumbnail:
        _delete_thumbnail_files_on_commit(dict(workbook.thumbnail_derivatives or {}), workbook.thumbnail)
        workbook.thumbnail, workbook.thumbnail_derivatives, workbook.thumbnail_source = "", {}, ""
        workbook.thumbnail_width = workbook.thumbnail_height = None
        link_changed = True  # no picture now: a preview from the embed is wanted
    workbook.full_clean(exclude=["thumbnail"])
    workbook.save()
    _set_tags(workbook, tags)
    _search_lexemes_add(workbook_id=workbook.pk)
    if link_changed:
        _embed_link_set(workbook)
    elif thumbnail is not None:
        EmbedCheck.objects.filter(workbook=workbook).update(preview_next_at=None)  # an upload: no previews
    invalidate.workbooks_changed(workbook_ids=[workbook.pk], author_usernames=[workbook.author.username])
    if not was_announced and workbook.published_at is not None and workbook.visibility == Visibility.PUBLIC:
        _announce(workbook)
    return workbook


class StaffEditRefused(ValueError):
    """An admin edit that cannot be applied; the message is for staff."""


def staff_edit_problems(*, slug: str, published_at: dt.datetime | None) -> dict[str, str]:
    """What makes an admin edit of these fields impossible, by field (empty: it can be applied)."""
    problems = {}
    if slug in RESERVED_SLUGS:
        problems["slug"] = f"“{slug}” is the address of a page of every workbook; choose another slug."
    if published_at is not None and published_at > timezone.now():
        problems["published_at"] = (
            "A workbook cannot be published in the future (there is no scheduled publishing): "
            "use a date that has passed, or leave it empty for a draft."
        )
    return problems


@transaction.atomic
def workbook_staff_update(
    *,
    workbook_id: int,
    author: User,
    title: str,
    slug: str,
    description: str,
    sigma_embed_url: str,
    visibility: str,
    published_at: dt.datetime | None,
    is_featured: bool,
) -> Workbook:
    """Staff's edit in admin: every field its form shows, applied as given. Unlike the author's edit, the
    slug and the publish date are staff's to set (a new date moves the workbook in "newest"; none makes it
    a draft). Compared with the stored row, so a save that changes nothing invalidates nothing. A change
    invalidates the workbook's namespace (its detail page under the old slug too: pages and CDN copies are
    keyed by its id) and the old and the new author's pages."""
    problems = staff_edit_problems(slug=slug, published_at=published_at)
    if problems:
        raise StaffEditRefused(" ".join(problems.values()))
    workbook = Workbook.objects.select_for_update().select_related("author").get(pk=workbook_id)
    old_author = workbook.author.username
    was_announced = workbook.published_at is not None and workbook.visibility == Visibility.PUBLIC
    values = {
        "author_id": author.pk,
        "title": title,
        "slug": slug,
        "description": description,
        "sigma_embed_url": sigma_embed_url,
        "visibility": visibility,
        "published_at": published_at,
        "is_featured": is_featured,
    }
    changed = [field for field, value in values.items() if getattr(workbook, field) != value]
    if not changed:
        return workbook
    for field in changed:
        setattr(workbook, field, values[field])
    if "author_id" in changed:
        workbook.author = author
    workbook.full_clean(exclude=["thumbnail"])
    workbook.save()
    if {"title", "description"} & set(changed):
        _search_lexemes_add(workbook_id=workbook.pk)
    if "sigma_embed_url" in changed:
        _embed_link_set(workbook)
    invalidate.workbooks_changed(workbook_ids=[workbook.pk], author_usernames={old_author, author.username})
    if not was_announced and workbook.published_at is not None and workbook.visibility == Visibility.PUBLIC:
        _announce(workbook)
    return workbook


@transaction.atomic
def workbook_set_thumbnail(*, workbook: Workbook, thumbnail: ProcessedImage) -> Workbook:
    """Give a workbook a new thumbnail (a master from ``thumbnails.prepare_master``); the derivatives are
    rendered by the Celery task after commit, as for an upload through the form."""
    _store_thumbnail(workbook, thumbnail)
    workbook.save(update_fields=["thumbnail", "thumbnail_width", "thumbnail_height", "thumbnail_derivatives"])
    invalidate.workbooks_changed(workbook_ids=[workbook.pk], author_usernames=[workbook.author.username])
    return workbook


@transaction.atomic
def workbook_delete(*, workbook: Workbook) -> None:
    _delete_thumbnail_files_on_commit(dict(workbook.thumbnail_derivatives or {}), workbook.thumbnail)
    invalidate.workbooks_changed(workbook_ids=[workbook.pk], author_usernames=[workbook.author.username])
    workbook.delete()


def _bulk_change(workbook_ids: Iterable[int], **changes: object) -> int:
    """Apply ``changes`` to the workbooks that differ, and invalidate exactly those."""
    ids = list(workbook_ids)
    with transaction.atomic():
        qs = Workbook.objects.filter(pk__in=ids)
        for field, value in changes.items():
            if field == "published_at":
                qs = qs.filter(published_at__isnull=value is not None)
            else:
                qs = qs.exclude(**{field: value})
        affected = list(qs.select_for_update().values_list("pk", "author__username"))
        if not affected:
            return 0
        Workbook.objects.filter(pk__in=[pk for pk, _ in affected]).update(
            **changes, updated_at=timezone.now()
        )
        if changes.get("visibility") == Visibility.UNLISTED:
            _give_share_tokens([pk for pk, _ in affected])
        invalidate.workbooks_changed(
            workbook_ids=[pk for pk, _ in affected], author_usernames={name for _, name in affected}
        )
    return len(affected)


def _give_share_tokens(workbook_ids: list[int]) -> None:
    """Unlisted workbooks changed in bulk (admin) get their share token, as save() gives one."""
    missing = Workbook.objects.filter(pk__in=workbook_ids, share_token__isnull=True).values_list(
        "pk", flat=True
    )
    Workbook.objects.bulk_update(
        [Workbook(pk=pk, share_token=new_share_token()) for pk in missing], ["share_token"]
    )


def workbooks_set_visibility(*, workbook_ids: Iterable[int], visibility: str) -> int:
    if visibility not in Visibility.values:
        raise ValueError(f"unknown visibility {visibility!r}")
    return _bulk_change(workbook_ids, visibility=visibility)


def workbooks_set_published(*, workbook_ids: Iterable[int], published: bool) -> int:
    return _bulk_change(workbook_ids, published_at=timezone.now() if published else None)


def workbooks_set_featured(*, workbook_ids: Iterable[int], featured: bool) -> int:
    return _bulk_change(workbook_ids, is_featured=featured)


def workbook_thumbnail_rendered(
    *, workbook_id: int, master_name: str, description: Mapping[str, Any]
) -> bool:
    """Record the derivatives rendered from ``master_name`` (by the task ``render_thumbnail_derivatives``);
    True when they were recorded: cards and the detail page can then show the picture, and derivatives
    recorded before (an older master's, or a previous run's under other names) are deleted. When the workbook
    is gone or its thumbnail was replaced meanwhile, the files just rendered are deleted again."""
    with transaction.atomic():
        current = (
            Workbook.objects.select_for_update()
            .filter(pk=workbook_id, thumbnail=master_name)
            .values("thumbnail_derivatives")
            .first()
        )
        updated = current is not None and bool(
            Workbook.objects.filter(pk=workbook_id, thumbnail=master_name).update(
                thumbnail_derivatives=description
            )
        )
    rendered = set(thumbnails.derivative_names(description))
    if not updated:
        thumbnails.delete_names(default_storage, rendered)
        return False
    author = Workbook.objects.filter(pk=workbook_id).values_list("author__username", flat=True).first()
    if author is not None:
        invalidate.workbooks_changed(workbook_ids=[workbook_id], author_usernames=[author])
    stale = set(thumbnails.derivative_names((current or {}).get("thumbnail_derivatives") or {})) - rendered
    thumbnails.delete_names(default_storage, sorted(stale))
    return True


def thumbnail_orphans_sweep(*, older_than: float = thumbnails.ORPHAN_MIN_AGE_SECONDS) -> int:
    """Delete masters (and their derivatives) that no workbook refers to: left by a transaction that rolled
    back around the service that saved them, or by a process that died in between. Masters younger than
    ``older_than`` seconds may belong to a transaction still running and stay. Returns how many went."""
    removed = 0
    for workbook_id, names in thumbnails.old_masters(older_than=older_than):
        used = set(Workbook.objects.filter(pk=workbook_id).values_list("thumbnail", flat=True))
        for name in names:
            if name not in used:
                logger.info("thumbnails: removing orphan master %s", name)
                thumbnails.delete_files({"master": name})
                removed += 1
    return removed


@transaction.atomic
def tag_create(*, name: str, slug: str, colour: str) -> Tag:
    """A tag made by staff (authors' tags come from tags_resolve). It is on no workbook yet, so it shows
    nowhere: nothing to invalidate."""
    tag = Tag(name=name, slug=slug, colour=colour.lower())
    tag.full_clean()
    tag.save()
    return tag


@transaction.atomic
def tag_update(*, tag: Tag, name: str, colour: str) -> Tag:
    """Rename or recolour a tag. Compared with the stored row, not with ``tag`` (a form may already have put
    the new values on it): a rename rewrites ``tag_names`` of its workbooks (their search text), and a save
    that changes nothing invalidates nothing."""
    stored = Tag.objects.select_for_update().get(pk=tag.pk)
    colour = colour.lower()
    renamed = stored.name != name
    if not renamed and stored.colour == colour:
        tag.name, tag.colour = stored.name, stored.colour
        return tag
    tag.name, tag.colour = name, colour
    tag.full_clean(exclude=["slug"])
    tag.save(update_fields=["name", "colour"])
    if renamed:
        _refresh_tag_names(
            workbook_ids=WorkbookTag.objects.filter(tag=tag).values_list("workbook_id", flat=True)
        )
    invalidate.lists_changed()  # tag names and colours show on cards, tag pages and detail pages
    return tag


@transaction.atomic
def tag_delete(*, tag: Tag) -> None:
    workbook_ids = list(WorkbookTag.objects.filter(tag=tag).values_list("workbook_id", flat=True))
    tag.delete()
    _refresh_tag_names(workbook_ids=workbook_ids)
    invalidate.lists_changed()


# --- Favorites --------------------------------------------------------------------------------------------


def _bump_daily(*, workbook_id: int, date: dt.date, views: int = 0, favorites: int = 0) -> None:
    """Add to a day's statistics with one upsert (PostgreSQL and SQLite both speak ON CONFLICT)."""
    table = WorkbookDailyStat._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (workbook_id, date, views, favorites) VALUES (%s, %s, %s, %s) "  # noqa: S608
            f"ON CONFLICT (workbook_id, date) DO UPDATE SET views = {table}.views + excluded.views, "
            f"favorites = {table}.favorites + excluded.favorites",
            [workbook_id, date, views, favorites],
        )


def favorite_add(*, user: User, workbook: Workbook) -> bool:
    """Favorite ``workbook``; idempotent. The row and the counter change in one transaction, so
    ``favorite_count`` always equals the number of rows, whatever runs concurrently."""
    now = timezone.now()
    with transaction.atomic():
        try:
            with transaction.atomic():
                Favorite.objects.create(user=user, workbook=workbook, created_at=now)
        except IntegrityError:
            return False  # already a favorite (perhaps by a concurrent identical request)
        Workbook.objects.filter(pk=workbook.pk).update(favorite_count=F("favorite_count") + 1)
        _bump_daily(workbook_id=workbook.pk, date=now.date(), favorites=1)
        invalidate.favorite_changed(workbook_id=workbook.pk)
        transaction.on_commit(
            lambda: signals.workbook_favorited.send(sender=Workbook, workbook=workbook, user=user),
            robust=True,
        )
    return True


def favorite_remove(*, user: User, workbook: Workbook) -> bool:
    """Un-favorite; idempotent. A favorite added and removed on the same day leaves that day's statistic
    as it was, so toggling cannot pump trending."""
    with transaction.atomic():
        favorite = Favorite.objects.select_for_update().filter(user=user, workbook=workbook).first()
        if favorite is None:
            return False
        favorite.delete()
        Workbook.objects.filter(pk=workbook.pk).update(favorite_count=Greatest(F("favorite_count") - 1, 0))
        WorkbookDailyStat.objects.filter(
            workbook_id=workbook.pk, date=favorite.created_at.date(), favorites__gt=0
        ).update(favorites=F("favorites") - 1)
        invalidate.favorite_changed(workbook_id=workbook.pk)
    return True


# --- Embed link checks (workbooks.linkcheck) --------------------------------------------------------------

RECENT_CHECKS = 10


def _embed_link_set(workbook: Workbook) -> None:
    """A new or changed link: its checks start over, due now. A workbook already marked broken stays so
    until the new link passes a check (a broken link swapped for another broken one must not reappear)."""
    now = timezone.now()
    wants_preview = workbook.thumbnail_source != "upload" and not (
        workbook.thumbnail and workbook.thumbnail_source != "embed"
    )
    EmbedCheck.objects.update_or_create(
        workbook=workbook,
        defaults={
            "url": workbook.sigma_embed_url,
            "status": EmbedStatus.UNKNOWN,
            "http_status": None,
            "error": "",
            "consecutive_failures": 0,
            "next_check_at": now,
            "preview_next_at": now if wants_preview else None,
            "preview_failures": 0,
            "preview_error": "",
        },
    )
    if wants_preview and settings.EMBED_PREVIEWS_ENABLED:
        _enqueue_on_commit(CAPTURE_PREVIEW_TASK, workbook.pk)


def embed_checks_discover(*, limit: int) -> int:
    """Create the missing check rows among the next ``limit`` workbooks after the remembered cursor (one
    primary-key range; rows bulk-loaded by COPY get theirs this way); returns how many workbooks it looked
    at. The cursor wraps around to the beginning after the last workbook."""
    cursor_key = keys.linkcheck_cursor()
    after = cache.get(cursor_key) or 0
    ids = list(
        Workbook.objects.filter(pk__gt=after)
        .order_by("pk")
        .values_list("pk", "sigma_embed_url", "thumbnail", "thumbnail_source")[:limit]
    )
    if not ids:
        cache.set(cursor_key, 0, timeout=None)
        return 0
    now = timezone.now()
    EmbedCheck.objects.bulk_create(
        [
            EmbedCheck(
                workbook_id=pk,
                url=url,
                next_check_at=now,
                preview_next_at=now if not thumbnail or source == "embed" else None,
            )
            for pk, url, thumbnail, source in ids
        ],
        ignore_conflicts=True,
    )
    cache.set(cursor_key, ids[-1][0], timeout=None)
    return len(ids)


def embed_checks_postpone(*, workbook_ids: Sequence[int], now: dt.datetime) -> int:
    """Push the checks of links nobody else sees (drafts, private workbooks) or on a host no longer allowed
    back a full healthy interval, without a request; returns how many rows moved."""
    return EmbedCheck.objects.filter(workbook_id__in=workbook_ids).update(next_check_at=now + interval(True))


def embed_check_record(*, check: EmbedCheck, outcome: Outcome, at: dt.datetime) -> str | None:
    """Record one check of a workbook's link; returns "broken" or "recovered" when that changed.

    ``EMBED_CHECK_FAILURES_TO_BREAK`` consecutive failures mark the workbook broken: it leaves the lists
    (``listed()``), its author's page keeps it, and its author is notified; a success clears it."""
    with transaction.atomic():
        row = (
            EmbedCheck.objects.select_for_update()
            .select_related("workbook__author")
            .filter(pk=check.pk)
            .first()
        )
        if row is None:
            return None  # the workbook was deleted meanwhile
        workbook = row.workbook
        if row.url != workbook.sigma_embed_url:
            return None  # the link changed while it was being checked: this result is about the old one
        failures = 0 if outcome.ok else row.consecutive_failures + 1
        broken_now = not outcome.ok and failures >= settings.EMBED_CHECK_FAILURES_TO_BREAK
        row.http_status, row.error, row.duration_ms = outcome.http_status, outcome.error, outcome.duration_ms
        row.checked_at, row.consecutive_failures = at, min(failures, 32767)
        row.status = (
            EmbedStatus.OK if outcome.ok else EmbedStatus.BROKEN if broken_now else EmbedStatus.FAILING
        )
        row.next_check_at = at + interval(outcome.ok)
        entry = [at.isoformat(timespec="seconds"), outcome.http_status, "ok" if outcome.ok else outcome.error]
        row.recent = [entry, *(row.recent or [])][:RECENT_CHECKS]
        change: str | None = None
        if broken_now and not workbook.embed_broken:
            change, row.broken_since = "broken", at
        elif outcome.ok and workbook.embed_broken:
            change, row.broken_since = "recovered", None
        row.save()
        if change is not None:
            workbook.embed_broken = change == "broken"
            Workbook.objects.filter(pk=workbook.pk).update(embed_broken=workbook.embed_broken)
            author = workbook.author.username
            invalidate.workbooks_changed(workbook_ids=[workbook.pk], author_usernames=[author])
            transaction.on_commit(
                lambda: signals.embed_link_changed.send(
                    sender=Workbook, workbook=workbook, broken=workbook.embed_broken
                )
            )
    if change:
        logger.info(
            "embed link of workbook %s: %s (%s)", workbook.pk, change, outcome.error or outcome.http_status
        )
    return change


# --- Previews from the embed (workbooks.preview) --------------------------------------------------------


def wants_preview(*, thumbnail: str, thumbnail_source: str) -> bool:
    """No picture, or one we took ourselves: an uploaded thumbnail (or one from before sources were
    recorded) is never replaced by a screenshot."""
    return not thumbnail or thumbnail_source == "embed"


def workbook_preview_captured(*, workbook_id: int, url: str, image: ProcessedImage) -> bool:
    """Store a screenshot of ``url`` as the workbook's thumbnail (master now, derivatives by the render task);
    False when it no longer applies (deleted, link changed, or the author uploaded a picture meanwhile)."""
    now = timezone.now()
    with transaction.atomic():
        workbook = (
            Workbook.objects.select_for_update().select_related("author").filter(pk=workbook_id).first()
        )
        if workbook is None or workbook.sigma_embed_url != url:
            return False
        if not wants_preview(thumbnail=workbook.thumbnail, thumbnail_source=workbook.thumbnail_source):
            return False
        _store_thumbnail(workbook, image, source="embed")
        workbook.save(update_fields=[*THUMBNAIL_FIELDS, "updated_at"])
        EmbedCheck.objects.filter(workbook_id=workbook_id).update(
            preview_url=url,
            preview_taken_at=now,
            preview_failures=0,
            preview_error="",
            preview_next_at=now + dt.timedelta(days=settings.EMBED_PREVIEW_MAX_AGE_DAYS),
        )
        invalidate.workbooks_changed(workbook_ids=[workbook_id], author_usernames=[workbook.author.username])
    return True


def workbook_preview_failed(*, workbook_id: int, error: str, retry_at: dt.datetime) -> None:
    """A capture failed: the workbook keeps the preview it had (the generated one, or an older screenshot)."""
    EmbedCheck.objects.filter(workbook_id=workbook_id).update(
        preview_failures=F("preview_failures") + 1, preview_error=error[:200], preview_next_at=retry_at
    )


def embed_previews_take_due(*, now: dt.datetime, limit: int) -> list[int]:
    """The workbooks whose preview is due (new or changed links the web process could not queue, weekly
    refreshes, failures whose backoff is over), ``limit`` at most, each pushed an hour ahead first so that a
    slow queue is not fed the same workbook twice; the caller queues their captures."""
    ids = list(
        EmbedCheck.objects.filter(preview_next_at__lte=now)
        .order_by("preview_next_at")
        .values_list("workbook_id", flat=True)[:limit]
    )
    if ids:
        EmbedCheck.objects.filter(workbook_id__in=ids).update(preview_next_at=now + dt.timedelta(hours=1))
    return ids


# --- View counts (the database end of workbooks.counters) ----------------------------------------------


def workbook_views_apply(*, counts: Mapping[tuple[int, dt.date], int], batch_id: str | None = None) -> bool:
    """Add ``counts`` ((workbook id, day) -> views) to totals and daily statistics in one transaction.

    With ``batch_id``, at most once: returns False (and writes nothing) when that batch was applied before.
    Counts only grow (non-positive ones are ignored); views of deleted workbooks are dropped. Nothing is
    invalidated: list pages carry counters with a lag of at most PAGE_CACHE_TTL (caching/invalidate.py).
    """
    counts = {k: v for k, v in counts.items() if v > 0}
    with transaction.atomic():
        if batch_id is not None:
            _, created = AppliedViewBatch.objects.get_or_create(batch_id=batch_id)
            if not created:
                return False
        if not counts:
            return True
        totals: dict[int, int] = {}
        for (workbook_id, _day), n in counts.items():
            totals[workbook_id] = totals.get(workbook_id, 0) + n
        existing = set(Workbook.objects.filter(pk__in=list(totals)).values_list("pk", flat=True))
        rows = [(pk, n) for pk, n in sorted(totals.items()) if pk in existing]  # deleted workbooks drop out
        if not rows:
            return True
        table, stats = Workbook._meta.db_table, WorkbookDailyStat._meta.db_table
        with connection.cursor() as cursor:
            # Sorted ids: concurrent flushes lock rows in the same order and cannot deadlock.
            if connection.vendor == "postgresql":
                cursor.execute(
                    f"UPDATE {table} SET view_count = {table}.view_count + v.n "  # noqa: S608 (our table names)
                    f"FROM unnest(%s::bigint[], %s::bigint[]) AS v(id, n) WHERE {table}.id = v.id",
                    [[pk for pk, _ in rows], [n for _, n in rows]],
                )
            else:  # the embedded SQLite default counts directly, a view at a time
                for pk, n in rows:
                    Workbook.objects.filter(pk=pk).update(view_count=F("view_count") + n)
            stat_rows = [(pk, day, n) for (pk, day), n in sorted(counts.items()) if pk in existing]
            cursor.execute(
                f"INSERT INTO {stats} (workbook_id, date, views, favorites) VALUES "  # noqa: S608
                + ", ".join(["(%s, %s, %s, 0)"] * len(stat_rows))
                + f" ON CONFLICT (workbook_id, date) DO UPDATE SET views = {stats}.views + excluded.views",
                [x for row in stat_rows for x in row],
            )
    return True


def workbook_counters_recount(*, chunk: int = maintenance.CHUNK) -> dict[str, int]:
    """Nightly: recompute ``favorite_count`` (from Favorite rows) and ``view_count`` (from the daily
    statistics) for every workbook, fix what drifted and export the drift (workbooks.maintenance). A
    ``view_count`` is only ever raised: counts shown to people never go backwards (a total above its
    statistics is reported, not lowered). Also forgets applied view batches older than a week."""
    drift = dict.fromkeys(maintenance.COUNTERS, 0)
    rows = dict.fromkeys(maintenance.COUNTERS, 0)
    changed: list[int] = []
    favorites, views = maintenance.favorite_rows_count(), maintenance.daily_views_sum()
    last = 0
    while True:
        ids = list(Workbook.objects.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:chunk])
        if not ids:
            break
        last = ids[-1]
        with transaction.atomic():
            actual = (
                Workbook.objects.filter(pk__in=ids)
                .select_for_update()
                .annotate(
                    real_favorites=Coalesce(favorites, 0),
                    real_views=Coalesce(views, 0),
                )
                .values_list("pk", "favorite_count", "real_favorites", "view_count", "real_views")
            )
            for pk, favorite_count, real_favorites, view_count, real_views in actual:
                if favorite_count != real_favorites:
                    drift["favorite_count"] += abs(favorite_count - real_favorites)
                    rows["favorite_count"] += 1
                    Workbook.objects.filter(pk=pk).update(favorite_count=real_favorites)
                    changed.append(pk)
                if view_count != real_views:
                    drift["view_count"] += abs(view_count - real_views)
                    rows["view_count"] += 1
                    if real_views > view_count:
                        Workbook.objects.filter(pk=pk).update(view_count=real_views)
                        changed.append(pk)
    maintenance.export_drift(drift=drift, rows=rows)
    if changed:
        logger.warning("counter recount fixed %d workbooks: %s", len(set(changed)), drift)
        with transaction.atomic():
            invalidate.lists_changed()
    AppliedViewBatch.objects.filter(applied_at__lt=timezone.now() - dt.timedelta(days=7)).delete()
    return {**{f"{k}_drift": v for k, v in drift.items()}, **{f"{k}_rows": v for k, v in rows.items()}}


# --- Trending (workbooks.trending) ------------------------------------------------------------------------


@dataclass(frozen=True)
class TrendingRecomputed:
    changed: int  # workbooks whose score changed
    order_changed: bool  # the first page of the trending order changed: ``lists`` was bumped


def trending_recompute(*, today: dt.date | None = None) -> TrendingRecomputed:
    """Store every trending score computed from the statistics (workbooks.trending), in one transaction:
    workbooks with activity in the window get their new score, others that still carry one go back to 0.

    Scores change on nearly every run (each view moves one), but no page shows a score: pages show the
    order. The ``lists`` namespace, which every list and detail page depends on, is bumped only when the
    order on the first page of the trending list (any page size, home's section included) changed, so that
    a recompute is not a wave of rebuilds of every cached page (issue 15)."""
    scores = trending.compute_scores(today=today or timezone.now().date())
    with transaction.atomic():
        before = trending.visible_ranking()
        changed = (
            Workbook.objects.filter(trending_score__gt=0)
            .exclude(pk__in=list(scores))
            .update(trending_score=0.0)
        )
        items = sorted(scores.items())
        for i in range(0, len(items), 1000):
            changed += _set_trending_scores(items[i : i + 1000])
        order_changed = bool(changed) and trending.visible_ranking() != before
        if order_changed:
            invalidate.lists_changed()  # after the commit
    return TrendingRecomputed(changed=changed, order_changed=order_changed)


def _set_trending_scores(items: list[tuple[int, float]]) -> int:
    """One batched UPDATE of (id, score) pairs that differ; returns how many rows changed."""
    table = Workbook._meta.db_table
    if connection.vendor == "postgresql":
        ids = [pk for pk, _ in items]
        values = [round(value, 6) for _, value in items]
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} AS w SET trending_score = v.score "  # noqa: S608 (table name is ours)
                "FROM unnest(%s::bigint[], %s::float8[]) AS v(id, score) "
                "WHERE w.id = v.id AND w.trending_score IS DISTINCT FROM v.score",
                [ids, values],
            )
            return cursor.rowcount
    updated = 0
    for pk, value in items:
        updated += (
            Workbook.objects.filter(pk=pk)
            .exclude(trending_score=round(value, 6))
            .update(trending_score=round(value, 6))
        )
    return updated


# --- The prefix-search word list (workbooks.search) -------------------------------------------------------

_LEXEME_TABLE = SearchLexeme._meta.db_table
_LISTED_VECTORS = (
    "SELECT search_vector FROM workbooks_workbook WHERE visibility = ''public'' AND published_at IS NOT NULL"
)


def search_lexemes_refresh() -> int:
    """Rebuild the word list from every listed workbook (a full scan: a daily beat task, and after a bulk
    load); returns how many words it holds. PostgreSQL only (SQLite searches without it)."""
    if not search.is_postgres():
        return 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {_LEXEME_TABLE}")  # noqa: S608
        cursor.execute(
            f"INSERT INTO {_LEXEME_TABLE} (word, documents) "  # noqa: S608
            f"SELECT word, ndoc FROM ts_stat('{_LISTED_VECTORS}') WHERE length(word) BETWEEN 2 AND 100"
        )
        return cursor.rowcount


def _search_lexemes_add(*, workbook_id: int) -> None:
    """Make a newly published or edited workbook's words prefix-searchable before the daily refresh."""
    if not search.is_postgres():
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_LEXEME_TABLE} (word, documents) "  # noqa: S608
            "SELECT lexeme, 1 FROM workbooks_workbook, unnest(search_vector) "
            "WHERE id = %s AND length(lexeme) BETWEEN 2 AND 100 "
            f"ON CONFLICT (word) DO UPDATE SET documents = {_LEXEME_TABLE}.documents + 1",
            [workbook_id],
        )
