"""Nightly upkeep of denormalised counters."""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.db.models import BigIntegerField, Count, IntegerField, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from sigma_playground.caching import invalidate
from sigma_playground.telemetry import metrics
from workbooks.models import AppliedViewBatch, Favorite, Workbook, WorkbookDailyStat

logger = logging.getLogger(__name__)

COUNTERS = ("favorite_count", "view_count")
DRIFT = metrics.gauge(
    "sigma_counter_drift",
    "Total absolute drift between denormalised counters and their rows found by the last nightly recount.",
    labels={"counter": COUNTERS},
    multiprocess_mode="mostrecent",
)
DRIFTED_ROWS = metrics.gauge(
    "sigma_counter_drifted_rows",
    "Workbooks whose counter had drifted at the last nightly recount.",
    labels={"counter": COUNTERS},
    multiprocess_mode="mostrecent",
)
CHUNK = 5000


def favorite_rows_count() -> Subquery:
    """Per outer workbook: how many Favorite rows it has (what ``favorite_count`` must equal)."""
    rows = Favorite.objects.filter(workbook=OuterRef("pk")).order_by().values("workbook")
    return Subquery(rows.annotate(n=Count("pk")).values("n"), output_field=IntegerField())


def daily_views_sum() -> Subquery:
    """Per outer workbook: the sum of its daily views (what ``view_count`` must reach)."""
    rows = WorkbookDailyStat.objects.filter(workbook=OuterRef("pk")).order_by().values("workbook")
    return Subquery(rows.annotate(n=Sum("views")).values("n"), output_field=BigIntegerField())


def recount_counters(*, chunk: int = CHUNK) -> dict[str, int]:
    """Recompute ``favorite_count`` (from Favorite rows) and ``view_count`` (from the daily statistics) for
    every workbook, fix what drifted and export the drift. ``view_count`` is only ever raised: counts
    shown to people never go backwards (a total above its statistics is reported, not lowered)."""
    drift = dict.fromkeys(COUNTERS, 0)
    rows = dict.fromkeys(COUNTERS, 0)
    changed: list[int] = []
    favorites, views = favorite_rows_count(), daily_views_sum()
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
    for counter in COUNTERS:
        DRIFT.set(drift[counter], counter=counter)
        DRIFTED_ROWS.set(rows[counter], counter=counter)
    if changed:
        logger.warning("counter recount fixed %d workbooks: %s", len(set(changed)), drift)
        with transaction.atomic():
            invalidate.lists_changed()
    AppliedViewBatch.objects.filter(applied_at__lt=timezone.now() - dt.timedelta(days=7)).delete()
    return {**{f"{k}_drift": v for k, v in drift.items()}, **{f"{k}_rows": v for k, v in rows.items()}}
