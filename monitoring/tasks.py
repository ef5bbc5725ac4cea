"""Monitoring's Celery tasks."""

from __future__ import annotations

import time

from celery import shared_task
from django.core.cache import cache

from monitoring import instruments

HEARTBEAT_CACHE_KEY = "monitoring:beat-heartbeat"


@shared_task(ignore_result=True)
def beat_heartbeat() -> float:
    """Scheduled every minute by beat: its timestamp proves scheduler, broker and a worker all work.

    Written to the cache (read by the health diagnosis) and to a gauge (read by the alert rules).
    """
    now = time.time()
    cache.set(HEARTBEAT_CACHE_KEY, now, timeout=None)
    instruments.BEAT_HEARTBEAT.set(now)
    return now
