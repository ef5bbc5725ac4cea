"""What the health diagnosis measures: request latency and errors, database connections, CPU, the cache's hit
ratio, the beat heartbeat. Public, so the capacity sampler (monitoring.capacity.sampler) measures the same
things the same way; the verdicts on them are in :mod:`monitoring.diagnosis.grading`.

Each reading says where its numbers came from (``source``): Prometheus (``PROMETHEUS_URL``) for the whole site
when it answers, otherwise this process or the web processes' merged metrics.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

import psutil
from django.conf import settings
from django.core.cache import cache, caches
from django.db import connections

from monitoring import web_metrics
from sigma_playground.caching import keys
from sigma_playground.health import check_cache
from sigma_playground.telemetry.window import REQUESTS

logger = logging.getLogger(__name__)

WINDOW = "5m"

_LATENCY_BUCKET = "django_http_requests_latency_seconds_by_view_method_bucket"


_RESPONSES = "django_http_responses_total_by_status_view_method_total"


def _web(extra: str = "") -> str:
    """The label matcher of the web job's series (settings.PROMETHEUS_WEB_JOB), plus ``extra`` matchers."""
    matchers = [f'job="{settings.PROMETHEUS_WEB_JOB}"', *([extra] if extra else [])]
    return "{" + ",".join(matchers) + "}"


_5XX = 'status=~"5.."'


def prometheus_queries() -> dict[str, str]:
    return {
        "p95_s": f"histogram_quantile(0.95, sum by (le) (rate({_LATENCY_BUCKET}{_web()}[{WINDOW}])))",
        # "or vector(0)": with no 5xx series at all the ratio is 0, not "no data".
        "error_ratio": (
            f"(sum(rate({_RESPONSES}{_web(_5XX)}[{WINDOW}])) or vector(0))"
            f" / sum(rate({_RESPONSES}{_web()}[{WINDOW}]))"
        ),
        "requests": f"sum(increase({_RESPONSES}{_web()}[{WINDOW}]))",
        "cache_hits": cache_lookups_query("hit"),
        "cache_misses": cache_lookups_query("miss"),
        # The busiest host's CPU utilisation, as the HighCPUUsage rule defines it (node-exporter).
        "cpu_percent": (
            f'max(100 * (1 - sum by (instance) (rate(node_cpu_seconds_total{{mode=~"idle|iowait"}}[{WINDOW}]))'
            f" / sum by (instance) (rate(node_cpu_seconds_total[{WINDOW}]))))"
        ),
    }


REQUEST_QUERIES = ("p95_s", "error_ratio", "requests")


@dataclass
class RequestStats:
    requests: float | None
    p95_ms: float | None
    error_ratio: float | None
    source: str
    prometheus_error: str = ""  # PROMETHEUS_URL is set but did not answer: why


class PrometheusError(Exception):
    pass


def prometheus_scalar(base_url: str, query: str, timeout: float) -> float | None:
    url = f"{base_url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    if not url.startswith(("http://", "https://")):
        raise PrometheusError("PROMETHEUS_URL must be http(s)")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (scheme checked above)
            body = json.loads(response.read(1_000_000))
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
        raise PrometheusError(type(exc).__name__) from exc
    if body.get("status") != "success":
        raise PrometheusError(str(body.get("error", "query failed"))[:200])
    result = body.get("data", {}).get("result", [])
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if value != value else value  # NaN: no traffic


def prometheus_request_stats(base_url: str, timeout: float = 2.0) -> RequestStats:
    queries = prometheus_queries()
    values = {name: prometheus_scalar(base_url, queries[name], timeout) for name in REQUEST_QUERIES}
    return RequestStats(
        requests=values["requests"],
        p95_ms=None if values["p95_s"] is None else values["p95_s"] * 1000,
        error_ratio=values["error_ratio"],
        source=f"Prometheus at {base_url}, all web processes (job {settings.PROMETHEUS_WEB_JOB}), last {WINDOW}",
    )


def process_request_stats(note: str = "") -> RequestStats:
    stats = REQUESTS.stats()
    source = f"this process's own metrics (pid {os.getpid()}), last {stats.seconds // 60} minutes"
    if not settings.PROMETHEUS_URL:
        source += "; set PROMETHEUS_URL for the whole site"
    return RequestStats(
        requests=stats.requests,
        p95_ms=stats.p95_ms,
        error_ratio=stats.error_ratio,
        source=f"{note}{source}",
    )


def request_stats() -> RequestStats:
    if settings.PROMETHEUS_URL:
        try:
            return prometheus_request_stats(settings.PROMETHEUS_URL)
        except PrometheusError as exc:
            logger.warning("diagnosis: Prometheus did not answer: %s", exc)
            stats = process_request_stats(note=f"Prometheus did not answer ({exc}); showing ")
            stats.prometheus_error = str(exc)
            return stats
    return process_request_stats()


@dataclass
class DbConnections:
    vendor: str
    pool_in_use: int | None = None
    pool_size: int | None = None
    pool_max: int | None = None
    pool_waiting: int | None = None
    server_total: int | None = None
    server_active: int | None = None
    server_max: int | None = None


def db_connections() -> DbConnections:
    connection = connections["default"]
    data = DbConnections(vendor=connection.vendor)
    pool = getattr(type(connection), "_connection_pools", {}).get(connection.alias)
    if pool is not None:
        stats = pool.get_stats()
        data.pool_size = stats.get("pool_size", 0)
        data.pool_in_use = data.pool_size - stats.get("pool_available", 0)
        data.pool_max = stats.get("pool_max")
        data.pool_waiting = stats.get("requests_waiting", 0)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*), count(*) FILTER (WHERE state = 'active') FROM pg_stat_activity "
                "WHERE backend_type = 'client backend'"
            )
            data.server_total, data.server_active = cursor.fetchone()
            cursor.execute("SELECT current_setting('max_connections')::int")
            (data.server_max,) = cursor.fetchone()
    return data


CPU_INTERVAL_S = 0.5


@dataclass
class CpuReading:
    percent: float
    source: str
    load_1m: float | None = None


def cpu_utilisation() -> CpuReading:
    """CPU utilisation over an interval: the share of time neither idle nor waiting for I/O, the one
    definition the HighCPUUsage rule, the dashboard and the capacity sampler use. With PROMETHEUS_URL, the
    busiest host over the last 5 minutes (node-exporter); otherwise this machine over CPU_INTERVAL_S. The
    load average (runnable and waiting processes, not CPU time) is only shown beside it."""
    load = psutil.getloadavg()[0]
    if settings.PROMETHEUS_URL:
        try:
            value = prometheus_scalar(settings.PROMETHEUS_URL, prometheus_queries()["cpu_percent"], 2.0)
        except PrometheusError as exc:
            logger.warning("diagnosis: Prometheus did not answer the CPU query: %s", exc)
        else:
            if value is not None:
                return CpuReading(value, f"node-exporter via Prometheus, busiest host, last {WINDOW}", load)
    percent = psutil.cpu_percent(interval=CPU_INTERVAL_S)
    return CpuReading(percent, f"psutil, this machine, over {CPU_INTERVAL_S:g} s", load)


@dataclass
class CacheState:
    backend: str
    reachable: bool
    hits: float | None
    misses: float | None
    source: str
    error: str = ""
    missing: str = ""  # no hit ratio to be had here: why


def cache_lookups_query(result: str) -> str:
    matcher = f'result="{result}"'
    return f"sum(increase(sigma_cache_requests_total{_web(matcher)}[{WINDOW}]))"


def cache_state() -> CacheState:
    """Reachability by PING (or a round trip), and the hit ratio of the project's own cache lookups
    (sigma_cache_requests_total of the web processes): site-wide over the last 5 minutes from Prometheus when
    PROMETHEUS_URL is set, otherwise the web processes' merged multiprocess metrics since they started
    (monitoring.web_metrics). Never Redis INFO: that counts the whole server, the Celery broker included."""
    result = check_cache()
    client = getattr(cache, "client", None)
    is_redis = client is not None and hasattr(client, "get_client")
    backend = "redis" if is_redis else type(caches["default"]).__name__
    if not result.ok:
        return CacheState(backend, False, None, None, "PING", error=result.detail)
    note = ""
    if settings.PROMETHEUS_URL:
        try:
            hits = prometheus_scalar(settings.PROMETHEUS_URL, cache_lookups_query("hit"), 2.0)
            misses = prometheus_scalar(settings.PROMETHEUS_URL, cache_lookups_query("miss"), 2.0)
            return CacheState(
                backend,
                True,
                hits,
                misses,
                f"sigma_cache_requests_total from Prometheus at {settings.PROMETHEUS_URL} "
                f"(job {settings.PROMETHEUS_WEB_JOB}), last {WINDOW}",
            )
        except PrometheusError as exc:
            note = f"Prometheus did not answer ({exc}); "
    try:
        web = web_metrics.read()
    except web_metrics.Unavailable as exc:
        return CacheState(backend, True, None, None, f"{note}no web counters", missing=str(exc))
    return CacheState(
        backend, True, web.cache_hits, web.cache_misses, f"{note}sigma_cache_requests_total of {web.source}"
    )


def broker_is_memory() -> bool:
    return settings.CELERY_BROKER_URL.startswith("memory://")


def heartbeat_age_s(now: float | None = None) -> float | None:
    stamp = cache.get(keys.beat_heartbeat())
    if stamp is None:
        return None
    return max(0.0, (time.time() if now is None else now) - float(stamp))
