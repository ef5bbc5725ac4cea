"""What each write makes stale. Called from the service functions (accounts.services, workbooks.services),
the one place each write happens; the bump runs after the transaction commits, so no reader can rebuild a
page from data that is about to change and store it under the new generation. The same commit owes the CDN
a purge of the namespaces' surrogate keys (sigma_playground.cdn.purge), sent by a Celery task.

Counters (views, favorites on list cards) are not invalidated: list pages carry them with a lag of at most
PAGE_CACHE_TTL seconds (plus one rebuild). A workbook's own detail page is refreshed on each favorite.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from sigma_playground.caching import keys, service
from sigma_playground.cdn import purge


def _after_commit(*namespaces: str) -> None:
    """Bump the generations, then owe the CDN a purge of the same namespaces' surrogate keys."""
    transaction.on_commit(lambda: service.bump(*namespaces))
    transaction.on_commit(lambda: purge.purge_soon(keys.surrogate_keys(namespaces)))


def workbooks_changed(*, workbook_ids: Iterable[int], author_usernames: Iterable[str]) -> None:
    """Published, edited, deleted, made private/unlisted, featured, retagged, re-thumbnailed."""
    _after_commit(
        keys.LISTS,
        *(keys.ns_workbook(pk) for pk in workbook_ids),
        *(keys.ns_user(name) for name in author_usernames),
    )


def lists_changed() -> None:
    """Something every list shows changed for many workbooks at once (trending scores, a tag rename)."""
    _after_commit(keys.LISTS)


def favorite_changed(*, workbook_id: int) -> None:
    _after_commit(keys.ns_workbook(workbook_id))


def follow_changed(*, follower_username: str, followed_username: str) -> None:
    _after_commit(keys.ns_user(follower_username), keys.ns_user(followed_username))


def person_changed(*, usernames: Iterable[str]) -> None:
    """A person's name, username, picture or active state changed. They show wherever the person does: cards
    and detail pages' author boxes, other people's follower and following lists (all under ``lists``), the
    directory and search's People block (``people``), and their own pages (``usernames``: the old and the
    new name when it changed). A deactivation takes their workbooks out of every list as well."""
    _after_commit(keys.LISTS, keys.PEOPLE, *(keys.ns_user(name) for name in usernames))


def bio_changed(*, username: str, workbook_ids: Iterable[int]) -> None:
    """The bio shows on the profile and in the author box of each of their workbooks' detail pages (the
    directory and the cards do not show it)."""
    _after_commit(keys.ns_user(username), *(keys.ns_workbook(pk) for pk in workbook_ids))


def people_changed() -> None:
    """Someone joined, was (un)followed or renamed: the people directory and search's People block."""
    _after_commit(keys.PEOPLE)
