"""Retention: complete hours rolled up into min/mean/max, raw samples kept 7 days, hours and reports 400."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitoring import tasks
from monitoring.capacity import retention
from monitoring.capacity import services as capacity_services
from monitoring.models import CapacityHour, CapacityReport, CapacitySample

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
STEP = timedelta(minutes=10)


def make_samples(start: datetime, end: datetime) -> list[CapacitySample]:
    """One sample every 10 minutes in [start, end): cpu counts up by one per sample, memory is missing on
    every third, the workbook table grows by ten rows a sample."""
    samples = []
    at, i = start, 0
    while at < end:
        samples.append(
            CapacitySample(
                taken_at=at,
                host="web-1",
                cpu_percent=float(i % 100),
                memory_percent=None if i % 3 == 0 else 50.0 + i % 7,
                disk_percent=40.0,
                table_rows={"workbooks_workbook": 1000 + 10 * i},
                missing=["memory"] if i % 3 == 0 else [],
            )
        )
        at += STEP
        i += 1
    return CapacitySample.objects.bulk_create(samples)


def expected_stats(samples: list[CapacitySample], field: str) -> dict:
    values = [getattr(s, field) for s in samples if getattr(s, field) is not None]
    return {"min": min(values), "mean": sum(values) / len(values), "max": max(values), "n": len(values)}


def test_retention_rolls_up_complete_hours_and_deletes_exactly_what_is_past_retention():
    start = NOW - timedelta(days=9)
    samples = make_samples(start, NOW)
    old_hour = CapacityHour.objects.create(hour=NOW - timedelta(days=401), samples=60, stats={})
    kept_hour = CapacityHour.objects.create(hour=NOW - timedelta(days=399), samples=60, stats={})
    old_report = CapacityReport.objects.create(created_at=NOW - timedelta(days=401))
    kept_report = CapacityReport.objects.create(created_at=NOW - timedelta(days=399))

    result = capacity_services.capacity_retention_apply(now=NOW)

    current_hour = NOW.replace(minute=0)
    complete = [s for s in samples if s.taken_at < current_hour]
    hours = sorted({retention.hour_of(s.taken_at) for s in complete})
    assert result.hours_rolled_up == len(hours) == 9 * 24
    assert set(CapacityHour.objects.values_list("hour", flat=True)) == {*hours, kept_hour.hour}
    assert not CapacityHour.objects.filter(pk=old_hour.pk).exists() and result.hours_deleted == 1
    assert not CapacityHour.objects.filter(hour=current_hour).exists()  # incomplete: not yet
    assert list(CapacityReport.objects.values_list("pk", flat=True)) == [kept_report.pk]
    assert old_report.pk != kept_report.pk

    raw_cutoff = NOW - timedelta(days=7)
    kept = {s.pk for s in samples if s.taken_at >= raw_cutoff}
    assert set(CapacitySample.objects.values_list("pk", flat=True)) == kept
    assert result.samples_deleted == len(samples) - len(kept)

    some_hour = hours[5]
    in_hour = [s for s in samples if retention.hour_of(s.taken_at) == some_hour]
    stored = CapacityHour.objects.get(hour=some_hour)
    assert stored.samples == len(in_hour) == 6
    for field in ("cpu_percent", "memory_percent", "disk_percent"):
        assert stored.stats[field] == pytest.approx(expected_stats(in_hour, field)), field
    assert stored.stats["memory_percent"]["n"] == 4  # two of the six had no memory reading
    rows = [s.table_rows["workbooks_workbook"] for s in in_hour]
    assert stored.stats["rows:workbooks_workbook"]["max"] == max(rows)
    assert "db_connections" not in stored.stats  # never read: no entry, not zeros


def test_retention_is_idempotent_and_counts_late_samples():
    make_samples(NOW - timedelta(hours=5), NOW)
    capacity_services.capacity_retention_apply(now=NOW)
    before = {h.hour: (h.samples, h.stats) for h in CapacityHour.objects.all()}
    again = capacity_services.capacity_retention_apply(now=NOW)
    assert again.hours_rolled_up == 1 and again.samples_deleted == 0 and again.hours_deleted == 0
    assert {h.hour: (h.samples, h.stats) for h in CapacityHour.objects.all()} == before

    last_hour = max(before)
    CapacitySample.objects.create(taken_at=last_hour + timedelta(minutes=59), cpu_percent=99.0)
    capacity_services.capacity_retention_apply(now=NOW)
    assert CapacityHour.objects.get(hour=last_hour).samples == before[last_hour][0] + 1
    assert CapacityHour.objects.get(hour=last_hour).stats["cpu_percent"]["max"] == 99.0


def test_the_current_hour_waits_for_the_next_run():
    make_samples(NOW.replace(minute=0), NOW)
    assert capacity_services.capacity_retention_apply(now=NOW).hours_rolled_up == 0
    assert capacity_services.capacity_retention_apply(now=NOW + timedelta(hours=1)).hours_rolled_up == 1
    assert CapacityHour.objects.get().samples == 3


def test_retention_periods_come_from_settings(settings):
    settings.CAPACITY_RAW_RETENTION_DAYS = 1
    settings.CAPACITY_HOURLY_RETENTION_DAYS = 2
    make_samples(NOW - timedelta(days=3), NOW)
    capacity_services.capacity_retention_apply(now=NOW)
    assert CapacitySample.objects.filter(taken_at__lt=NOW - timedelta(days=1)).count() == 0
    assert CapacitySample.objects.filter(taken_at__gte=NOW - timedelta(days=1)).count() == 6 * 24
    assert not CapacityHour.objects.filter(hour__lt=NOW - timedelta(days=2)).exists()
    # Hours starting at or after the cutoff (12:30 two days ago): 13:00 then to 11:00 today.
    assert CapacityHour.objects.count() == 47


def test_the_beat_task_runs_retention(clock):
    make_samples(timezone_now_hour() - timedelta(hours=3), timezone_now_hour())
    result = tasks.capacity_retention.delay().get()
    assert result["hours_rolled_up"] == 3 and CapacityHour.objects.count() == 3


def timezone_now_hour() -> datetime:
    from django.utils import timezone

    return retention.hour_of(timezone.now())
