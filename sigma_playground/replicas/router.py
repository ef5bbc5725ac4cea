"""Where each read goes: the database router, and the public-page context the middleware opens for it.

Outside a public page's context every read goes to the primary, explicitly (never ``None``: Django would
then follow the instance's own database, and an object read from a replica would pull its relations from
there outside any page). Inside it, reads go to the replica the context chose on its first read, made once
per page (and counted in ``sigma_db_public_reads_total``), except reads in a transaction and reads of tables
that must see a write made a moment ago (sessions, log-in throttling). Writes always go to the primary.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from contextvars import ContextVar, Token
from dataclasses import dataclass

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

from sigma_playground.replicas.monitor import MONITOR
from sigma_playground.telemetry.instruments import DB_PUBLIC_READS

# A session or a lockout written a moment ago must be read back at once, whatever page the request is for.
PRIMARY_ONLY_APPS = frozenset({"sessions", "axes", "admin", "django_celery_beat"})


@dataclass
class PublicReads:
    """The reads of one public page: they may go to a replica that has every write committed before
    ``changed_at`` (time.time(); the newest bump of what the page shows)."""

    changed_at: float
    counted: bool = True  # the page's own decision is counted; a fragment's narrower one is not
    alias: str | None = None  # decided: a replica's alias, or the primary's
    reason: str = ""

    def database(self) -> str:
        if self.alias is None:
            replica, self.reason = MONITOR.pick(changed_at=self.changed_at)
            self.alias = replica or DEFAULT_DB_ALIAS
            if self.counted:
                DB_PUBLIC_READS.inc(target="replica" if replica else "primary", reason=self.reason)
        return self.alias


_CURRENT: ContextVar[PublicReads | None] = ContextVar("sigma_public_reads", default=None)


def open_public_reads(changed_at: float) -> Token:
    """Reads from here on are a public page's (until ``close_public_reads`` with the token)."""
    return _CURRENT.set(PublicReads(changed_at))


def close_public_reads(token: Token) -> None:
    _CURRENT.reset(token)


def reading_replicas() -> bool:
    """Inside a public page's context (its reads may go to a replica)."""
    return _CURRENT.get() is not None


@contextlib.contextmanager
def public_reads(changed_at: float) -> Iterator[PublicReads]:
    token = open_public_reads(changed_at)
    try:
        yield _CURRENT.get()  # type: ignore[misc]
    finally:
        close_public_reads(token)


@contextlib.contextmanager
def reads_after(changed_at: float | None) -> Iterator[None]:
    """Inside a public page: the block builds something stored under namespaces last changed at
    ``changed_at`` (None: unknown, so only the primary will do). Its reads go to a replica only if that one
    has the change as well; the page's choice stands when it already does."""
    current = _CURRENT.get()
    if current is None or (changed_at is not None and changed_at <= current.changed_at):
        yield
        return
    inner = PublicReads(math.inf if changed_at is None else changed_at, counted=False)
    if current.alias is not None and (
        current.alias == DEFAULT_DB_ALIAS or MONITOR.state(current.alias).has_writes_until(inner.changed_at)
    ):
        inner.alias, inner.reason = current.alias, current.reason
    token = _CURRENT.set(inner)
    try:
        yield
    finally:
        _CURRENT.reset(token)


class ReplicaRouter:
    """settings.DATABASE_ROUTERS when DATABASE_REPLICA_URLS is set."""

    def db_for_read(self, model, **hints) -> str:
        reads = _CURRENT.get()
        if (
            reads is None
            or model._meta.app_label in PRIMARY_ONLY_APPS
            or connections[DEFAULT_DB_ALIAS].in_atomic_block
        ):
            return DEFAULT_DB_ALIAS
        return reads.database()

    def db_for_write(self, model, **hints) -> str:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints) -> bool | None:
        """An object read from a replica and one from the primary are the same database's rows."""
        ours = {DEFAULT_DB_ALIAS, *settings.DATABASE_REPLICAS}
        return True if obj1._state.db in ours and obj2._state.db in ours else None

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints) -> bool:
        return db == DEFAULT_DB_ALIAS
