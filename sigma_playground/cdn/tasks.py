"""Celery tasks that send CDN purges (see sigma_playground/cdn/purge.py for the coalescing)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from sigma_playground.cdn import purge
from sigma_playground.cdn.backends import PurgeError

logger = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 60


def backoff(retries: int) -> int:
    return min(MAX_BACKOFF_SECONDS, 2**retries)


@shared_task(bind=True, acks_late=True, ignore_result=True, max_retries=None, soft_time_limit=120)
def purge_pending(self) -> int:
    """Send every owed key that is due, in one purge per batch of keys; returns how many were purged."""
    purge.clear_schedule()  # writes from now on schedule the next task themselves
    claim = purge.claim_due()
    if claim.next_due_in is not None:
        purge.reschedule(claim.next_due_in)
    if not claim.keys:
        return 0
    try:
        purge.send(claim.keys)
    except PurgeError as exc:
        retries = self.request.retries
        countdown = backoff(retries)
        purge.give_back(claim.keys, hold_seconds=countdown)
        if retries >= settings.CDN_PURGE_MAX_RETRIES:
            logger.error(
                "cdn: purge of %d keys still failing after %d retries (%s); the sweep keeps trying",
                len(claim.keys),
                retries,
                exc,
            )
            return 0
        logger.warning("cdn: purge of %d keys failed (%s); retry in %d s", len(claim.keys), exc, countdown)
        raise self.retry(exc=exc, countdown=countdown, max_retries=settings.CDN_PURGE_MAX_RETRIES) from exc
    purge.done(claim.keys)
    logger.info("cdn: purged %d keys: %s", len(claim.keys), " ".join(claim.keys[:20]))
    return len(claim.keys)


@shared_task(bind=True, acks_late=True, ignore_result=True, soft_time_limit=120)
def purge_keys(self, surrogate_keys: list[str]) -> int:
    """Purge keys carried in the message: embedded mode, or Redis unavailable when they were owed."""
    try:
        purge.send(surrogate_keys)
    except PurgeError as exc:
        if self.request.retries >= settings.CDN_PURGE_MAX_RETRIES:
            logger.error("cdn: purge of %s failed for good: %s", surrogate_keys, exc)
            raise
        raise self.retry(
            exc=exc, countdown=backoff(self.request.retries), max_retries=settings.CDN_PURGE_MAX_RETRIES
        ) from exc
    return len(surrogate_keys)
