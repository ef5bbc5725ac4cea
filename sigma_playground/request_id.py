"""Request ids and the access log.

Every request gets an id: the client's (or the proxy's) ``X-Request-ID`` when it is sane, otherwise a new one.
It is returned in the response header, attached to every log record made while the request runs, and
carried to the Celery tasks the request starts (see ``monitoring/celery_signals.py``). One access-log line per
request records method, route name, status, duration and a hashed user id: never the raw user id, query
string or form data.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.conf import settings
from django.http import HttpRequest, HttpResponse

HEADER = "X-Request-ID"
# Letters, digits and ._:- only, 8 to 128 characters: covers UUIDs and the ids of common proxies, and keeps
# anything that could forge a log line or a header out.
_SANE = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
access_logger = logging.getLogger("sigma_playground.request")


def current_request_id() -> str | None:
    return _request_id.get()


def new_request_id() -> str:
    return uuid.uuid4().hex


def sane_request_id(value: str | None) -> str | None:
    return value if value and _SANE.match(value) else None


@contextmanager
def bound_request_id(value: str | None) -> Iterator[None]:
    token = _request_id.set(value)
    try:
        yield
    finally:
        _request_id.reset(token)


def set_request_id(value: str | None) -> contextvars.Token:
    return _request_id.set(value)


def reset_request_id(token: contextvars.Token) -> None:
    _request_id.reset(token)


def hash_user_id(pk: object) -> str:
    """A stable pseudonym for a user in logs: keyed with SECRET_KEY, so it can't be reversed by hashing ids."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"user:{pk}".encode(), hashlib.sha256).hexdigest()
    return digest[:16]


def _route(request: HttpRequest) -> str | None:
    match = getattr(request, "resolver_match", None)
    return match.view_name if match is not None else None


def _user(request: HttpRequest) -> str | None:
    user = getattr(request, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return hash_user_id(user.pk)


# The WSGI front (caching/front.py) gives each request its id before Django sees it and leaves it here.
ENVIRON_KEY = "sigma.request_id"
# Requests the site makes to itself (the cache warmer, workbooks.warming) carry this environ key, which no
# HTTP client can set (only headers become environ keys, as HTTP_*): they are not site traffic, so they write
# no access-log line (warm_cache prints a summary instead) and record no request metrics
# (sigma_playground.request_metrics).
UNTRACKED_ENVIRON = "sigma.untracked"
# Request attribute: a stored copy of this page is in hand, and the page cache serves it (and records that
# response) if the rebuild fails. The request metrics then skip the failed rebuild's 5xx: one request, one
# response counted, the one its client got.
STALE_FALLBACK_ATTR = "sigma_stale_fallback"


def request_id_for(environ: dict) -> str:
    """The id for a request, from its WSGI environ: the front's, the client's when sane, or a new one."""
    return environ.get(ENVIRON_KEY) or sane_request_id(environ.get("HTTP_X_REQUEST_ID")) or new_request_id()


def log_access(
    method: str | None, route: str | None, status: int, duration_ms: float, user: str | None
) -> None:
    access_logger.info(
        "%s %s %s %.1fms",
        method,
        route or "-",
        status,
        duration_ms,
        extra={
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(duration_ms, 1),
            "user": user,
        },
    )


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_for(request.META)
        request.request_id = request_id  # type: ignore[attr-defined]
        token = _request_id.set(request_id)
        started = time.perf_counter()
        status = 500
        try:
            response = self.get_response(request)
            status = response.status_code
            response[HEADER] = request_id
            return response
        finally:
            if not request.META.get(UNTRACKED_ENVIRON):
                duration_ms = (time.perf_counter() - started) * 1000
                log_access(request.method, _route(request), status, duration_ms, _user(request))
            _request_id.reset(token)


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record (None outside a request or task), so formatters can rely on it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            # django.request logs 4xx/5xx after the middleware returned, with the request attached.
            record.request_id = _request_id.get() or getattr(
                getattr(record, "request", None), "request_id", None
            )
        return True
