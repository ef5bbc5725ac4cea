"""Request metrics and the staff request profiler."""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import time
from collections.abc import Callable

from django.db import connections
from django.http import HttpRequest, HttpResponse
from django_prometheus import middleware as dp
from django_prometheus.utils import TimeSince

from monitoring import instruments
from monitoring.routes import server_route_names
from monitoring.window import REQUESTS
from sigma_playground import queue_time

logger = logging.getLogger(__name__)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "OPTIONS", "CONNECT", "PATCH"})


class PrometheusAfterMiddleware(dp.PrometheusAfterMiddleware):
    """django-prometheus's request metrics, labelled by route name, with every label bounded.

    django-prometheus labels its latency histogram with the raw ``request.method``, so a client inventing
    methods would invent series; here a method outside the standard ones and a view name outside the
    resolver's become ``<invalid method>`` and ``other``. Each response also feeds the in-process window the
    health diagnosis reads, and a sample of the database pool.
    """

    def label_metric(self, metric, request, response=None, **labels):
        if "method" in labels and labels["method"] not in _METHODS:
            labels["method"] = "<invalid method>"
        if "view" in labels and labels["view"] not in server_route_names():
            labels["view"] = "other"
        return super().label_metric(metric, request, response, **labels)

    def process_request(self, request):
        super().process_request(request)
        # The time the request waited before the app saw it (sigma_playground.queue_time) is part of the
        # latency its client feels: the timer starts that much earlier.
        request.prometheus_after_middleware_event -= queue_time.queued(request.META)

    def process_response(self, request, response):
        response = super().process_response(request, response)
        started = getattr(request, "prometheus_after_middleware_event", None)
        if started is not None:
            REQUESTS.record(TimeSince(started), response.status_code)
        sample_db_pool()
        return response


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


# --- ?profile=1 ----------------------------------------------------------------------------------------------

_INLINE = {
    "script": re.compile(r"<script>(.*?)</script>", re.S),
    "style": re.compile(r"<style>(.*?)</style>", re.S),
}


def _csp_hashes(html: str, tag: str) -> list[str]:
    return [
        f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
        for body in _INLINE[tag].findall(html)
    ]


class ProfileMiddleware:
    """``?profile=1`` on any page, for staff: the response is pyinstrument's profile of the request instead.

    For anyone else the parameter is ignored and the page is served as usual. The profile page's inline script
    and style are allowed by their hashes alone, so the Content-Security-Policy stays without 'unsafe-inline'
    (the Google Fonts stylesheet its script asks for is refused; the profile renders in system fonts).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if request.GET.get("profile") != "1" or not (user is not None and user.is_active and user.is_staff):
            return self.get_response(request)
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001, async_mode="disabled")
        profiler.start()
        try:
            response = self.get_response(request)
        finally:
            profiler.stop()
        html = profiler.output_html()
        profiled = HttpResponse(html, content_type="text/html; charset=utf-8")
        profiled["Cache-Control"] = "no-store"
        profiled["X-Profiled-Status"] = str(response.status_code)
        profiled._csp_update = {  # type: ignore[attr-defined]  # read by csp.middleware.CSPMiddleware
            "script-src": _csp_hashes(html, "script"),
            "style-src": _csp_hashes(html, "style"),
        }
        logger.info("profiled %s for staff (%s)", request.path, response.status_code)
        return profiled
