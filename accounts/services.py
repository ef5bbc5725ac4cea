"""Writes to accounts. Views and tasks call these; cache invalidation for these writes belongs here."""

from __future__ import annotations

import uuid

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Count, F, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce, Greatest

from accounts import emails, signals
from accounts.models import Follow, User, ci
from sigma_playground.caching import invalidate
from sigma_playground.images import ProcessedImage


class FollowError(ValueError):
    """A follow that cannot be made; the message is for the user."""


@transaction.atomic
def user_create(*, username: str, email: str, password: str | None, **extra: object) -> User:
    user = User(username=username, email=User.objects.normalize_email(email), **extra)
    if password is None:
        user.set_unusable_password()
    else:
        user.set_password(password)
    user.full_clean(exclude=["password"])
    user.save()
    invalidate.people_changed()
    return user


@transaction.atomic
def user_update_profile(
    *,
    user: User,
    full_name: str,
    bio: str,
    avatar: ProcessedImage | None = None,
    clear_avatar: bool = False,
) -> User:
    user.full_name = full_name
    user.bio = bio
    old_name = user.avatar.name if user.avatar else None
    if avatar is not None:
        # A fresh name per upload, so browsers and CDNs never serve a stale picture from their cache.
        name = f"{uuid.uuid4().hex}.{avatar.extension}"
        user.avatar.save(name, ContentFile(avatar.content), save=False)
    elif clear_avatar:
        user.avatar = None
    user.save()
    invalidate.profile_changed(username=user.username)
    invalidate.people_changed()
    if old_name and (avatar is not None or clear_avatar):
        storage = User._meta.get_field("avatar").storage
        transaction.on_commit(lambda: storage.delete(old_name))
    return user


def signup(*, username: str, email: str, password: str, base_url: str) -> User | None:
    """Sign-up that does not tell who has an account: for a new address the account is created and a
    confirmation link mailed to it; for an address that already has an account nothing is created and its
    owner gets a note instead. The person signing up sees the same "check your email" either way.
    Returns the new user, or None when the address was taken."""
    normalised = User.objects.normalize_email(email)
    existing = User.objects.filter(email__lower=ci(normalised)).first()
    if existing is None:
        try:
            with transaction.atomic():
                user = user_create(username=username, email=normalised, password=password)
                emails.send_verification(user, base_url=base_url)
            return user
        except IntegrityError:  # the address was taken meanwhile
            existing = User.objects.filter(email__lower=ci(normalised)).first()
            if existing is None:
                raise
    emails.send_already_registered(existing, base_url=base_url)
    return None


def email_verify(*, user: User) -> User:
    """The owner followed the confirmation link."""
    if not user.email_verified:
        user.email_verified = True
        user.save(update_fields=["email_verified"])
    return user


def follow(*, follower: User, followed: User) -> bool:
    """Make ``follower`` follow ``followed``. Idempotent: returns False when the row already existed."""
    if follower.pk == followed.pk:
        raise FollowError("You cannot follow yourself.")
    try:
        with transaction.atomic():
            _, created = Follow.objects.get_or_create(follower=follower, followed=followed)
            if created:
                User.objects.filter(pk=followed.pk).update(follower_count=F("follower_count") + 1)
    except IntegrityError:
        # Lost a race with a concurrent identical request: the row exists, which is what was asked.
        created = False
    if created:
        invalidate.people_changed()
        invalidate.follow_changed(follower_username=follower.username, followed_username=followed.username)
        transaction.on_commit(
            lambda: signals.user_followed.send(sender=User, follower=follower, followed=followed), robust=True
        )
    return created


def unfollow(*, follower: User, followed: User) -> bool:
    """Idempotent: returns False when there was nothing to delete."""
    with transaction.atomic():
        deleted, _ = Follow.objects.filter(follower=follower, followed=followed).delete()
        if deleted:
            User.objects.filter(pk=followed.pk).update(follower_count=Greatest(F("follower_count") - 1, 0))
    if deleted:
        invalidate.people_changed()
        invalidate.follow_changed(follower_username=follower.username, followed_username=followed.username)
    return deleted > 0


def recount_followers() -> int:
    """Set every ``follower_count`` from the Follow rows (after bulk loads, which bypass ``follow``)."""
    rows = Follow.objects.filter(followed=OuterRef("pk")).order_by().values("followed")
    count = Subquery(rows.annotate(n=Count("pk")).values("n"), output_field=IntegerField())
    updated = User.objects.update(follower_count=Coalesce(count, 0))
    invalidate.people_changed()
    return updated
