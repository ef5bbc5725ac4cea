"""The database circuit breaker: with PostgreSQL down, requests that need it fail in milliseconds.

Without it, a PostgreSQL outage froze the whole site (issue 12): every request that needed the database held
one of the few request threads for the pool timeout, everything else (cached pages and ``/healthz``
included) queued behind them, and ``/readyz`` hung.

How it works, per process:

- The connection pool (``sigma_playground.postgresql``) gives up on a connection as soon as its own attempt
  to open one fails, instead of waiting out the pool timeout; a failed connection, or a statement that fails
  because the server went away, *trips* the breaker.
- While it is open (``DB_BREAKER_SECONDS``) nothing tries the database: asking for a connection raises
  ``DatabaseUnavailable`` at once. Then one request, the probe, tries again (the others keep failing fast):
  its success closes the breaker, its failure opens it for another interval.
- A request that fails that way gets a styled 503 page with ``Retry-After`` (``DatabaseUnavailableMiddleware``
  for errors in views, ``server_error`` for errors anywhere else), never the generic 500 page; cached pages
  keep being served from Redis, or from their stale copy (``caching.service.get_or_build``).

One breaker per database alias (``breaker(alias)``): the primary's is ``BREAKER``; each read replica
(``DATABASE_REPLICA_URLS``, sigma_playground/replicas) has its own, so a replica that went away only takes
itself out of the replica rotation (its reads go to the primary) and never fails requests for the primary.
Errors raised by the engine carry the alias they happened on (``alias_of``).
"""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.views import defaults

logger = logging.getLogger("sigma_playground.db.breaker")


class DatabaseUnavailable(OperationalError):
    """The breaker is open: the database was not tried."""


# SQLSTATE classes and codes that mean the server is unreachable, going away or not accepting connections.
_OUTAGE_SQLSTATES = ("08", "57P01", "57P02", "57P03")


def is_outage(exc: BaseException | None) -> bool:
    """Is ``exc`` (a Django database error or the driver's own) the database being unreachable, as opposed
    to a bad query, a statement timeout or a pool that is merely busy?"""
    if isinstance(exc, DatabaseUnavailable):
        return True
    if isinstance(exc, OperationalError | InterfaceError):
        exc = exc.__cause__ or exc  # Django wraps the driver's error
    try:
        import psycopg
        from psycopg_pool import PoolTimeout
    except ImportError:  # the embedded SQLite default has no outage to detect
        return False
    if isinstance(exc, PoolTimeout):
        return str(exc).startswith("cannot connect")  # sigma_playground.postgresql's, not a busy pool's
    if not isinstance(exc, psycopg.Error):
        return False
    if exc.sqlstate:
        return exc.sqlstate.startswith(_OUTAGE_SQLSTATES)
    # No SQLSTATE: connecting failed, or the connection broke (server closed it, connection refused).
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


class Breaker:
    def __init__(self, alias: str = DEFAULT_DB_ALIAS) -> None:
        self.alias = alias
        self.on_trip: list[Callable[[], None]] = []  # e.g. discard the connection pool
        self._lock = threading.Lock()
        self._tripped = False
        self._open_until = 0.0
        self._probing = False

    def before_connect(self) -> None:
        """Raise DatabaseUnavailable unless this caller may try the database (closed, or it is the probe)."""
        if not self._tripped:
            return
        if time.monotonic() >= self._open_until:
            with self._lock:
                if not self._probing:
                    self._probing = True
                    return
        raise DatabaseUnavailable("database circuit open: not trying the database for a moment")

    def succeeded(self) -> None:
        if self._tripped:
            with self._lock:
                self._tripped = self._probing = False
            logger.warning("database %s reachable again: circuit closed", self.alias)

    def failed(self, exc: BaseException | None = None) -> None:
        with self._lock:
            first = not self._tripped
            self._tripped, self._probing = True, False
            self._open_until = time.monotonic() + settings.DB_BREAKER_SECONDS
        for hook in self.on_trip:
            hook()
        if first:
            logger.error(
                "database %s unreachable, failing fast for %.0f s: %s",
                self.alias,
                settings.DB_BREAKER_SECONDS,
                type(exc).__name__ if exc else "connection failed",
            )

    def is_open(self) -> bool:
        return self._tripped

    def retry_after(self) -> int:
        """Seconds a client should wait (the Retry-After header): at least 1."""
        return max(1, math.ceil(self._open_until - time.monotonic()))

    def reset(self) -> None:
        with self._lock:
            self._tripped = self._probing = False
            self._open_until = 0.0


_BREAKERS: dict[str, Breaker] = {}
_BREAKERS_LOCK = threading.Lock()


def breaker(alias: str = DEFAULT_DB_ALIAS) -> Breaker:
    """The circuit breaker of one database alias (created on first use)."""
    found = _BREAKERS.get(alias)
    if found is None:
        with _BREAKERS_LOCK:
            found = _BREAKERS.setdefault(alias, Breaker(alias))
    return found


def reset_all() -> None:
    """Close every breaker (tests)."""
    for each in list(_BREAKERS.values()):
        each.reset()


BREAKER = breaker(DEFAULT_DB_ALIAS)  # the primary's

# Attribute the engine (sigma_playground.postgresql) sets on every database error it raises: the alias.
ALIAS_ATTRIBUTE = "sigma_db_alias"


def alias_of(exc: BaseException | None) -> str:
    """The database alias an error happened on (the primary's when the engine did not say)."""
    return getattr(exc, ALIAS_ATTRIBUTE, None) or DEFAULT_DB_ALIAS


def unavailable_response(request: HttpRequest | None = None) -> HttpResponse:
    """The styled 503 page, rendered without the request: it must not touch the session or the user."""
    retry_after = BREAKER.retry_after()
    html = render_to_string("503.html", {"retry_after": retry_after})
    response = HttpResponse(html, status=503)
    response["Retry-After"] = str(retry_after)
    response["Cache-Control"] = "no-store"
    return response


def _note(exc: BaseException | None) -> bool:
    if is_outage(exc):
        if not isinstance(exc, DatabaseUnavailable):
            breaker(alias_of(exc)).failed(exc)
        return True
    return False


class DatabaseUnavailableMiddleware:
    """A view that failed because the database is unreachable answers the styled 503 (also with DEBUG on)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        return unavailable_response(request) if _note(exception) else None


def server_error(request: HttpRequest, template_name: str = "500.html") -> HttpResponse:
    """handler500: the styled 503 when the error is the database being unreachable (raised by a middleware,
    the session or the user lookup, outside any view), the plain 500 page otherwise."""
    if _note(sys.exc_info()[1]):
        return unavailable_response(request)
    return defaults.server_error(request, template_name)
