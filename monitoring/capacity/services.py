"""Writes of capacity data: samples, hourly roll-ups, retention and stored reports.

The beat tasks (monitoring.tasks) and ``manage.py capacity_report`` call these; the modules they use only
read and compute: :mod:`.sampler` reads the resources into an unsaved sample, :mod:`.retention` summarises
samples and says what is past retention, :mod:`.report` builds the analysis.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from monitoring.capacity import report, retention, sampler
from monitoring.capacity.report import CapacityAnalysis
from monitoring.capacity.retention import RetentionResult
from monitoring.models import CapacityHour, CapacityReport, CapacitySample


def capacity_sample_take(*, now: datetime | None = None) -> CapacitySample:
    """Read every resource once and store the sample (a source that fails is recorded as missing)."""
    sample = sampler.collect(now)
    sample.save()
    return sample


def capacity_hours_roll_up(*, now: datetime | None = None) -> int:
    """Summarise the complete hours not summarised yet (and redo the last one, for late samples); returns
    how many hours were written."""
    now = now or timezone.now()
    written = 0
    for hour in retention.pending_hours(now):
        count, stats = retention.summarise(retention.hour_rows(hour))
        with transaction.atomic():
            CapacityHour.objects.update_or_create(hour=hour, defaults={"samples": count, "stats": stats})
        written += 1
    return written


def capacity_prune(*, now: datetime | None = None) -> tuple[int, int]:
    """Delete samples older than the raw retention (never from the current hour, which is not rolled up
    yet), and hours and reports older than the hourly one; returns (samples, hours) deleted."""
    now = now or timezone.now()
    raw_cutoff = min(now - timedelta(days=settings.CAPACITY_RAW_RETENTION_DAYS), retention.hour_of(now))
    samples, _ = CapacitySample.objects.filter(taken_at__lt=raw_cutoff).delete()
    hour_cutoff = now - timedelta(days=settings.CAPACITY_HOURLY_RETENTION_DAYS)
    hours, _ = CapacityHour.objects.filter(hour__lt=hour_cutoff).delete()
    CapacityReport.objects.filter(created_at__lt=hour_cutoff).delete()
    return samples, hours


def capacity_retention_apply(*, now: datetime | None = None) -> RetentionResult:
    """The hourly retention task: roll up, then prune (so nothing is deleted unsummarised)."""
    now = now or timezone.now()
    rolled = capacity_hours_roll_up(now=now)
    samples, hours = capacity_prune(now=now)
    return RetentionResult(rolled, samples, hours)


def capacity_report_store(
    *, analysis: CapacityAnalysis, trigger: str = CapacityReport.Trigger.SCHEDULE
) -> CapacityReport:
    return CapacityReport.objects.create(
        created_at=analysis.generated_at,
        trigger=trigger,
        meaningful=analysis.meaningful,
        days_with_data=analysis.days_with_data,
        top_priority=analysis.top_priority,
        recommendations=len(analysis.recommendations),
        data=analysis.as_dict(),
        text=analysis.as_text(),
    )


def capacity_report_generate(
    *, trigger: str = CapacityReport.Trigger.SCHEDULE, now: datetime | None = None
) -> CapacityReport:
    """Roll up the hours not summarised yet, build the report and store it."""
    now = now or timezone.now()
    capacity_hours_roll_up(now=now)
    return capacity_report_store(analysis=report.build(now), trigger=trigger)
