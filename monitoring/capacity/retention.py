"""Retention: every sample for CAPACITY_RAW_RETENTION_DAYS, hourly min/mean/max (and stored reports) for
CAPACITY_HOURLY_RETENTION_DAYS (beat task ``capacity_retention``, hourly, through
``monitoring.capacity.services``: this module reads and summarises, the services write).

The roll-up summarises every complete UTC hour that has samples and is not summarised yet; it also redoes
the last summarised hour, so a sample that arrived late for it is counted. Raw samples are deleted only
after the roll-up ran, and only before the current hour, so nothing is deleted unsummarised.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models.functions import TruncHour

from monitoring.models import CapacityHour, CapacitySample

ROWS_PREFIX = "rows:"


@dataclass(frozen=True)
class RetentionResult:
    hours_rolled_up: int
    samples_deleted: int
    hours_deleted: int


def hour_of(moment: datetime) -> datetime:
    """The start of the UTC hour holding ``moment``."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def summarise(rows: Iterable[dict]) -> tuple[int, dict[str, dict[str, float]]]:
    """(samples, {metric: {min, mean, max, n}}) over sample rows (dicts of metric fields and table_rows)."""
    values: dict[str, list[float]] = {}
    count = 0
    for row in rows:
        count += 1
        for name, value in row.items():
            if name == "table_rows":
                for table, rows_ in (value or {}).items():
                    if rows_ is not None:
                        values.setdefault(ROWS_PREFIX + table, []).append(float(rows_))
            elif value is not None:
                values.setdefault(name, []).append(float(value))
    stats = {
        name: {"min": min(items), "mean": sum(items) / len(items), "max": max(items), "n": len(items)}
        for name, items in values.items()
    }
    return count, stats


def pending_hours(now: datetime) -> list[datetime]:
    """The complete hours with samples not summarised yet, and the last summarised hour."""
    last = CapacityHour.objects.order_by("-hour").values_list("hour", flat=True).first()
    samples = CapacitySample.objects.filter(taken_at__lt=hour_of(now))
    if last is not None:
        samples = samples.filter(taken_at__gte=last)
    hours = samples.annotate(h=TruncHour("taken_at", tzinfo=UTC)).values_list("h", flat=True).distinct()
    return sorted(set(hours))


def hour_rows(hour: datetime) -> list[dict]:
    """The metric fields and table rows of every sample taken in ``hour``."""
    fields = (*CapacitySample.metric_fields(), "table_rows")
    return list(
        CapacitySample.objects.filter(taken_at__gte=hour, taken_at__lt=hour + timedelta(hours=1))
        .order_by()
        .values(*fields)
    )
