"""Writes to accounts. Views and tasks call these; cache invalidation for these writes belongs here."""

from __future__ import annotations

import uuid
from importlib import import_module

from django.conf import settings
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
    return user_add(user=user)


@transaction.atomic
def user_add(*, user: User) -> User:
    """Save a new account whose password is already set on it (admin's creation form sets it)."""
    user.full_clean(exclude=["password"])
    user.save()
    invalidate.people_changed()
    return user


# What a person shows wherever they appear (cards, author boxes, follow lists, the directory); the bio shows
# only on their profile and their workbooks' detail pages; the rest (email, staff flags) nowhere.
SHOWN_EVERYWHERE = frozenset({"username", "full_name", "avatar", "is_active"})
_AVATAR_FIELDS = ("avatar", "avatar_width", "avatar_height")


def _save_person(
    *, user: User, values: dict[str, object], avatar: ProcessedImage | None, clear_avatar: bool
) -> set[str]:
    """Write ``values`` (and a new or no picture) for ``user`` and invalidate what the changes show on.

    Compared with the stored row, never with ``user``: a ModelForm has already put its values (and the raw
    upload) on the instance it was given. Only changed fields are written (``follower_count`` moves under
    concurrent follows and must not be written back), a save that changes nothing invalidates nothing, and a
    replaced or cleared picture's file is deleted once the change is committed. ``user`` ends up with what
    was stored. Returns the changed fields.
    """
    stored = User.objects.select_for_update().get(pk=user.pk)
    old_username, old_avatar = stored.username, stored.avatar.name or ""
    changed = {field for field, value in values.items() if getattr(stored, field) != value}
    for field in changed:
        setattr(stored, field, values[field])
    if changed:
        stored.clean_fields(exclude=[f.name for f in User._meta.fields if f.name not in changed])
    if avatar is not None:
        # A fresh name per upload, so browsers and CDNs never serve a stale picture from their cache.
        stored.avatar.save(f"{uuid.uuid4().hex}.{avatar.extension}", ContentFile(avatar.content), save=False)
        changed.update(_AVATAR_FIELDS)
    elif clear_avatar and old_avatar:
        stored.avatar = None
        changed.update(_AVATAR_FIELDS)
    if changed:
        stored.save(update_fields=sorted(changed))
    if old_avatar and "avatar" in changed:
        storage = stored.avatar.storage
        transaction.on_commit(lambda: storage.delete(old_avatar))
    if changed & SHOWN_EVERYWHERE:
        invalidate.person_changed(usernames={old_username, stored.username})
    elif "bio" in changed:
        invalidate.bio_changed(
            username=stored.username, workbook_ids=list(stored.workbooks.values_list("pk", flat=True))
        )
    for field in {*values, "avatar_width", "avatar_height"}:
        setattr(user, field, getattr(stored, field))
    # Not through the ImageField's descriptor, which would open the file to measure it again.
    user.__dict__["avatar"] = stored.avatar.name
    return changed


@transaction.atomic
def user_update_profile(
    *,
    user: User,
    full_name: str,
    bio: str,
    avatar: ProcessedImage | None = None,
    clear_avatar: bool = False,
) -> User:
    """The owner's edit of their profile (see _save_person for what it invalidates)."""
    _save_person(
        user=user, values={"full_name": full_name, "bio": bio}, avatar=avatar, clear_avatar=clear_avatar
    )
    return user


@transaction.atomic
def user_staff_update(
    *,
    user: User,
    username: str,
    email: str,
    full_name: str,
    bio: str,
    is_active: bool,
    is_staff: bool,
    is_superuser: bool,
    avatar: ProcessedImage | None = None,
    clear_avatar: bool = False,
) -> User:
    """Staff's edit of an account in admin. Deactivating someone takes their profile and their workbooks out
    of every page (``listed()`` leaves out inactive authors); renaming them moves their profile's address.
    Groups and permissions are saved by the admin beside this: they show on no page."""
    values = {
        "username": username,
        "email": User.objects.normalize_email(email),
        "full_name": full_name,
        "bio": bio,
        "is_active": is_active,
        "is_staff": is_staff,
        "is_superuser": is_superuser,
    }
    _save_person(user=user, values=values, avatar=avatar, clear_avatar=clear_avatar)
    return user


@transaction.atomic
def user_delete(*, user: User) -> None:
    """Delete an account with everything that cascades from it (workbooks, favorites, follows).

    The people they followed lose a follower here. ``favorite_count`` of workbooks they favorited is put
    right by the nightly recount (workbooks.services.workbook_counters_recount: accounts do not write workbooks).
    """
    stored = User.objects.select_for_update().get(pk=user.pk)
    followed = list(Follow.objects.filter(follower=stored).values_list("followed_id", flat=True))
    if followed:
        User.objects.filter(pk__in=followed).update(follower_count=Greatest(F("follower_count") - 1, 0))
    avatar = stored.avatar.name or ""
    invalidate.person_changed(usernames=[stored.username])
    stored.delete()
    if avatar:
        storage = User._meta.get_field("avatar").storage
        transaction.on_commit(lambda: storage.delete(avatar))


class EmailTaken(ValueError):
    """The address a confirmed change leads to was taken by another account after the link was sent."""


def _address_owner(email: str, *, other_than: User | None = None) -> User | None:
    """The account that has ``email`` (case-insensitively), if any, leaving out ``other_than``."""
    accounts = User.objects.filter(email__lower=ci(email))
    if other_than is not None:
        accounts = accounts.exclude(pk=other_than.pk)
    return accounts.first()


def signup(*, username: str, email: str, password: str, base_url: str) -> User | None:
    """Sign-up that does not tell who has an account: for a new address the account is created and a
    confirmation link mailed to it; for an address that already has an account nothing is created and its
    owner gets a note instead. The person signing up sees the same "check your email" either way.
    Returns the new user, or None when the address was taken."""
    normalised = User.objects.normalize_email(email)
    existing = _address_owner(normalised)
    if existing is None:
        try:
            with transaction.atomic():
                user = user_create(username=username, email=normalised, password=password)
                emails.send_verification(user, base_url=base_url)
            return user
        except IntegrityError:  # the address was taken meanwhile
            existing = _address_owner(normalised)
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


def email_change_request(*, user: User, new_email: str, base_url: str) -> bool:
    """``user`` (who gave their password) asks to use ``new_email``. Nothing changes yet: the current address
    is told a change was asked for, and the new one gets a link that makes the change
    (accounts.tokens.email_change_token). Like sign-up, this does not tell who has an account: when another
    account has the new address, its owner gets a note instead of the link, and the person asking sees and
    receives exactly what they would otherwise. Returns whether the link was sent."""
    normalised = User.objects.normalize_email(new_email)
    emails.send_email_change_notice(user, new_email=normalised, base_url=base_url)
    owner = _address_owner(normalised, other_than=user)
    if owner is not None:
        emails.send_already_registered(owner, base_url=base_url, change=True)
        return False
    emails.send_email_change_link(user, new_email=normalised, base_url=base_url)
    return True


def email_change_confirm(*, user: User, new_email: str) -> User:
    """The link mailed to ``new_email`` was followed (and checked by accounts.selectors.email_change_from_token):
    it becomes the account's address, verified (shown on no page: nothing to invalidate). Raises EmailTaken
    when another account took it meanwhile."""
    values = {"email": new_email, "email_verified": True}
    try:
        with transaction.atomic():
            _save_person(user=user, values=values, avatar=None, clear_avatar=False)
    except IntegrityError:
        raise EmailTaken(new_email) from None
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


def sessions_clear_expired() -> None:
    """Delete expired sessions (``manage.py clearsessions``); the daily beat task is the only caller."""
    import_module(settings.SESSION_ENGINE).SessionStore.clear_expired()
