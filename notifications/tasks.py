"""Celery tasks of notifications: each event becomes one task, a new workbook's fan-out a chain of bounded
batches (NOTIFICATION_FANOUT_BATCH followers each), so an author with 100,000 followers costs 100 short tasks,
never one long one or a request that waits."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from notifications import services
from notifications.models import Kind, NotificationSettings
from workbooks.models import Visibility, Workbook

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True, acks_late=True)
def notify_new_follower(follower_id: int, followed_id: int) -> None:
    services.notify(recipient_id=followed_id, kind=Kind.FOLLOWER, group_key="follower", actor_id=follower_id)


@shared_task(ignore_result=True, acks_late=True)
def notify_favorite(workbook_id: int, user_id: int) -> None:
    author_id = Workbook.objects.filter(pk=workbook_id).values_list("author_id", flat=True).first()
    if author_id is not None:
        services.notify(
            recipient_id=author_id,
            kind=Kind.FAVORITE,
            group_key=f"favorite:{workbook_id}",
            actor_id=user_id,
            workbook_id=workbook_id,
        )


@shared_task(ignore_result=True, acks_late=True)
def notify_embed_link(workbook_id: int, broken: bool) -> None:
    author_id = Workbook.objects.filter(pk=workbook_id).values_list("author_id", flat=True).first()
    if author_id is not None:
        kind = Kind.EMBED_BROKEN if broken else Kind.EMBED_RECOVERED
        services.notify(
            recipient_id=author_id, kind=kind, group_key=f"{kind}:{workbook_id}", workbook_id=workbook_id
        )


@shared_task(ignore_result=True, acks_late=True)
def fan_out_new_workbook(workbook_id: int, after: list | None = None) -> int:
    """One batch of a new workbook's followers; queues the next batch. Returns how many it notified.

    A redelivered batch adds nothing twice for the same workbook (the upsert counts an event again only for
    another workbook). Stops if the workbook is no longer public and published."""
    workbook = (
        Workbook.objects.filter(pk=workbook_id, visibility=Visibility.PUBLIC, published_at__isnull=False)
        .values("author_id")
        .first()
    )
    if workbook is None:
        return 0
    author_id = workbook["author_id"]
    limit = settings.NOTIFICATION_FANOUT_BATCH
    rows = services.followers_batch(author_id=author_id, after=tuple(after) if after else None, limit=limit)
    services.notify_many(
        recipient_ids=[follower for follower, _, _ in rows],
        kind=Kind.NEW_WORKBOOK,
        group_key=f"new_workbook:{author_id}",
        actor_id=author_id,
        workbook_id=workbook_id,
    )
    if len(rows) == limit:
        _, created, pk = rows[-1]
        fan_out_new_workbook.delay(workbook_id, [created, pk])
    return len(rows)


@shared_task(ignore_result=True)
def send_digests(after_user_id: int = 0) -> int:
    """Daily beat task: the email digest of everyone who opted in, NOTIFICATION_DIGEST_BATCH people per task
    (walked by user id through notifications_digest_on_idx; the next batch is queued)."""
    batch = settings.NOTIFICATION_DIGEST_BATCH
    opted = (
        NotificationSettings.objects.filter(user_id__gt=after_user_id)
        .exclude(digest_follower=False, digest_favorite=False, digest_new_workbook=False, digest_embed=False)
        .select_related("user")
        .order_by("user_id")[:batch]
    )
    prefs = list(opted)
    now = timezone.now()
    sent = 0
    for pref in prefs:
        try:
            sent += services.send_digest(prefs=pref, now=now)
        except Exception:  # one bad address must not stop everyone else's digest
            logger.exception("notifications: digest for user %s failed", pref.user_id)
    if len(prefs) == batch:
        send_digests.delay(prefs[-1].user_id)
    return sent


@shared_task(ignore_result=True)
def cleanup_notifications() -> int:
    """Daily beat task: delete notifications older than NOTIFICATION_RETENTION_DAYS (90)."""
    return services.cleanup()
