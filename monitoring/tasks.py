"""Monitoring's Celery tasks."""

from __future__ import annotations

import logging
import time

from celery import shared_task
from django.core.cache import cache

from monitoring import instruments
from sigma_playground.caching import keys

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def beat_heartbeat() -> float:
    """Scheduled every minute by beat: its timestamp proves scheduler, broker and a worker all work.

    Written to the cache (read by the health diagnosis) and to a gauge (read by the alert rules).
    """
    now = time.time()
    cache.set(keys.beat_heartbeat(), now, timeout=None)
    instruments.BEAT_HEARTBEAT.set(now)
    return now


@shared_task(ignore_result=True, soft_time_limit=30, time_limit=50)
def capacity_sample() -> int | None:
    """Scheduled every CAPACITY_SAMPLE_SECONDS: one capacity sample (monitoring.capacity.sampler).

    Never raises: a source that fails is recorded as missing by the sampler, and anything else (the
    database refusing the row, the time limit) is logged; the next run tries again.
    """
    from monitoring.capacity import sampler

    try:
        return sampler.take_sample().pk
    except Exception:
        logger.exception("capacity: the sample could not be stored")
        return None


@shared_task(ignore_result=True, soft_time_limit=600)
def capacity_retention() -> dict[str, int]:
    """Hourly: roll complete hours up into min/mean/max, delete samples and hours past retention."""
    from monitoring.capacity import retention

    result = retention.apply()
    logger.info(
        "capacity retention: %d hours rolled up, %d samples and %d hours deleted",
        result.hours_rolled_up,
        result.samples_deleted,
        result.hours_deleted,
    )
    return result.__dict__


@shared_task(ignore_result=True, soft_time_limit=300)
def capacity_report() -> int:
    """Daily: the capacity report, stored for staff (admin and /monitoring/capacity/)."""
    from monitoring.capacity import report

    stored = report.generate(trigger="schedule")
    logger.info(
        "capacity report %s: %d recommendations, top priority %s",
        stored.pk,
        stored.recommendations,
        stored.top_priority or "none",
    )
    return stored.pk
