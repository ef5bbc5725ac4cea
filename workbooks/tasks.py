"""Celery tasks of the gallery. Tasks are idempotent: with ``acks_late`` a task can run twice."""

from __future__ import annotations

import datetime as dt
import io
import logging
from urllib.parse import urlsplit

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F, Q
from django.db.models.fields.json import KT
from django.utils import timezone

from workbooks import thumbnails
from workbooks.models import Workbook

logger = logging.getLogger(__name__)


# --- Thumbnails -----------------------------------------------------------------------------------------


# acks_late + reject_on_worker_lost: a render killed with its worker process (OOM killer, a deploy) is put back
# on the queue and retried at once by another process, instead of waiting for the render_pending_thumbnails
# sweep (every 5 minutes). The task is idempotent, so running it twice is harmless.
@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    # Routed to the "media" queue by CELERY_TASK_ROUTES (settings). Bounded in time: one pathological image
    # cannot hold a worker for more than THUMBNAIL_RENDER_TIME_LIMIT (+30 s if it ignores the soft limit).
    soft_time_limit=settings.THUMBNAIL_RENDER_TIME_LIMIT,
    time_limit=settings.THUMBNAIL_RENDER_TIME_LIMIT + 30,
)
def render_thumbnail_derivatives(workbook_id: int, master_name: str, force: bool = False) -> bool:
    """Render a master's derivatives and record them on the workbook; True when it did.

    Does nothing when the workbook is gone or its thumbnail was replaced meanwhile (the files it rendered
    are deleted again), or when the derivatives are already recorded (a redelivered task) unless ``force``.
    """
    row = Workbook.objects.filter(pk=workbook_id).values("thumbnail", "thumbnail_derivatives").first()
    if row is None or row["thumbnail"] != master_name:
        return False
    if not force and (row["thumbnail_derivatives"] or {}).get("master") == master_name:
        return False
    try:
        description = thumbnails.render_derivatives(master_name, workbook_id=workbook_id)
    except FileNotFoundError:
        logger.info("thumbnails: master %s of workbook %s is gone", master_name, workbook_id)
        return False
    except SoftTimeLimitExceeded:
        # The placeholder stays; render_pending_thumbnails will try again in its next run.
        logger.warning(
            "thumbnails: render of workbook %s stopped after %d s (THUMBNAIL_RENDER_TIME_LIMIT)",
            workbook_id,
            settings.THUMBNAIL_RENDER_TIME_LIMIT,
        )
        return False
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
    from workbooks import services

    services.workbook_thumbnail_rendered(workbook_id=workbook_id)
    # Derivatives recorded before (an older master's, or a previous run's under other names).
    stale = set(thumbnails.derivative_names((current or {}).get("thumbnail_derivatives") or {})) - rendered
    thumbnails.delete_names(default_storage, sorted(stale))
    return True


@shared_task(ignore_result=True)
def render_pending_thumbnails(limit: int = 200) -> int:
    """Queue the render of thumbnails whose derivatives are missing (the broker was down when the
    workbook was saved, or a worker died); returns how many were queued. Safe to schedule with beat."""
    pending = (
        Workbook.objects.exclude(thumbnail="")
        .annotate(rendered_master=KT("thumbnail_derivatives__master"))
        .filter(Q(rendered_master__isnull=True) | ~Q(rendered_master=F("thumbnail")))
        .order_by("pk")
        .values_list("pk", "thumbnail")[:limit]
    )
    count = 0
    for workbook_id, master_name in pending:
        render_thumbnail_derivatives.delay(workbook_id, master_name)
        count += 1
    return count


@shared_task(ignore_result=True)
def sweep_orphan_masters() -> int:
    """Daily beat task: delete thumbnail masters no workbook refers to (workbooks.thumbnails)."""
    return thumbnails.sweep_orphan_masters()


# --- Counters and trending ------------------------------------------------------------------------------


@shared_task(ignore_result=True)
def flush_views() -> int:
    """Beat task, every VIEW_FLUSH_SECONDS: write buffered view counts to the database (workbooks.counters)."""
    from workbooks import counters

    return counters.flush_views()


@shared_task(ignore_result=True)
def recount_counters() -> dict[str, int]:
    """Nightly: recompute every denormalised counter from its rows, fix drift, export the drift found."""
    from workbooks import maintenance

    return maintenance.recount_counters()


@shared_task(ignore_result=True)
def warm_cache() -> dict[str, float]:
    """Beat task: render the most requested pages into the cache (workbooks.warming)."""
    from workbooks import warming

    result = warming.warm()
    # One line for the whole warm: its requests write no access-log lines of their own.
    logger.info(
        "cache warmed: %d written, %d already fresh, %d failed in %.1f s",
        result.written,
        result.already_fresh,
        result.failed,
        result.seconds,
    )
    return result.as_dict()


@shared_task(ignore_result=True)
def recompute_trending() -> int:
    """Beat task: refresh ``trending_score`` from the last 7 days of statistics (see workbooks.trending).

    Scores change on nearly every run (each view moves one), but no page shows a score: pages show the
    order. The ``lists`` namespace, which every list and detail page depends on, is bumped only when the
    order on the first page of the trending list (any page size, home's section included) changed, and the
    first pages are then warmed, so that a recompute is not a wave of rebuilds of every cached page in
    request threads (issue 15). Deeper or filtered trending pages that moved without the top changing show
    the new order when they next expire, within PAGE_CACHE_TTL.
    """
    from sigma_playground.caching import invalidate
    from workbooks import warming
    from workbooks.trending import recompute_trending_scores, visible_ranking

    with transaction.atomic():
        before = visible_ranking()
        changed = recompute_trending_scores()
        bumped = bool(changed) and visible_ranking() != before
        if bumped:
            invalidate.lists_changed()  # after the commit
    if bumped:
        result = warming.warm(paths=warming.first_pages())
        logger.info("trending order changed: lists bumped, %d first pages warmed", result.written)
    return changed


@shared_task(ignore_result=True)
def refresh_search_lexemes() -> int:
    """Daily beat task: rebuild the prefix-search word list (see workbooks.search)."""
    from workbooks import search

    return search.refresh_search_lexemes()


# --- Embed links ----------------------------------------------------------------------------------------


@shared_task(ignore_result=True, soft_time_limit=600, time_limit=660)
def check_embed_links() -> dict[str, float] | None:
    """Beat task: one batch of the embed link checker (workbooks.linkcheck); None when a run is in progress."""
    from workbooks import linkcheck

    result = linkcheck.run_locked()
    return result.as_dict() if result is not None else None


# --- Previews from the embed (workbooks.preview) --------------------------------------------------------


# Celery takes float time limits; celery-types' overloads say int.
@shared_task(  # type: ignore[call-overload]
    bind=True,
    acks_late=True,
    ignore_result=True,
    soft_time_limit=settings.EMBED_PREVIEW_TIMEOUT_SECONDS + 60,
    time_limit=settings.EMBED_PREVIEW_TIMEOUT_SECONDS + 90,
)
def capture_embed_preview(self, workbook_id: int) -> str:
    """Screenshot the workbook's public embed into its thumbnail (``media`` queue; see workbooks.preview).

    Refuses to run eagerly (in a web process) or when previews are off. A failure leaves the picture the
    workbook has and is retried EMBED_PREVIEW_RETRIES times with a doubling backoff; after that the beat task
    tries again once the preview is due (EMBED_PREVIEW_MAX_AGE_DAYS)."""
    from workbooks import preview, services
    from workbooks.embed import allowed_hosts

    if self.request.is_eager:
        logger.warning("previews: not taking workbook %s's preview in this process (eager task)", workbook_id)
        return "eager"
    if not settings.EMBED_PREVIEWS_ENABLED:
        return "disabled"
    row = (
        Workbook.objects.filter(pk=workbook_id)
        .values("sigma_embed_url", "thumbnail", "thumbnail_source")
        .first()
    )
    if row is None or not services.wants_preview(
        thumbnail=row["thumbnail"], thumbnail_source=row["thumbnail_source"]
    ):
        return "not wanted"
    url = row["sigma_embed_url"]
    if (urlsplit(url).hostname or "").lower() not in allowed_hosts():
        return "host not allowed"
    try:
        png = preview.capture(url)
        image = thumbnails.prepare_master(io.BytesIO(png))
    except Exception as exc:  # PreviewFailed, a rejected image, a browser that would not start
        retries = self.request.retries
        delay = settings.EMBED_PREVIEW_BACKOFF_SECONDS * 2**retries
        final = retries >= settings.EMBED_PREVIEW_RETRIES
        retry_at = timezone.now() + (
            dt.timedelta(days=settings.EMBED_PREVIEW_MAX_AGE_DAYS) if final else dt.timedelta(seconds=delay)
        )
        services.workbook_preview_failed(
            workbook_id=workbook_id, error=str(exc) or type(exc).__name__, retry_at=retry_at
        )
        logger.info(
            "previews: workbook %s failed (%s), retry %s", workbook_id, exc, "none" if final else delay
        )
        if final:
            return "failed"
        raise self.retry(countdown=delay, max_retries=settings.EMBED_PREVIEW_RETRIES) from exc
    services.workbook_preview_captured(workbook_id=workbook_id, url=url, image=image)
    return "captured"


@shared_task(ignore_result=True)
def refresh_embed_previews() -> int:
    """Beat task: queue the previews that are due (new or changed links the web process could not queue,
    weekly refreshes, failures whose backoff is over), EMBED_PREVIEW_BATCH at a time. Each queued row is
    pushed an hour ahead first, so a slow queue is not fed the same workbook twice."""
    from workbooks.models import EmbedCheck

    if not settings.EMBED_PREVIEWS_ENABLED:
        return 0
    now = timezone.now()
    ids = list(
        EmbedCheck.objects.filter(preview_next_at__lte=now)
        .order_by("preview_next_at")
        .values_list("workbook_id", flat=True)[: settings.EMBED_PREVIEW_BATCH]
    )
    if ids:
        EmbedCheck.objects.filter(workbook_id__in=ids).update(preview_next_at=now + dt.timedelta(hours=1))
    for workbook_id in ids:
        capture_embed_preview.delay(workbook_id)
    return len(ids)
