"""The WSGI front: anonymous cache hits answered before Django's request handler.

``sigma_playground.wsgi.application`` is this front around Django's WSGI handler. For a request the page
cache can answer (``pages.lookup_page``: an anonymous GET or HEAD of a cached view, a valid host, no
``?profile``) whose page is fresh in this process or in Redis, it writes the stored status, headers and body
straight to the server. Everything else, including every miss and every conditional request, goes to
Django unchanged, with the lookup already made (the middleware reuses it, so a miss still costs one round
trip).

Why a front and not only the middleware: under gunicorn a hit answered by the middleware spent most of its
time outside the cache (Django's handler and request object, an ``HttpResponse`` and its headers, and about
twenty Prometheus file writes), about 2 ms of CPU against 0.45 ms for a bare WSGI app (docs/performance.md,
"What a cached page costs"). A hit here keeps what makes it observable: its request id (the client's when
sane, in the response and on every log record), the access-log line, the page's ``on_hit`` (view counting)
and the same django-prometheus series the middleware records, added to a per-process batch published every
second (sigma_playground/telemetry/batched.py) instead of one file write each.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.core.handlers.wsgi import WSGIRequest
from django.db import close_old_connections
from django_prometheus.middleware import Metrics

from sigma_playground import queue_time
from sigma_playground import request_id as rid
from sigma_playground.caching import pages
from sigma_playground.request_metrics import sample_db_pool
from sigma_playground.telemetry.batched import BATCH
from sigma_playground.telemetry.window import REQUESTS

logger = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
_CONDITIONAL = ("HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE", "HTTP_IF_MATCH", "HTTP_IF_UNMODIFIED_SINCE")
_STATUS_LINES = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "OPTIONS", "CONNECT", "PATCH"})
_CHARSET = re.compile(r";\s*charset=(?P<charset>[^\s;]+)", re.I)


class CachedPageFront:
    def __init__(self, application: Callable[[dict, StartResponse], Iterable[bytes]]) -> None:
        self.application = application

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        # The first thing: how long the request waited before reaching us, and a 503 if that was too long.
        waited = queue_time.measure(environ)
        if queue_time.should_shed(environ, waited):
            return _shed(environ, waited or 0.0, start_response)
        if not (settings.PAGE_FRONT_ENABLED and settings.PAGE_CACHE_ENABLED) or environ.get(
            "REQUEST_METHOD"
        ) not in ("GET", "HEAD"):
            return self.application(environ, start_response)
        started = time.perf_counter() - (waited or 0.0)  # the latency a client feels includes its wait
        request_id = environ[rid.ENVIRON_KEY] = rid.request_id_for(environ)
        token = rid.set_request_id(request_id)
        try:
            request = WSGIRequest(environ)
            try:
                lookup = pages.lookup_page(request)
            except Exception:  # the cache is an optimisation: Django answers whatever went wrong here
                logger.exception("page cache front: lookup failed")
                return self.application(environ, start_response)
            environ[pages.LOOKUP_ENVIRON] = lookup
            if lookup is None or not lookup.hit or any(name in environ for name in _CONDITIONAL):
                return self.application(environ, start_response)
            return self._serve(request, lookup, request_id, started, start_response)
        finally:
            rid.reset_request_id(token)

    def _serve(
        self,
        request: WSGIRequest,
        lookup: pages.PageLookup,
        request_id: str,
        started: float,
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        value = lookup.entry.value  # type: ignore[union-attr]  # a hit has an entry
        match = lookup.match
        if lookup.spec.on_hit is not None:
            lookup.spec.on_hit(request, *match.args, **match.kwargs)
            close_old_connections()  # as Django's request_finished would, if on_hit fell back to the database
        status, content = value["status"], value["content"]
        headers = [
            *((name, header) for name, header in value["headers"]),
            ("X-Cache", "hit"),
            (rid.HEADER, request_id),
        ]
        start_response(_STATUS_LINES.get(status) or f"{status} Unknown", headers)
        duration = time.perf_counter() - started
        _record(request, match.view_name, status, len(content), _charset(value["headers"]), duration)
        rid.log_access(request.method, match.view_name, status, duration * 1000, None)
        return [] if request.method == "HEAD" else [content]


def _shed(environ: dict, waited: float, start_response: StartResponse) -> Iterable[bytes]:
    """The cheap 503 for a request that waited past the budget: no request object, no resolving, counted in
    the same request series as every response (route ``<shed>``, latency = its wait) and in its own counter."""
    status, headers, body = queue_time.shed_response()
    request_id = rid.request_id_for(environ)
    start_response(status, [*headers, (rid.HEADER, request_id)])
    method = environ.get("REQUEST_METHOD", "GET")
    method = method if method in _METHODS else "<invalid method>"
    m = Metrics.get_instance()
    BATCH.record(
        [
            (queue_time.SHED.counter, (), 1),
            (m.requests_total, (), 1),
            (m.responses_total, (), 1),
            (m.responses_by_status, ("503",), 1),
            (m.responses_by_status_view_method, ("503", queue_time.SHED_ROUTE, method), 1),
        ],
        [(m.requests_latency_by_view_method, (queue_time.SHED_ROUTE, method), waited)],
    )
    REQUESTS.record(waited, 503)
    token = rid.set_request_id(request_id)
    try:
        rid.log_access(method, queue_time.SHED_ROUTE, 503, waited * 1000, None)
    finally:
        rid.reset_request_id(token)
    return [] if method == "HEAD" else [body]


def _charset(headers: list[tuple[str, str]]) -> str:
    for name, value in headers:
        if name.lower() == "content-type":
            found = _CHARSET.search(value)
            if found:
                return found["charset"].strip("\"'")
    return settings.DEFAULT_CHARSET


def _content_length(meta: dict) -> int:
    try:
        return int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _record(request: WSGIRequest, view: str, status: int, size: int, charset: str, duration: float) -> None:
    """The django-prometheus series PrometheusBeforeMiddleware and our PrometheusAfterMiddleware record for a
    response (see their process_request/process_view/process_response), batched."""
    m = Metrics.get_instance()
    method = request.method or "GET"  # the front only answers GET and HEAD: never an invalid method
    transport = "https" if request.is_secure() else "http"
    code = str(status)
    counts = [
        (m.requests_total, (), 1),
        (m.responses_total, (), 1),
        (m.requests_by_method, (method,), 1),
        (m.requests_by_transport, (transport,), 1),
        (m.requests_by_view_transport_method, (view, transport, method), 1),
        (m.responses_by_status, (code,), 1),
        (m.responses_by_status_view_method, (code, view, method), 1),
        (m.responses_by_charset, (charset,), 1),
    ]
    if request.META.get("HTTP_X_REQUESTED_WITH") == "XMLHttpRequest":
        counts.append((m.requests_ajax, (), 1))
    BATCH.record(
        counts,
        [
            (m.requests_latency_before, (), duration),
            (m.requests_body_bytes, (), _content_length(request.META)),
            (m.responses_body_bytes, (), size),
            (m.requests_latency_by_view_method, (view, method), duration),
        ],
    )
    REQUESTS.record(duration, status)
    sample_db_pool()
