"""The health diagnosis: the design's troubleshooting service, measured for real and graded by the SLA.

Each check measures one thing, grades it with :func:`monitoring.sla.thresholds` and says what to do about it.
Overall health is the worst grade: ``critical`` if any check is critical, ``warning`` if any warns, otherwise
``healthy`` (``info`` lines say what could not be measured and why; they never count against health). A check
that fails to measure is a warning naming the error, never an exception: the page, the JSON and
``manage.py diagnose`` always answer.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import psutil
from django.conf import settings
from django.core.cache import cache, caches
from django.db import connections

from monitoring import queues, slow_queries, web_metrics
from monitoring.sla import Threshold, thresholds
from sigma_playground.replicas.monitor import MONITOR as REPLICAS
from sigma_playground.replicas.monitor import ReplicaState
from sigma_playground.telemetry.window import REQUESTS

logger = logging.getLogger(__name__)

RANK = {"ok": 0, "info": 0, "warning": 1, "critical": 2}
STATUS_BY_RANK = {0: "healthy", 1: "warning", 2: "critical"}
WINDOW = "5m"


@dataclass
class Finding:
    check: str
    title: str
    severity: str  # ok | info | warning | critical
    summary: str
    value: float | None = None
    unit: str = ""
    threshold: Threshold | None = None
    recommendations: list[str] = field(default_factory=list)
    source: str = ""

    def as_dict(self) -> dict:
        data = asdict(self)
        data["threshold"] = (
            None
            if self.threshold is None
            else {
                "warning": self.threshold.warning,
                "critical": self.threshold.critical,
                "higher_is_worse": self.threshold.higher_is_worse,
            }
        )
        if self.severity in ("ok", "info"):
            data["recommendations"] = []
        return data

    @property
    def meter(self) -> dict | None:
        """Bounds for an HTML <meter>: good below the warning level, amber up to critical, red beyond."""
        if self.value is None or self.threshold is None:
            return None
        t = self.threshold
        if not t.higher_is_worse:  # a ratio: good above the minimum
            return {
                "min": 0,
                "max": 1,
                "low": t.warning,
                "high": t.warning,
                "optimum": 1,
                "value": self.value,
            }
        high = t.critical if t.critical is not None else t.warning
        top = max(high * 1.25, float(self.value)) or 1
        return {"min": 0, "max": top, "low": t.warning, "high": high, "optimum": 0, "value": self.value}


@dataclass
class Report:
    findings: list[Finding]
    generated_at: datetime

    @property
    def rank(self) -> int:
        return max((RANK[f.severity] for f in self.findings), default=0)

    @property
    def status(self) -> str:
        return STATUS_BY_RANK[self.rank]

    @property
    def exit_code(self) -> int:
        return self.rank

    @property
    def issues(self) -> list[Finding]:
        return [f for f in self.findings if RANK[f.severity] > 0]

    @property
    def recommendations(self) -> list[str]:
        seen: dict[str, None] = {}
        for finding in sorted(self.issues, key=lambda f: -RANK[f.severity]):
            for item in finding.recommendations:
                seen.setdefault(item, None)
        return list(seen)

    def as_dict(self) -> dict:
        return {
            "status": self.status,
            "generated_at": self.generated_at.isoformat(timespec="seconds"),
            "issues": [f.check for f in self.issues],
            "recommendations": self.recommendations,
            "checks": [f.as_dict() for f in self.findings],
        }

    def as_text(self) -> str:
        lines = [f"Health: {self.status.upper()} ({self.generated_at:%Y-%m-%d %H:%M:%S} UTC)", ""]
        for f in self.findings:
            lines.append(f"[{f.severity.upper():8}] {f.title}: {f.summary}")
            if f.source:
                lines.append(f"           source: {f.source}")
            if RANK[f.severity] > 0:
                lines += [f"           - {item}" for item in f.recommendations]
        if self.recommendations:
            lines += ["", "Recommendations:"] + [f"  - {item}" for item in self.recommendations]
        return "\n".join(lines)


# --- Request latency and errors -------------------------------------------------------------------------------

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
        "cache_hits": _cache_lookups("hit"),
        "cache_misses": _cache_lookups("miss"),
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


def _prometheus_scalar(base_url: str, query: str, timeout: float) -> float | None:
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
    values = {name: _prometheus_scalar(base_url, queries[name], timeout) for name in REQUEST_QUERIES}
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


def assess_prometheus(stats: RequestStats) -> Finding:
    """Only when PROMETHEUS_URL is set: a Prometheus that does not answer is a warning (the site-wide
    numbers above fell back to one process's), not an information line."""
    base = {"check": "prometheus", "title": "Prometheus", "source": settings.PROMETHEUS_URL}
    if not stats.prometheus_error:
        return Finding(**base, severity="ok", summary="answered the site-wide queries")
    return Finding(
        **base,
        severity="warning",
        summary=f"PROMETHEUS_URL did not answer ({stats.prometheus_error}): request latency and errors "
        "are this process's only",
        recommendations=[
            "Check that Prometheus is running and reachable from this host (PROMETHEUS_URL)",
            "Check Prometheus' own targets page: the web job should be up",
        ],
    )


def assess_latency(stats: RequestStats, t: Threshold) -> Finding:
    base = {
        "check": "latency",
        "title": "Request latency p95",
        "unit": "ms",
        "threshold": t,
        "source": stats.source,
    }
    if stats.p95_ms is None or not stats.requests:
        return Finding(**base, severity="info", summary=f"no requests in the last {WINDOW}")
    severity = t.grade(stats.p95_ms)
    summary = f"p95 {stats.p95_ms:.0f} ms over {stats.requests:.0f} requests (SLA p95 {t.warning:.0f} ms"
    summary += f", p99 {t.critical:.0f} ms)"
    recs = [
        "Check database query performance (slow queries below, the query-time panel)",
        "Review the caching strategy: hit ratio and what is built on every request",
        "Profile a slow page with ?profile=1 (staff)",
        "Consider scaling up: more gunicorn workers or a bigger machine",
    ]
    return Finding(
        **base, severity=severity, summary=summary, value=round(stats.p95_ms, 1), recommendations=recs
    )


def assess_errors(stats: RequestStats, t: Threshold) -> Finding:
    base = {
        "check": "error_rate",
        "title": "5xx error rate",
        "unit": "%",
        "threshold": t,
        "source": stats.source,
    }
    if stats.error_ratio is None or not stats.requests:
        return Finding(**base, severity="info", summary=f"no requests in the last {WINDOW}")
    percent = stats.error_ratio * 100
    summary = f"{percent:.2f}% of {stats.requests:.0f} requests answered 5xx (SLA {t.warning}%)"
    recs = [
        "Check the application logs for errors (filter level=ERROR; request_id links a request to its tasks)",
        "Review error handling of the failing routes",
        "Check external dependencies: database, Redis, Sigma embeds",
    ]
    return Finding(
        **base, severity=t.grade(percent), summary=summary, value=round(percent, 3), recommendations=recs
    )


# --- Database -------------------------------------------------------------------------------------------------


def assess_slow_queries(
    threshold_ms: float, t: Threshold, source: Callable[[float], list] | None = None
) -> Finding:
    base = {"check": "slow_queries", "title": "Slow queries", "threshold": t}
    try:
        found = (source or slow_queries.source())(threshold_ms)
    except slow_queries.Unavailable as exc:
        return Finding(**base, severity="info", summary=str(exc), source="slow query source")
    count = len(found)
    worst = ", ".join(f"{q.mean_ms:.0f} ms x{q.calls}: {q.query[:80]}" for q in found[:3])
    summary = f"{count} distinct statements slower than {threshold_ms:.0f} ms" + (
        f" (worst: {worst})" if worst else ""
    )
    recs = [
        "Review and optimise the slowest queries (EXPLAIN ANALYZE)",
        "Check that an index serves each list query",
        "Consider caching the results of expensive queries",
    ]
    return Finding(
        **base,
        severity=t.grade(count),
        summary=summary,
        value=count,
        recommendations=recs,
        source=settings.MONITORING_SLOW_QUERY_SOURCE,
    )


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


def assess_db_connections(data: DbConnections, t: Threshold) -> Finding:
    base = {"check": "db_connections", "title": "Database connections", "threshold": t}
    if data.vendor != "postgresql":
        return Finding(
            **base,
            severity="info",
            summary=f"{data.vendor}: one local file, no pool or server connections to count",
        )
    severity = t.grade(data.server_total or 0)
    if data.server_max and (data.server_total or 0) >= 0.9 * data.server_max:
        severity = "critical"
    parts = [
        f"server: {data.server_total} connections ({data.server_active} active) of max_connections "
        f"{data.server_max}, SLA {t.critical:.0f}"
    ]
    if data.pool_size is not None:
        parts.append(
            f"this process's pool: {data.pool_in_use} in use, {data.pool_size} open, max {data.pool_max}, "
            f"{data.pool_waiting} waiting"
        )
        if (data.pool_waiting or 0) > 0 and severity == "ok":
            severity = "warning"
    elif settings.DATABASE_POOLER == "pgbouncer":
        parts.append("no pool in this process: PgBouncer pools (DATABASE_POOLER=pgbouncer; SHOW POOLS there)")
    else:
        parts.append("this process has not opened its pool yet")
    recs = [
        "Look for idle-in-transaction sessions and long transactions in pg_stat_activity",
        "Lower DB_POOL_MAX_SIZE x processes below max_connections, or add PgBouncer",
        "Check for connection leaks in tasks and management commands",
    ]
    return Finding(
        **base,
        severity=severity,
        summary="; ".join(parts),
        value=data.server_total,
        recommendations=recs,
        source="pg_stat_activity and the psycopg pool",
    )


def assess_replicas(states: list[ReplicaState], usable: dict[str, bool], t: Threshold) -> Finding:
    """Each read replica's lag against REPLICA_MAX_LAG_SECONDS, and whether reads may go to it. A replica out of
    the rotation is a warning, never worse: its reads go to the primary (the latency check shows the cost)."""
    base = {
        "check": "replicas",
        "title": "Read replicas",
        "unit": "s",
        "threshold": t,
        "source": "this process's measurements (pg_last_wal_replay_lsn, pg_last_xact_replay_timestamp)",
    }
    if not states:
        return Finding(
            **base,
            severity="info",
            summary="none configured (DATABASE_REPLICA_URLS): the primary takes every read",
        )
    parts, lags = [], []
    for state in states:
        note = "" if usable.get(state.alias) else ", out of the rotation: its reads go to the primary"
        parts.append(f"{state.alias} {state.describe()}{note}")
        if state.measured_at:
            lags.append(state.lag())
    out = [state.alias for state in states if not usable.get(state.alias)]
    summary = "; ".join(parts) + f" (bound {t.warning:g} s)"
    if len(out) == len(states):
        summary += "; no replica is usable: the primary takes every read"
    return Finding(
        **base,
        severity="warning" if out else "ok",
        summary=summary,
        value=round(max(lags), 2) if lags else None,
        recommendations=[
            "Check replication on the primary (pg_stat_replication: state, replay_lag) and the replica's log",
            "Look for long queries or a full disk on the replica, or WAL the network cannot carry",
            "A replica that will not catch up: rebuild it (pg_basebackup -R) and restart it",
        ],
    )


# --- Host ---------------------------------------------------------------------------------------------------


def assess_memory(percent: float, rss_bytes: int, t: Threshold) -> Finding:
    return Finding(
        check="memory",
        title="Memory",
        severity=t.grade(percent),
        summary=f"{percent:.0f}% of the machine's memory in use (SLA {t.warning:.0f}%); this process "
        f"{rss_bytes / 2**20:.0f} MiB resident",
        value=round(percent, 1),
        unit="%",
        threshold=t,
        recommendations=[
            "Check for memory leaks: RSS growing across requests (gunicorn max_requests recycles workers)",
            "Review large querysets loaded whole; use iterator() or pagination",
            "Consider more memory or fewer workers",
        ],
        source="psutil",
    )


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
            value = _prometheus_scalar(settings.PROMETHEUS_URL, prometheus_queries()["cpu_percent"], 2.0)
        except PrometheusError as exc:
            logger.warning("diagnosis: Prometheus did not answer the CPU query: %s", exc)
        else:
            if value is not None:
                return CpuReading(value, f"node-exporter via Prometheus, busiest host, last {WINDOW}", load)
    percent = psutil.cpu_percent(interval=CPU_INTERVAL_S)
    return CpuReading(percent, f"psutil, this machine, over {CPU_INTERVAL_S:g} s", load)


def assess_cpu(percent: float, t: Threshold, source: str = "psutil", load_1m: float | None = None) -> Finding:
    cores = psutil.cpu_count() or 1
    summary = f"{percent:.0f}% busy (SLA {t.warning:.0f}%)"
    if load_1m is not None:
        summary += f"; load average {load_1m:.2f} over 1 minute on {cores} cores (not graded)"
    return Finding(
        check="cpu",
        title="CPU",
        severity=t.grade(percent),
        summary=summary,
        value=round(percent, 1),
        unit="%",
        threshold=t,
        recommendations=["Profile the busiest pages (?profile=1)", "Move heavy work to Celery", "Scale out"],
        source=source,
    )


def assess_disk(percent: float, path: str, t: Threshold) -> Finding:
    return Finding(
        check="disk",
        title="Disk",
        severity=t.grade(percent),
        summary=f"{percent:.0f}% used where media lives ({path}) (SLA {t.warning:.0f}%)",
        value=round(percent, 1),
        unit="%",
        threshold=t,
        recommendations=["Remove orphaned thumbnails and old logs", "Grow the volume"],
        source="psutil",
    )


# --- Cache ----------------------------------------------------------------------------------------------------


@dataclass
class CacheState:
    backend: str
    reachable: bool
    hits: float | None
    misses: float | None
    source: str
    error: str = ""
    missing: str = ""  # no hit ratio to be had here: why


def _cache_lookups(result: str) -> str:
    matcher = f'result="{result}"'
    return f"sum(increase(sigma_cache_requests_total{_web(matcher)}[{WINDOW}]))"


def cache_state() -> CacheState:
    """Reachability by PING (or a round trip), and the hit ratio of the project's own cache lookups
    (sigma_cache_requests_total of the web processes): site-wide over the last 5 minutes from Prometheus when
    PROMETHEUS_URL is set, otherwise the web processes' merged multiprocess metrics since they started
    (monitoring.web_metrics). Never Redis INFO: that counts the whole server, the Celery broker included."""
    from sigma_playground.health import check_cache

    result = check_cache()
    client = getattr(cache, "client", None)
    is_redis = client is not None and hasattr(client, "get_client")
    backend = "redis" if is_redis else type(caches["default"]).__name__
    if not result.ok:
        return CacheState(backend, False, None, None, "PING", error=result.detail)
    note = ""
    if settings.PROMETHEUS_URL:
        try:
            hits = _prometheus_scalar(settings.PROMETHEUS_URL, _cache_lookups("hit"), 2.0)
            misses = _prometheus_scalar(settings.PROMETHEUS_URL, _cache_lookups("miss"), 2.0)
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


def assess_cache(state: CacheState, t: Threshold, min_lookups: int) -> Finding:
    base = {"check": "cache", "title": "Cache", "threshold": t, "source": state.source}
    if not state.reachable:
        return Finding(
            **base,
            severity="critical",
            summary=f"{state.backend} unreachable ({state.error}): pages are built from the database and "
            "the Celery broker is down",
            recommendations=[
                "Check the Redis server: process, memory (maxmemory), network",
                "Watch database load while the cache is down",
            ],
        )
    if state.missing:
        return Finding(
            **base, severity="info", summary=f"{state.backend} reachable; hit ratio unknown: {state.missing}"
        )
    lookups = (state.hits or 0) + (state.misses or 0)
    if lookups < min_lookups:
        return Finding(
            **base,
            severity="ok",
            summary=f"{state.backend} reachable; too few lookups ({lookups:.0f}) for a hit ratio",
        )
    ratio = (state.hits or 0) / lookups
    return Finding(
        **base,
        severity=t.grade(ratio),
        summary=f"{state.backend} reachable; hit ratio {ratio:.0%} over {lookups:.0f} lookups "
        f"(minimum {t.warning:.0%})",
        value=round(ratio, 3),
        recommendations=[
            "Check for a flush or eviction storm (Redis evicted_keys, maxmemory)",
            "Check that invalidation isn't clearing too much",
            "Review cache timeouts",
        ],
    )


# --- Celery ---------------------------------------------------------------------------------------------------


def _broker_is_memory() -> bool:
    return settings.CELERY_BROKER_URL.startswith("memory://")


def assess_queue(lengths: dict[str, int], up: bool, t: Threshold, in_memory: bool) -> Finding:
    base = {"check": "celery_queue", "title": "Celery queue", "threshold": t, "source": "broker"}
    if in_memory:
        return Finding(
            **base, severity="info", summary="in-memory broker: tasks run in-process, nothing queues"
        )
    if not up:
        return Finding(
            **base,
            severity="critical",
            summary="the broker did not answer: tasks cannot be queued",
            recommendations=["Check Redis (the broker is its database 1)", "Check CELERY_BROKER_URL"],
        )
    longest = max(lengths.values(), default=0)
    detail = ", ".join(f"{name}: {n}" for name, n in sorted(lengths.items())) or "no queues"
    return Finding(
        **base,
        severity=t.grade(longest),
        summary=f"{longest} messages waiting ({detail}); backlog threshold {t.warning:.0f}",
        value=longest,
        recommendations=[
            "Check that workers are running and consuming (celery inspect active)",
            "Add worker concurrency or workers",
            "Look for a task that got slow (sigma_celery_task_duration_seconds)",
        ],
    )


def heartbeat_age_s(now: float | None = None) -> float | None:
    from monitoring.tasks import HEARTBEAT_CACHE_KEY

    stamp = cache.get(HEARTBEAT_CACHE_KEY)
    if stamp is None:
        return None
    return max(0.0, (time.time() if now is None else now) - float(stamp))


def assess_heartbeat(age_s: float | None, t: Threshold, in_memory: bool) -> Finding:
    base = {"check": "beat_heartbeat", "title": "Celery beat heartbeat", "unit": "s", "threshold": t}
    recs = [
        "Check that celery beat is running (make beat) and that exactly one instance runs",
        "Check that a worker consumes the default queue",
        "Check the periodic task 'monitoring-beat-heartbeat' in admin",
    ]
    if age_s is None:
        if in_memory:
            return Finding(
                **base, severity="info", summary="in-memory broker: no beat scheduler in this mode"
            )
        return Finding(
            **base,
            severity="warning",
            summary="no heartbeat recorded (beat or worker not running?)",
            recommendations=recs,
        )
    return Finding(
        **base,
        severity=t.grade(age_s),
        summary=f"last heartbeat {age_s:.0f} s ago (expected every 60 s; stale after {t.warning:.0f} s)",
        value=round(age_s),
        recommendations=recs,
        source="cache",
    )


# --- All together ---------------------------------------------------------------------------------------------


def assess_durable_redis(warnings: list[str], is_redis: bool) -> Finding:
    """The durable Redis (broker, view buffers, generation keys, beat lock) must not evict, nor fill up."""
    base = {"check": "durable_redis", "title": "Durable Redis", "source": "Redis INFO memory"}
    if not is_redis:
        return Finding(**base, severity="info", summary="no Redis: embedded defaults")
    if warnings:
        return Finding(
            **base,
            severity="warning",
            summary="; ".join(warnings),
            recommendations=[
                "Give the durable Redis maxmemory-policy noeviction and appendonly everysec "
                "(docs/operations.md, Redis)",
                "Raise its maxmemory, or find what fills it (redis-cli --bigkeys)",
            ],
        )
    return Finding(**base, severity="ok", summary="noeviction, memory below its limit")


def _safely(check: str, title: str, run: Callable[[], Finding]) -> Finding:
    try:
        return run()
    except Exception as exc:
        logger.warning("diagnosis: check %s failed", check, exc_info=True)
        return Finding(
            check=check,
            title=title,
            severity="warning",
            summary=f"could not be measured: {type(exc).__name__}",
            recommendations=["See the application log for the error"],
        )


def diagnose() -> Report:
    t = thresholds()
    ops = settings.MONITORING_THRESHOLDS
    stats_holder: dict[str, RequestStats] = {}

    def stats() -> RequestStats:
        if "s" not in stats_holder:
            stats_holder["s"] = request_stats()
        return stats_holder["s"]

    def memory() -> Finding:
        return assess_memory(
            psutil.virtual_memory().percent, psutil.Process().memory_info().rss, t["memory_percent"]
        )

    def disk() -> Finding:
        path = str(settings.MEDIA_ROOT if os.path.exists(settings.MEDIA_ROOT) else settings.BASE_DIR)
        return assess_disk(psutil.disk_usage(path).percent, path, t["disk_percent"])

    def cpu() -> Finding:
        reading = cpu_utilisation()
        return assess_cpu(reading.percent, t["cpu_percent"], reading.source, reading.load_1m)

    def queue() -> Finding:
        if _broker_is_memory():
            return assess_queue({}, True, t["queue_length"], in_memory=True)
        lengths, up = queues.queue_lengths()
        return assess_queue(lengths, up, t["queue_length"], in_memory=False)

    def replicas() -> Finding:
        states = REPLICAS.refresh(max_age=2 * settings.REPLICA_CHECK_SECONDS) if REPLICAS.aliases() else []
        usable = {state.alias: REPLICAS.usable(state.alias) for state in states}
        return assess_replicas(states, usable, t["replica_lag_s"])

    def durable_redis() -> Finding:
        from sigma_playground.caching import service
        from sigma_playground.health import durable_redis_warnings

        return assess_durable_redis(durable_redis_warnings(), service.durable().is_redis)

    checks: list[tuple[str, str, Callable[[], Finding]]] = [
        ("latency", "Request latency p95", lambda: assess_latency(stats(), t["latency_p95_ms"])),
        ("error_rate", "5xx error rate", lambda: assess_errors(stats(), t["error_rate_percent"])),
        (
            "slow_queries",
            "Slow queries",
            lambda: assess_slow_queries(ops["slow_query_ms"], t["slow_queries"]),
        ),
        (
            "db_connections",
            "Database connections",
            lambda: assess_db_connections(db_connections(), t["db_connections"]),
        ),
        ("replicas", "Read replicas", replicas),
        ("memory", "Memory", memory),
        ("cpu", "CPU", cpu),
        ("disk", "Disk", disk),
        (
            "cache",
            "Cache",
            lambda: assess_cache(cache_state(), t["cache_hit_ratio"], ops["cache_min_lookups"]),
        ),
        ("celery_queue", "Celery queue", queue),
        ("durable_redis", "Durable Redis", durable_redis),
        (
            "beat_heartbeat",
            "Celery beat heartbeat",
            lambda: assess_heartbeat(heartbeat_age_s(), t["heartbeat_age_s"], _broker_is_memory()),
        ),
    ]
    if settings.PROMETHEUS_URL:
        checks.append(("prometheus", "Prometheus", lambda: assess_prometheus(stats())))
    findings = [_safely(check, title, run) for check, title, run in checks]
    return Report(findings=findings, generated_at=datetime.now(tz=UTC))
