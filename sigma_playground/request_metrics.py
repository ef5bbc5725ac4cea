"""Request metrics: django-prometheus's middleware with bounded labels, and a sample of the database pool.

Core infrastructure: the page cache (caching/pages.py) and the WSGI front (caching/front.py) record the same
series for the hits they answer. ``?profile=1`` (the staff profiler) is monitoring's (monitoring/middleware.py).
"""

from __future__ import annotations

import logging
import time

from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.db import connections
from django.http import Http404, HttpRequest
from django.http.multipartparser import MultiPartParserError
from django_prometheus import middleware as dp
from django_prometheus.utils import TimeSince

from sigma_playground import queue_time
from sigma_playground.request_id import STALE_FALLBACK_ATTR, UNTRACKED_ENVIRON
from sigma_playground.telemetry import instruments, process
from sigma_playground.telemetry.routes import UNNAMED, page_route_names, server_route_names
from sigma_playground.telemetry.window import REQUESTS

logger = logging.getLogger(__name__)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "OPTIONS", "CONNECT", "PATCH"})

# Not site traffic: Prometheus scrapes and health probes (every few seconds, from machines) and the cache
# warmer's requests (made in-process by workbooks.warming, marked with this WSGI environ key, which no HTTP
# client can set: only headers become environ keys, as HTTP_*). They record no request metrics at all, so
# every latency, rate and error series (rules, dashboard, diagnosis, capacity) counts users' requests only.
UNTRACKED_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})

# Exceptions Django turns into a 4xx response (django.core.handlers.exception.response_for_exception): the
# client's mistake, already counted by status. Only the others (answered 500) count as exceptions.
CLIENT_ERRORS = (Http404, PermissionDenied, BadRequest, SuspiciousOperation, MultiPartParserError)

# The statuses the rules and panels select (status=~"5..") exist at zero from process start for every page
# route and the usual methods, so the first errors after a start raise rate() (a series born at 5 shows no
# increase until its second scrape). Admin routes are left to appear with their first response.
INITIAL_STATUSES = ("500", "503")
INITIAL_METHODS = ("GET", "HEAD", "POST")


def untracked(request: HttpRequest) -> bool:
    return request.path_info in UNTRACKED_PATHS or bool(request.META.get(UNTRACKED_ENVIRON))


def initial_views() -> list[str]:
    return sorted((page_route_names() - {"monitoring:metrics", "healthz", "readyz"}) | {UNNAMED, "other"})


def initialize_request_series(m: dp.Metrics) -> None:
    for view in initial_views():
        m.exceptions_by_view.labels(view=view)
        for method in INITIAL_METHODS:
            for status in INITIAL_STATUSES:
                m.responses_by_status_view_method.labels(status=status, view=view, method=method)
    for status in INITIAL_STATUSES:
        m.responses_by_status.labels(status=status)


class PrometheusBeforeMiddleware(dp.PrometheusBeforeMiddleware):
    """django-prometheus's first middleware, silent for untracked requests (see UNTRACKED_PATHS)."""

    def process_request(self, request):
        if not untracked(request):
            super().process_request(request)

    def process_response(self, request, response):
        if untracked(request):
            return response
        return super().process_response(request, response)


class PrometheusAfterMiddleware(dp.PrometheusAfterMiddleware):
    """django-prometheus's request metrics, labelled by route name, with every label bounded.

    django-prometheus labels its latency histogram with the raw ``request.method``, so a client inventing
    methods would invent series; here a method outside the standard ones and a view name outside the
    resolver's become ``<invalid method>`` and ``other``. Each response also feeds the in-process window the
    health diagnosis reads, and a sample of the database pool. Scrapes, probes and warming record nothing;
    exceptions that Django answers with a 4xx are not counted as exceptions.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Built once per process (each gunicorn worker builds its handler after the fork). Not in a Celery
        # worker, where only the cache warmer's test client builds a handler: no request series there at all.
        if not process.in_celery_worker():
            initialize_request_series(self.metrics)

    def label_metric(self, metric, request, response=None, **labels):
        if "method" in labels and labels["method"] not in _METHODS:
            labels["method"] = "<invalid method>"
        if "view" in labels and labels["view"] not in server_route_names():
            labels["view"] = "other"
        return super().label_metric(metric, request, response, **labels)

    def process_request(self, request):
        if untracked(request):
            return
        super().process_request(request)
        # The time the request waited before the app saw it (sigma_playground.queue_time) is part of the
        # latency its client feels: the timer starts that much earlier.
        request.prometheus_after_middleware_event -= queue_time.queued(request.META)

    def process_view(self, request, view_func, *view_args, **view_kwargs):
        if not untracked(request):
            super().process_view(request, view_func, *view_args, **view_kwargs)

    def process_template_response(self, request, response):
        if untracked(request):
            return response
        return super().process_template_response(request, response)

    def process_response(self, request, response):
        if untracked(request):
            return response
        if response.status_code >= 500 and getattr(request, STALE_FALLBACK_ATTR, False):
            return response  # the page cache answers with its stored copy instead, and records that
        response = super().process_response(request, response)
        started = getattr(request, "prometheus_after_middleware_event", None)
        if started is not None:
            REQUESTS.record(TimeSince(started), response.status_code)
        sample_db_pool()
        return response

    def process_exception(self, request, exception):
        if untracked(request) or isinstance(exception, CLIENT_ERRORS):
            return None
        return super().process_exception(request, exception)


POOL_SAMPLE_SECONDS = 1.0
_pool_sampled = 0.0


def sample_db_pool() -> None:
    """Copy the default database pool's counts into gauges (no query; zero when there is no pool), at most
    once per POOL_SAMPLE_SECONDS per process: gauges are read once per scrape, not once per request."""
    global _pool_sampled
    now = time.monotonic()
    if now - _pool_sampled < POOL_SAMPLE_SECONDS:
        return
    _pool_sampled = now
    connection = connections["default"]
    pool = getattr(type(connection), "_connection_pools", {}).get(connection.alias)
    if pool is None:
        return
    try:
        stats = pool.get_stats()
    except Exception:  # a closing pool must not fail a response
        return
    size, available = stats.get("pool_size", 0), stats.get("pool_available", 0)
    instruments.DB_POOL_CONNECTIONS.set(max(0, size - available), state="in_use")
    instruments.DB_POOL_CONNECTIONS.set(available, state="idle")
    instruments.DB_POOL_MAX.set(stats.get("pool_max", getattr(pool, "max_size", 0)))
    instruments.DB_POOL_WAITING.set(stats.get("requests_waiting", 0))
