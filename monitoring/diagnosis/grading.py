"""The health diagnosis's verdicts: each reading graded against :func:`monitoring.sla.thresholds` (or a bound of
its own), with a summary and what to do about it. Overall health is the worst grade: ``critical`` if any check
is critical, ``warning`` if any warns, otherwise ``healthy`` (``info`` lines say what could not be measured and
why; they never count against health).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime

import psutil
from django.conf import settings

from monitoring import slow_queries
from monitoring.diagnosis.readings import WINDOW, CacheState, DbConnections, RequestStats
from monitoring.sla import Threshold
from sigma_playground.replicas.monitor import ReplicaState

RANK = {"ok": 0, "info": 0, "warning": 1, "critical": 2}


STATUS_BY_RANK = {0: "healthy", 1: "warning", 2: "critical"}


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


@dataclass(frozen=True)
class FindingBase:
    """What every finding of one check shares, whatever its outcome; ``finding`` adds the outcome."""

    check: str
    title: str
    unit: str = ""
    threshold: Threshold | None = None
    source: str = ""

    def finding(
        self,
        *,
        severity: str,
        summary: str,
        value: float | None = None,
        recommendations: list[str] | None = None,
        source: str | None = None,
    ) -> Finding:
        return Finding(
            check=self.check,
            title=self.title,
            severity=severity,
            summary=summary,
            value=value,
            unit=self.unit,
            threshold=self.threshold,
            recommendations=recommendations or [],
            source=self.source if source is None else source,
        )


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


def assess_prometheus(stats: RequestStats) -> Finding:
    """Only when PROMETHEUS_URL is set: a Prometheus that does not answer is a warning (the site-wide
    numbers above fell back to one process's), not an information line."""
    base = FindingBase(check="prometheus", title="Prometheus", source=settings.PROMETHEUS_URL)
    if not stats.prometheus_error:
        return base.finding(severity="ok", summary="answered the site-wide queries")
    return base.finding(
        severity="warning",
        summary=f"PROMETHEUS_URL did not answer ({stats.prometheus_error}): request latency and errors "
        "are this process's only",
        recommendations=[
            "Check that Prometheus is running and reachable from this host (PROMETHEUS_URL)",
            "Check Prometheus' own targets page: the web job should be up",
        ],
    )


def assess_latency(stats: RequestStats, t: Threshold) -> Finding:
    base = FindingBase(
        check="latency",
        title="Request latency p95",
        unit="ms",
        threshold=t,
        source=stats.source,
    )
    if stats.p95_ms is None or not stats.requests:
        return base.finding(severity="info", summary=f"no requests in the last {WINDOW}")
    severity = t.grade(stats.p95_ms)
    summary = f"p95 {stats.p95_ms:.0f} ms over {stats.requests:.0f} requests (SLA p95 {t.warning:.0f} ms"
    summary += f", p99 {t.critical:.0f} ms)"
    recs = [
        "Check database query performance (slow queries below, the query-time panel)",
        "Review the caching strategy: hit ratio and what is built on every request",
        "Profile a slow page with ?profile=1 (staff)",
        "Consider scaling up: more gunicorn workers or a bigger machine",
    ]
    return base.finding(
        severity=severity, summary=summary, value=round(stats.p95_ms, 1), recommendations=recs
    )


def assess_errors(stats: RequestStats, t: Threshold) -> Finding:
    base = FindingBase(
        check="error_rate",
        title="5xx error rate",
        unit="%",
        threshold=t,
        source=stats.source,
    )
    if stats.error_ratio is None or not stats.requests:
        return base.finding(severity="info", summary=f"no requests in the last {WINDOW}")
    percent = stats.error_ratio * 100
    summary = f"{percent:.2f}% of {stats.requests:.0f} requests answered 5xx (SLA {t.warning}%)"
    recs = [
        "Check the application logs for errors (filter level=ERROR; request_id links a request to its tasks)",
        "Review error handling of the failing routes",
        "Check external dependencies: database, Redis, Sigma embeds",
    ]
    return base.finding(
        severity=t.grade(percent), summary=summary, value=round(percent, 3), recommendations=recs
    )


def assess_slow_queries(
    threshold_ms: float, t: Threshold, source: Callable[[float], list] | None = None
) -> Finding:
    base = FindingBase(check="slow_queries", title="Slow queries", threshold=t)
    try:
        found = (source or slow_queries.source())(threshold_ms)
    except slow_queries.Unavailable as exc:
        return base.finding(severity="info", summary=str(exc), source="slow query source")
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
    return base.finding(
        severity=t.grade(count),
        summary=summary,
        value=count,
        recommendations=recs,
        source=settings.MONITORING_SLOW_QUERY_SOURCE,
    )


def assess_db_connections(data: DbConnections, t: Threshold) -> Finding:
    base = FindingBase(check="db_connections", title="Database connections", threshold=t)
    if data.vendor != "postgresql":
        return base.finding(
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
    return base.finding(
        severity=severity,
        summary="; ".join(parts),
        value=data.server_total,
        recommendations=recs,
        source="pg_stat_activity and the psycopg pool",
    )


def assess_replicas(states: list[ReplicaState], usable: dict[str, bool], t: Threshold) -> Finding:
    """Each read replica's lag against REPLICA_MAX_LAG_SECONDS, and whether reads may go to it. A replica out of
    the rotation is a warning, never worse: its reads go to the primary (the latency check shows the cost)."""
    base = FindingBase(
        check="replicas",
        title="Read replicas",
        unit="s",
        threshold=t,
        source="this process's measurements (pg_last_wal_replay_lsn, pg_last_xact_replay_timestamp)",
    )
    if not states:
        return base.finding(
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
    return base.finding(
        severity="warning" if out else "ok",
        summary=summary,
        value=round(max(lags), 2) if lags else None,
        recommendations=[
            "Check replication on the primary (pg_stat_replication: state, replay_lag) and the replica's log",
            "Look for long queries or a full disk on the replica, or WAL the network cannot carry",
            "A replica that will not catch up: rebuild it (pg_basebackup -R) and restart it",
        ],
    )


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


def assess_cache(state: CacheState, t: Threshold, min_lookups: float) -> Finding:
    base = FindingBase(check="cache", title="Cache", threshold=t, source=state.source)
    if not state.reachable:
        return base.finding(
            severity="critical",
            summary=f"{state.backend} unreachable ({state.error}): pages are built from the database and "
            "the Celery broker is down",
            recommendations=[
                "Check the Redis server: process, memory (maxmemory), network",
                "Watch database load while the cache is down",
            ],
        )
    if state.missing:
        return base.finding(
            severity="info", summary=f"{state.backend} reachable; hit ratio unknown: {state.missing}"
        )
    lookups = (state.hits or 0) + (state.misses or 0)
    if lookups < min_lookups:
        return base.finding(
            severity="ok",
            summary=f"{state.backend} reachable; too few lookups ({lookups:.0f}) for a hit ratio",
        )
    ratio = (state.hits or 0) / lookups
    return base.finding(
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


def assess_queue(lengths: dict[str, int], up: bool, t: Threshold, in_memory: bool) -> Finding:
    base = FindingBase(check="celery_queue", title="Celery queue", threshold=t, source="broker")
    if in_memory:
        return base.finding(severity="info", summary="in-memory broker: tasks run in-process, nothing queues")
    if not up:
        return base.finding(
            severity="critical",
            summary="the broker did not answer: tasks cannot be queued",
            recommendations=["Check Redis (the broker is its database 1)", "Check CELERY_BROKER_URL"],
        )
    longest = max(lengths.values(), default=0)
    detail = ", ".join(f"{name}: {n}" for name, n in sorted(lengths.items())) or "no queues"
    return base.finding(
        severity=t.grade(longest),
        summary=f"{longest} messages waiting ({detail}); backlog threshold {t.warning:.0f}",
        value=longest,
        recommendations=[
            "Check that workers are running and consuming (celery inspect active)",
            "Add worker concurrency or workers",
            "Look for a task that got slow (sigma_celery_task_duration_seconds)",
        ],
    )


def assess_heartbeat(age_s: float | None, t: Threshold, in_memory: bool) -> Finding:
    base = FindingBase(check="beat_heartbeat", title="Celery beat heartbeat", unit="s", threshold=t)
    recs = [
        "Check that celery beat is running (make beat) and that exactly one instance runs",
        "Check that a worker consumes the default queue",
        "Check the periodic task 'monitoring-beat-heartbeat' in admin",
    ]
    if age_s is None:
        if in_memory:
            return base.finding(severity="info", summary="in-memory broker: no beat scheduler in this mode")
        return base.finding(
            severity="warning",
            summary="no heartbeat recorded (beat or worker not running?)",
            recommendations=recs,
        )
    return base.finding(
        severity=t.grade(age_s),
        summary=f"last heartbeat {age_s:.0f} s ago (expected every 60 s; stale after {t.warning:.0f} s)",
        value=round(age_s),
        recommendations=recs,
        source="cache",
    )


def assess_durable_redis(warnings: list[str], is_redis: bool) -> Finding:
    """The durable Redis (broker, view buffers, generation keys, beat lock) must not evict, nor fill up."""
    base = FindingBase(check="durable_redis", title="Durable Redis", source="Redis INFO memory")
    if not is_redis:
        return base.finding(severity="info", summary="no Redis: embedded defaults")
    if warnings:
        return base.finding(
            severity="warning",
            summary="; ".join(warnings),
            recommendations=[
                "Give the durable Redis maxmemory-policy noeviction and appendonly everysec "
                "(docs/operations.md, Redis)",
                "Raise its maxmemory, or find what fills it (redis-cli --bigkeys)",
            ],
        )
    return base.finding(severity="ok", summary="noeviction, memory below its limit")
