"""Reads for accounts pages."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from django.db.models import BooleanField, Exists, OuterRef, QuerySet
from django.db.models.expressions import RawSQL
from django.http import Http404
from django.utils.http import urlsafe_base64_decode

from accounts.models import Follow, User, ci
from accounts.tokens import read_email_change_token


def user_from_uidb64(uidb64: str) -> User | None:
    """The active user an emailed link's ``uidb64`` names, or None for anything malformed."""
    try:
        pk = int(urlsafe_base64_decode(uidb64).decode())
    except (ValueError, TypeError, UnicodeDecodeError, OverflowError):
        return None
    return User.objects.filter(pk=pk, is_active=True).first()


def email_change_from_token(token: str) -> tuple[User, str] | None:
    """The active user and the new address an email-change link names, or None when the link is forged,
    expired, or no longer matches the account (already used, another change made, password changed)."""
    change = read_email_change_token(token)
    if change is None:
        return None
    user = User.objects.filter(pk=change.user_id, is_active=True).first()
    if user is None or not change.still_valid_for(user):
        return None
    return user, change.new_email


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


def is_following(*, follower: User | AnonymousUser, followed: User) -> bool:
    if not follower.is_authenticated:
        return False
    return Follow.objects.filter(follower=follower, followed=followed).exists()


# --- The people directory (/users/) and the "People" block of a search ------------------------------------

PEOPLE_ORDER = ("-follower_count", "-id")
PEOPLE_MAX_QUERY = 100
# The expression accounts_user_name_trgm_idx (accounts 0004) indexes, on PostgreSQL; SQLite runs it as is.
_NAME_TEXT = "lower(username || ' ' || full_name)"


def _like_pattern(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def people(*, q: str = "") -> QuerySet[User]:
    """Active people, most followed first; with ``q``, those whose username or name contains it.

    On PostgreSQL the match is served by a trigram GIN index (3+ characters), the unfiltered list by the
    partial index on (follower_count DESC, id DESC). ``follower_count`` counts every follow row, so a
    deactivated follower still counts there until ``accounts.services.recount_followers`` runs (profiles count
    active followers only).
    """
    qs = User.objects.filter(is_active=True)
    query = " ".join(q.split())[:PEOPLE_MAX_QUERY]
    if query:
        qs = qs.filter(
            RawSQL(  # noqa: S611 (the pattern is a bound parameter)
                f"{_NAME_TEXT} LIKE %s ESCAPE '\\'", [_like_pattern(query)], output_field=BooleanField()
            )
        )
    return qs.only("id", "username", "full_name", "avatar", "avatar_width", "avatar_height", "follower_count")


def people_matching(*, q: str, limit: int = 4) -> list[User]:
    """The few most followed people whose username or name contains ``q`` (the search page's block)."""
    if len(q.strip()) < 2:
        return []
    return list(people(q=q).order_by(*PEOPLE_ORDER)[:limit])
