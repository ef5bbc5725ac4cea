"""Reads for accounts pages."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from accounts.models import Follow, User, ci


def user_get_public(*, username: str) -> User:
    """An active user by username, case-insensitively; 404 otherwise."""
    user = User.objects.filter(username__lower=ci(username), is_active=True).first()
    if user is None:
        raise Http404("No such user.")
    return user


FOLLOW_ORDER = ("-created_at", "-id")


def followers_of(*, user: User) -> QuerySet[Follow]:
    return Follow.objects.filter(followed=user, follower__is_active=True).select_related("follower")


def following_of(*, user: User) -> QuerySet[Follow]:
    return Follow.objects.filter(follower=user, followed__is_active=True).select_related("followed")


def follow_counts(*, user: User) -> dict[str, int]:
    return {
        "followers": Follow.objects.filter(followed=user, follower__is_active=True).count(),
        "following": Follow.objects.filter(follower=user, followed__is_active=True).count(),
    }


def is_following(*, follower: User, followed: User) -> bool:
    if not follower.is_authenticated:
        return False
    return Follow.objects.filter(follower=follower, followed=followed).exists()
