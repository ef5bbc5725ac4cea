"""Writes of notifications. Called by the Celery tasks (notifications.tasks), never during a request of
somebody else: a favorite or a follow only queues the work.

Grouping happens on write: ``INSERT ... ON CONFLICT (recipient_id, group_key) WHERE read_at IS NULL DO
UPDATE`` adds an event to the recipient's unread row of its group (count + 1, the newest actor and
workbook), or starts a new row when the last one was read. The same statement runs on PostgreSQL and SQLite
(both support an upsert on a partial unique index). The same actor twice in a row counts once (a favorite
toggled on and off does not become "Ana and 5 others").
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from accounts.models import Follow, User
from notifications.models import Kind, Notification, NotificationSettings

logger = logging.getLogger(__name__)

_TABLE = Notification._meta.db_table
_UPSERT = (
    f"INSERT INTO {_TABLE} (recipient_id, kind, group_key, actor_id, workbook_id, count, created_at, "  # noqa: S608 (our table name)
    "updated_at, read_at) VALUES {values} "
    "ON CONFLICT (recipient_id, group_key) WHERE read_at IS NULL DO UPDATE SET "
    f"count = {_TABLE}.count + CASE WHEN {_TABLE}.actor_id IS NOT DISTINCT FROM excluded.actor_id "
    f"AND {_TABLE}.workbook_id IS NOT DISTINCT FROM excluded.workbook_id THEN 0 ELSE 1 END, "
    "actor_id = excluded.actor_id, workbook_id = excluded.workbook_id, updated_at = excluded.updated_at"
)


def notify_many(
    *,
    recipient_ids: Sequence[int],
    kind: str,
    group_key: str,
    actor_id: int | None = None,
    workbook_id: int | None = None,
    at: dt.datetime | None = None,
) -> int:
    """Add one event to each recipient's group, in one statement; returns how many recipients."""
    if not recipient_ids:
        return 0
    at = at or timezone.now()
    row = "(%s, %s, %s, %s, %s, 1, %s, %s, NULL)"
    params: list[int | str | dt.datetime | None] = []
    for recipient_id in recipient_ids:
        params += [recipient_id, kind, group_key, actor_id, workbook_id, at, at]
    sql = _UPSERT.format(values=", ".join([row] * len(recipient_ids)))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    return len(recipient_ids)


def notify(
    *,
    recipient_id: int,
    kind: str,
    group_key: str,
    actor_id: int | None = None,
    workbook_id: int | None = None,
) -> None:
    if actor_id is not None and actor_id == recipient_id:
        return  # nobody is told about their own actions
    notify_many(
        recipient_ids=[recipient_id],
        kind=kind,
        group_key=group_key,
        actor_id=actor_id,
        workbook_id=workbook_id,
    )


def followers_batch(
    *, author_id: int, after: tuple[str, int] | None, limit: int
) -> list[tuple[int, str, int]]:
    """The next ``limit`` followers of ``author_id`` after the cursor (created_at, id), newest first, read
    from accounts_follow_followed_date_idx: (follower_id, created_at iso, follow id)."""
    qs = Follow.objects.filter(followed_id=author_id)
    if after is not None:
        created, pk = dt.datetime.fromisoformat(after[0]), after[1]
        qs = qs.filter(created_at__lte=created).exclude(created_at=created, id__gte=pk)
    rows = qs.order_by("-created_at", "-id").values_list("follower_id", "created_at", "id")[:limit]
    return [(follower, created.isoformat(), pk) for follower, created, pk in rows]


def mark_read(*, user: User, ids: Sequence[int]) -> int:
    """Mark these (shown) notifications of ``user`` read; the next event of their group starts a new row."""
    if not ids:
        return 0
    return Notification.objects.filter(recipient=user, pk__in=list(ids), read_at__isnull=True).update(
        read_at=timezone.now()
    )


def cleanup(*, now: dt.datetime | None = None, batch: int = 5000, max_batches: int = 200) -> int:
    """Delete notifications untouched for NOTIFICATION_RETENTION_DAYS, ``batch`` rows per statement (short
    transactions, index-served through notifications_updated_idx); returns how many."""
    cutoff = (now or timezone.now()) - dt.timedelta(days=settings.NOTIFICATION_RETENTION_DAYS)
    deleted = 0
    for _ in range(max_batches):
        ids = list(
            Notification.objects.filter(updated_at__lt=cutoff)
            .order_by("updated_at")
            .values_list("pk", flat=True)[:batch]
        )
        if not ids:
            break
        with transaction.atomic():
            deleted += Notification.objects.filter(pk__in=ids).delete()[0]
    return deleted


def settings_for(*, user: User) -> NotificationSettings:
    return NotificationSettings.objects.filter(user=user).first() or NotificationSettings(user=user)


def settings_update(*, user: User, **choices: bool) -> NotificationSettings:
    prefs = settings_for(user=user)
    for name, value in choices.items():
        if not name.startswith("digest_"):
            raise ValueError(f"unknown setting {name!r}")
        setattr(prefs, name, bool(value))
    prefs.save()
    return prefs


DIGEST_MAX_ITEMS = 20


def send_digest(*, prefs: NotificationSettings, now: dt.datetime) -> bool:
    """One person's daily email: what happened in the kinds they chose since their last digest (at most a
    day back, at most DIGEST_MAX_ITEMS groups). True when an email was sent."""
    since = max(prefs.last_digest_at or now - dt.timedelta(days=1), now - dt.timedelta(days=1))
    kinds = prefs.kinds()
    items = list(
        Notification.objects.filter(recipient_id=prefs.user_id, kind__in=kinds, updated_at__gt=since)
        .select_related("actor", "workbook")
        .order_by("-updated_at")[: DIGEST_MAX_ITEMS + 1]
    )
    NotificationSettings.objects.filter(pk=prefs.pk).update(last_digest_at=now)
    if not items:
        return False
    user = prefs.user
    context = {"user": user, "items": items[:DIGEST_MAX_ITEMS], "more": len(items) > DIGEST_MAX_ITEMS}
    body = render_to_string("notifications/digest.txt", context)
    send_mail(
        subject="Your day on Sigma Playground",
        message=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[user.email],
        fail_silently=False,
    )
    return True


__all__ = ["Kind"]
