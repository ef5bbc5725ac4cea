"""In-site notifications, grouped as they are written: one unread row per (recipient, group) gathers every
event of that group ("Ana and 12 others favorited …") until it is read; the next event starts a new row."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Kind(models.TextChoices):
    FOLLOWER = "follower", "New followers"
    FAVORITE = "favorite", "Favorites on your workbooks"
    NEW_WORKBOOK = "new_workbook", "New workbooks from people you follow"
    EMBED_BROKEN = "embed_broken", "Your embed link broke"
    EMBED_RECOVERED = "embed_recovered", "Your embed link works again"


class Notification(models.Model):
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications", db_index=False
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # What events gather under: "follower", "favorite:<workbook id>", "new_workbook:<author id>", ...
    group_key = models.CharField(max_length=60)
    # The latest actor and workbook of the group (the one named in "Ana and 12 others").
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    workbook = models.ForeignKey(
        "workbooks.Workbook", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    count = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # One unread row per group: events upsert into it (ON CONFLICT ... WHERE read_at IS NULL). Also
            # serves the bell's bounded unread count (recipient_id = %s AND read_at IS NULL).
            models.UniqueConstraint(
                fields=["recipient", "group_key"],
                condition=models.Q(read_at__isnull=True),
                name="notifications_unread_group_uniq",
            ),
        ]
        indexes = [
            # /notifications/: one person's newest groups first.
            models.Index(fields=["recipient", "-updated_at"], name="notifications_recent_idx"),
            # The daily clean-up of rows older than NOTIFICATION_RETENTION_DAYS.
            models.Index(fields=["updated_at"], name="notifications_updated_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.recipient_id} {self.group_key} x{self.count}"

    @property
    def others(self) -> int:
        return max(0, self.count - 1)


class NotificationSettings(models.Model):
    """Which kinds go into the daily email digest (all off until the person opts in)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="notification_settings",
    )
    digest_follower = models.BooleanField("New followers", default=False)
    digest_favorite = models.BooleanField("Favorites on your workbooks", default=False)
    digest_new_workbook = models.BooleanField("New workbooks from people you follow", default=False)
    digest_embed = models.BooleanField("Your embed links broken or working again", default=False)
    last_digest_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The digest task walks only the people who opted in to something.
            models.Index(
                fields=["user"],
                name="notifications_digest_on_idx",
                condition=models.Q(digest_follower=True)
                | models.Q(digest_favorite=True)
                | models.Q(digest_new_workbook=True)
                | models.Q(digest_embed=True),
            ),
        ]

    def __str__(self) -> str:
        return f"digest settings of {self.user_id}"

    def kinds(self) -> list[str]:
        chosen: list[str] = []
        if self.digest_follower:
            chosen.append(Kind.FOLLOWER)
        if self.digest_favorite:
            chosen.append(Kind.FAVORITE)
        if self.digest_new_workbook:
            chosen.append(Kind.NEW_WORKBOOK)
        if self.digest_embed:
            chosen += [Kind.EMBED_BROKEN, Kind.EMBED_RECOVERED]
        return chosen
