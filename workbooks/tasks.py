"""Celery tasks of the gallery. Tasks are idempotent: with ``acks_late`` a task can run twice."""

from __future__ import annotations

import logging

from celery import shared_task
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F, Q
from django.db.models.fields.json import KT

from workbooks import thumbnails
from workbooks.models import Workbook

logger = logging.getLogger(__name__)


# --- Thumbnails -----------------------------------------------------------------------------------------


# acks_late + reject_on_worker_lost: a render killed with its worker process (OOM killer, a deploy) is put back
# on the queue and retried at once by another process, instead of waiting for the render_pending_thumbnails
# sweep (every 5 minutes). The task is idempotent, so running it twice is harmless.
@shared_task(
    acks_late=True, reject_on_worker_lost=True, ignore_result=True, soft_time_limit=120, time_limit=180
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

    return warming.warm().as_dict()


@shared_task(ignore_result=True)
def recompute_trending() -> int:
    """Beat task: refresh ``trending_score`` from the last 7 days of statistics (see workbooks.trending)."""
    from sigma_playground.caching import invalidate
    from workbooks.trending import recompute_trending_scores

    with transaction.atomic():
        changed = recompute_trending_scores()
        if changed:
            invalidate.lists_changed()  # trending sections and sort=trending pages
    return changed


@shared_task(ignore_result=True)
def refresh_search_lexemes() -> int:
    """Daily beat task: rebuild the prefix-search word list (see workbooks.search)."""
    from workbooks import search

    return search.refresh_search_lexemes()
