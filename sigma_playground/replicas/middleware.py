"""The request side of read replicas: which requests are public page reads, and who has just written.

Public page reads are identified by the view, not by a list of URLs: a GET or HEAD of a view decorated with
``@cache_anonymous_page`` (sigma_playground/caching/pages.py) is by definition a page anyone may be shown
from a shared cache, so its reads may come from a replica; a new public page joins by being decorated.

Read-your-writes: every statement the request runs on the primary passes a small execute wrapper; one that
is not a read (INSERT, UPDATE, DELETE, an upsert through ``connection.cursor()``, a session saved...) marks
the request as having written. A request that wrote and succeeded (status below 400) sets a signed cookie
(``PIN_COOKIE``, HttpOnly, SameSite=Lax, Secure like the session cookie) that lives REPLICA_PIN_SECONDS; while
it is valid, that client's reads all go to the primary. Method does not matter: a failed form or a RUM
beacon (both POSTs) write nothing and pin nothing, while a GET that marks notifications read does pin.
Signed, so that nobody can send every read of theirs to the primary by inventing the cookie. The response
that sets it carries a Set-Cookie, so neither the page cache nor a CDN stores it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.db import DEFAULT_DB_ALIAS, connections
from django.http import HttpRequest, HttpResponse

from sigma_playground.caching import service
from sigma_playground.replicas import router
from sigma_playground.telemetry.instruments import DB_PUBLIC_READS

PIN_COOKIE = "sigma_primary"
PIN_SALT = "sigma_playground.replicas.pin"
_CONTEXT_ATTR = "_sigma_public_reads_token"
_READS = frozenset(
    {
        "SELECT", "SHOW", "SET", "RESET", "SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN", "START", "COMMIT",
        "EXPLAIN", "VALUES", "FETCH", "DECLARE", "CLOSE", "TABLE",
    }
)  # fmt: skip
_FIRST_WORD = re.compile(r"[\s(]*([A-Za-z]+)")
_WRITE_IN_WITH = re.compile(r"\b(INSERT|UPDATE|DELETE|MERGE)\b", re.IGNORECASE)


def is_write(sql: str) -> bool:
    """Does this statement change anything? (Conservative: anything not known to read counts.)"""
    match = _FIRST_WORD.match(sql)
    if match is None:
        return False
    word = match.group(1).upper()
    if word == "WITH":
        return _WRITE_IN_WITH.search(sql) is not None
    return word not in _READS


class _WriteDetector:
    """An execute wrapper (Django's connection.execute_wrapper) that notes whether anything was written."""

    def __init__(self) -> None:
        self.wrote = False

    def __call__(self, execute, sql, params, many, context):
        if not self.wrote and is_write(sql):
            self.wrote = True
        return execute(sql, params, many, context)


def is_pinned(request: HttpRequest) -> bool:
    value = request.get_signed_cookie(
        PIN_COOKIE, default=None, salt=PIN_SALT, max_age=settings.REPLICA_PIN_SECONDS
    )
    return value is not None


def pin(response: HttpResponse) -> None:
    response.set_signed_cookie(
        PIN_COOKIE,
        "1",
        salt=PIN_SALT,
        max_age=settings.REPLICA_PIN_SECONDS,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )


class ReplicaRoutingMiddleware:
    """Installed by settings.py only with DATABASE_REPLICA_URLS (below the page cache, above sessions)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        if not settings.DATABASE_REPLICAS:
            raise MiddlewareNotUsed
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        detector = _WriteDetector()
        # Not Django's execute_wrapper() context manager: it pops the last wrapper at the end, and a connection
        # made during the request (the pool hands one out at the first query) appends the query timer
        # (sigma_playground.db_instrumentation) after this one. The pop then took the timer, and every request
        # left a detector behind, nested in the next: after a few hundred requests per thread a statement went
        # through hundreds of them and raised RecursionError (the scaling point's load test, docs/scaling.md).
        wrappers = connections[DEFAULT_DB_ALIAS].execute_wrappers
        wrappers.append(detector)
        try:
            response = self.get_response(request)
        finally:
            with contextlib.suppress(ValueError):
                wrappers.remove(detector)
            token = request.__dict__.pop(_CONTEXT_ATTR, None)
            if token is not None:
                router.close_public_reads(token)
        if detector.wrote and response.status_code < 400:
            pin(response)
        return response

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> None:
        spec = getattr(view_func, "sigma_page_cache", None)
        if spec is None or request.method not in ("GET", "HEAD"):
            return
        reason = ""
        if is_pinned(request):
            reason = "pinned"
        else:
            # Resolved here, on the primary: the session and the user must be what was just written.
            user = getattr(request, "user", None)
            if user is not None and user.is_staff:
                reason = "staff"
        if not reason:
            changed = service.changed_at(spec.namespaces(request, *view_args, **view_kwargs))
            if changed is not None:
                setattr(request, _CONTEXT_ATTR, router.open_public_reads(changed))
                return
            reason = "unknown"
        DB_PUBLIC_READS.inc(target="primary", reason=reason)
