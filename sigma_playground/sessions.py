"""The session engine: Django's ``cached_db`` behind the page cache's circuit breaker.

``cached_db`` reads a session from the cache and falls back to the database on a miss; writes go to both. With
Redis paused, each of its two or three cache calls per request waited a socket timeout (0.55-0.83 s per
logged-in request, issue 12). Here every cache call goes through the cache Redis's breaker
(``sigma_playground.caching.service``): while it is open the cache is skipped at once and the session is read
from and written to the database alone; an error trips it for every other cache user of the process too.

A session deleted (logout, a password change cycling the key) while the breaker is open, or whose cache
delete failed, would keep its cached copy, and ``cached_db`` reads the cache first: the old cookie would work
again once Redis answers. So such a delete is owed: the process keeps the key and deletes it before any other
session cache call it makes once Redis answers. Until then the database row is already gone and the cache is
not read (the breaker is open). The bound: a process that dies owing a delete leaves that copy until it
expires (SESSION_COOKIE_AGE); it takes an outage, a logout during it and the process's death together.
"""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends import cached_db
from django.core.cache import caches

from sigma_playground.caching import service

_MISSING = object()


# Session keys whose cache delete could not be made (module docstring): deleted before any other session call.
_owed_deletes: set[str] = set()
_owed_lock = threading.Lock()


class _BreakerCache:
    """The few cache methods ``cached_db`` calls, skipped while the breaker is open."""

    def __init__(self, cache: Any) -> None:
        self._cache = cache

    def _call(self, op: str, fn, default, *, owed_on_failure: str | None = None):
        breaker = service.backend().breaker
        if not breaker.allow():
            self._owe(owed_on_failure)
            return default
        try:
            if _owed_deletes:
                self._settle()
            result = fn()
        except Exception as exc:  # the sessions alias raises instead of ignoring errors
            self._owe(owed_on_failure)
            service._failed(op, exc)
            return default
        breaker.succeeded()
        return result

    @staticmethod
    def _owe(key: str | None) -> None:
        if key is not None:
            with _owed_lock:
                _owed_deletes.add(key)

    def _settle(self) -> None:
        """Delete the copies owed since an outage; raises (keeping them owed) when the cache fails."""
        with _owed_lock:
            owed = list(_owed_deletes)
            if owed:
                self._cache.delete_many(owed)
                _owed_deletes.difference_update(owed)

    def get(self, key: str, default: Any = None) -> Any:
        return self._call("get", lambda: self._cache.get(key, default), default)

    def set(self, key: str, value: Any, timeout: Any = None) -> None:
        self._call("set", lambda: self._cache.set(key, value, timeout), None)

    def delete(self, key: str) -> None:
        self._call("delete", lambda: self._cache.delete(key), None, owed_on_failure=key)

    def __contains__(self, key: str) -> bool:
        return bool(self._call("get", lambda: key in self._cache, False))

    def __str__(self) -> str:
        return str(self._cache)


class SessionStore(cached_db.SessionStore):
    def __init__(self, session_key: str | None = None) -> None:
        super(cached_db.SessionStore, self).__init__(session_key)  # the database store's; the cache is ours
        alias = settings.SESSION_CACHE_ALIAS if settings.SESSION_CACHE_ALIAS in settings.CACHES else "default"
        self._cache = _BreakerCache(caches[alias])
