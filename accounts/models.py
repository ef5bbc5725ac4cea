from __future__ import annotations

from typing import ClassVar

from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils import timezone

from accounts.validators import USERNAME_MAX_LENGTH, UsernameValidator
from sigma_playground import text


def avatar_upload_to(instance: User, filename: str) -> str:
    # The file name is ours, never the uploader's; the stored file is our own re-encoded copy.
    return f"avatars/{instance.pk or 'new'}/{filename}"


def ci(value: str) -> Lower:
    """The right-hand side for a case-insensitive match: ``username__lower=ci(x)``.

    Django's ``__iexact`` compiles to ``UPPER(col) = UPPER(%s)`` on PostgreSQL, which the ``lower(...)``
    unique indexes cannot serve; ``__lower`` (registered on CharField in AccountsConfig.ready) compiles
    to ``LOWER(col) = LOWER(%s)``, which they do, on every database.
    """
    return Lower(models.Value(value))


class CaseInsensitiveUserManager(UserManager["User"]):
    def get_by_natural_key(self, username: str | None) -> User:
        # Log-in accepts "Alice" for "alice", matching the case-insensitive unique constraint.
        return self.get(username__lower=ci(username or ""))


class User(AbstractUser):
    username = models.CharField(
        max_length=USERNAME_MAX_LENGTH,
        unique=True,
        validators=[UsernameValidator()],
        help_text="3-30 letters, digits, hyphens or underscores.",
        error_messages={"unique": "That username is taken."},
    )
    email = models.EmailField("email address", max_length=254)
    full_name = models.CharField(max_length=150, blank=True, validators=[text.SINGLE_LINE])
    bio = models.TextField(max_length=2000, blank=True, validators=[text.MULTI_LINE])
    avatar = models.ImageField(
        upload_to=avatar_upload_to, blank=True, width_field="avatar_width", height_field="avatar_height"
    )
    avatar_width = models.PositiveIntegerField(null=True, blank=True, editable=False)
    avatar_height = models.PositiveIntegerField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # Denormalised count of Follow rows pointing here, kept by accounts.services.follow/unfollow (and
    # recounted by seed_demo): /users/ lists the most followed first from an index on it.
    follower_count = models.PositiveIntegerField(default=0, db_default=0, editable=False)
    # Set when the owner followed the link mailed to this address (accounts.services.email_verify).
    email_verified = models.BooleanField(default=False, db_default=False, editable=False)

    # AbstractUser's split first/last name does not fit people's names; full_name replaces them.
    first_name = None  # type: ignore[assignment]  # None removes an inherited field (Django's way)
    last_name = None  # type: ignore[assignment]

    objects: ClassVar[CaseInsensitiveUserManager] = CaseInsensitiveUserManager()

    REQUIRED_FIELDS = ["email"]

    class Meta:
        constraints = [
            # Case-insensitive uniqueness is the database's job: a form can be bypassed, a race can't.
            models.UniqueConstraint(
                Lower("username"),
                name="accounts_user_username_ci_uniq",
                violation_error_message="That username is taken.",
            ),
            models.UniqueConstraint(
                Lower("email"),
                name="accounts_user_email_ci_uniq",
                violation_error_message="An account with that email address already exists.",
            ),
            models.CheckConstraint(condition=~models.Q(email=""), name="accounts_user_email_not_blank"),
        ]

    def __str__(self) -> str:
        return self.username

    def get_absolute_url(self) -> str:
        return reverse("profiles:detail", kwargs={"username": self.username})

    @property
    def display_name(self) -> str:
        return self.full_name or self.username

    def get_full_name(self) -> str:
        return self.full_name

    def get_short_name(self) -> str:
        return self.full_name or self.username


class Follow(models.Model):
    # No automatic FK indexes: the unique pair leads with follower_id, and the hand-written
    # accounts_follow_followed_date_idx (0002) leads with followed_id.
    follower = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="following_links", db_index=False
    )
    followed = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="follower_links", db_index=False
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["follower", "followed"], name="accounts_follow_pair_uniq"),
            models.CheckConstraint(
                condition=~models.Q(follower=models.F("followed")), name="accounts_follow_not_self"
            ),
        ]
        # Indexes: hand-written, in accounts/migrations/0002_indexes.py.

    def __str__(self) -> str:
        return f"{self.follower} → {self.followed}"
