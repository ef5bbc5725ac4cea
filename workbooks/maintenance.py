"""Nightly upkeep of denormalised counters: what each counter must equal, and the drift metrics. The recount
itself, a write, is ``services.workbook_counters_recount`` (run by the ``recount_counters`` task)."""

from __future__ import annotations

from django.db.models import BigIntegerField, Count, IntegerField, OuterRef, Subquery, Sum

from sigma_playground.telemetry import metrics
from workbooks.models import Favorite, WorkbookDailyStat

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


def export_drift(*, drift: dict[str, int], rows: dict[str, int]) -> None:
    """The drift the last recount found (``services.workbook_counters_recount``), by counter."""
    for counter in COUNTERS:
        DRIFT.set(drift[counter], counter=counter)
        DRIFTED_ROWS.set(rows[counter], counter=counter)
