"""Reads of notifications."""

from __future__ import annotations

from accounts.models import User
from notifications.models import Notification, NotificationSettings

UNREAD_LIMIT = 100  # the bell says "99+" beyond; counting further is work nobody reads
PAGE_SIZE = 50


class UnreadCount(int):
    def __str__(self) -> str:
        return "99+" if self >= UNREAD_LIMIT else str(int(self))


def unread_count(*, user: User) -> UnreadCount:
    """Unread groups, counted up to UNREAD_LIMIT through the partial unique index on unread rows."""
    return UnreadCount(
        Notification.objects.filter(recipient=user, read_at__isnull=True).values("pk")[:UNREAD_LIMIT].count()
    )


def recent(*, user: User, limit: int = PAGE_SIZE) -> list[Notification]:
    """The newest groups, read and unread (notifications_recent_idx)."""
    return list(
        Notification.objects.filter(recipient=user)
        .select_related("actor", "workbook")
        .order_by("-updated_at", "-id")[:limit]
    )


def settings_of(*, user: User) -> NotificationSettings:
    return NotificationSettings.objects.filter(user=user).first() or NotificationSettings(user=user)
