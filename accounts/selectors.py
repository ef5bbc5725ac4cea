"""Reads for accounts pages."""

from __future__ import annotations

from django.db.models import Exists, OuterRef, QuerySet
from django.http import Http404

from accounts.models import Follow, User, ci


def user_get_public(*, username: str) -> User:
    """An active user by username, case-insensitively; 404 otherwise."""
    user = User.objects.filter(username__lower=ci(username), is_active=True).first()
    if user is None:
        raise Http404("No such user.")
    return user


FOLLOW_ORDER = ("-created_at", "-id")


def _inactive(column: str) -> Exists:
    """The user in ``column`` is deactivated: an anti-join probe of accounts_user_inactive_idx, instead of a
    join on is_active that hashes the whole user table once a list is long (see Workbook.objects.listed)."""
    return Exists(User.objects.filter(pk=OuterRef(column), is_active=False))


def followers_of(*, user: User) -> QuerySet[Follow]:
    return Follow.objects.filter(followed=user).exclude(_inactive("follower_id")).select_related("follower")


def following_of(*, user: User) -> QuerySet[Follow]:
    return Follow.objects.filter(follower=user).exclude(_inactive("followed_id")).select_related("followed")


def follow_counts(*, user: User) -> dict[str, int]:
    return {
        "followers": Follow.objects.filter(followed=user).exclude(_inactive("follower_id")).count(),
        "following": Follow.objects.filter(follower=user).exclude(_inactive("followed_id")).count(),
    }


def is_following(*, follower: User, followed: User) -> bool:
    if not follower.is_authenticated:
        return False
    return Follow.objects.filter(follower=follower, followed=followed).exists()
