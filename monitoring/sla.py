"""The SLA (``settings.SLA``) as typed data, and every threshold derived from it.

The design's alert rules use levels above its SLA targets (CPU alert at 80% for a 70% target, memory at 85%
for 80%, database connections at 80 of 100, 5xx at 1% for a 0.1% error budget). Rather than copy those
numbers, they are derived here from the SLA by the rules below, which reproduce the design's numbers; the
alert rules in deploy/prometheus/alerts.yml are checked against :func:`alert_thresholds` by a test, and the
health diagnosis grades with :func:`thresholds`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

HOURS_PER_YEAR = 8760
# A 5xx ratio at ten times the long-run error budget burns a month's budget in three days: page someone.
ERROR_BUDGET_BURN_RATE = 10
CPU_ALERT_POINTS_ABOVE_TARGET = 10
MEMORY_ALERT_POINTS_ABOVE_TARGET = 5
DISK_CRITICAL_POINTS_ABOVE_TARGET = 10
DB_CONNECTIONS_WARNING_FRACTION = 0.8


@dataclass(frozen=True)
class Percentiles:
    p50: float
    p95: float
    p99: float


@dataclass(frozen=True)
class SLA:
    api_ms: Percentiles
    page_load_ms: Percentiles
    requests_per_second: float
    concurrent_users: int
    database_connections: int
    uptime_percent: float
    max_downtime_hours_per_year: float
    error_rate_percent: float
    cpu_percent: float
    memory_percent: float
    disk_percent: float
    lcp_p75_ms: float
    inp_p75_ms: float
    cls_p75: float

    @classmethod
    def from_mapping(cls, data: Mapping) -> SLA:
        try:
            rt, tp, av = data["response_time_ms"], data["throughput"], data["availability"]
            ru, wv = data["resource_utilization_percent"], data["web_vitals_p75"]
            sla = cls(
                api_ms=Percentiles(**rt["api"]),
                page_load_ms=Percentiles(**rt["page_load"]),
                requests_per_second=tp["requests_per_second"],
                concurrent_users=tp["concurrent_users"],
                database_connections=tp["database_connections"],
                uptime_percent=av["uptime_percent"],
                max_downtime_hours_per_year=av["max_downtime_hours_per_year"],
                error_rate_percent=av["error_rate_percent"],
                cpu_percent=ru["cpu"],
                memory_percent=ru["memory"],
                disk_percent=ru["disk"],
                lcp_p75_ms=wv["lcp_ms"],
                inp_p75_ms=wv["inp_ms"],
                cls_p75=wv["cls"],
            )
        except (KeyError, TypeError) as exc:
            raise ImproperlyConfigured(f"settings.SLA is incomplete: {exc}") from exc
        sla.check()
        return sla

    def check(self) -> None:
        for name in ("api_ms", "page_load_ms"):
            p = getattr(self, name)
            if not 0 < p.p50 <= p.p95 <= p.p99:
                raise ImproperlyConfigured(f"SLA {name}: percentiles must grow, got {p}")
        for name in ("uptime_percent", "error_rate_percent", "cpu_percent", "memory_percent", "disk_percent"):
            if not 0 < getattr(self, name) <= 100:
                raise ImproperlyConfigured(f"SLA {name} must be a percentage")
        if abs(self.allowed_downtime_hours_per_year - self.max_downtime_hours_per_year) > 0.01:
            raise ImproperlyConfigured(
                f"SLA: {self.uptime_percent}% uptime allows {self.allowed_downtime_hours_per_year:.2f} h of "
                f"downtime a year, not {self.max_downtime_hours_per_year} h"
            )

    @property
    def allowed_downtime_hours_per_year(self) -> float:
        return HOURS_PER_YEAR * (100 - self.uptime_percent) / 100


def current() -> SLA:
    return SLA.from_mapping(settings.SLA)


@dataclass(frozen=True)
class Threshold:
    """Grades a value: above ``warning`` is a warning, above ``critical`` critical (below, for lower-is-worse).

    A value exactly at a threshold is within it, as Prometheus's ``>`` treats it.
    """

    warning: float
    critical: float | None = None
    higher_is_worse: bool = True
    unit: str = ""

    def grade(self, value: float) -> str:
        def beyond(limit: float | None) -> bool:
            if limit is None:
                return False
            return value > limit if self.higher_is_worse else value < limit

        if beyond(self.critical):
            return "critical"
        if beyond(self.warning):
            return "warning"
        return "ok"


def thresholds(sla: SLA | None = None) -> dict[str, Threshold]:
    """What the health diagnosis grades against: warning at the SLA target, critical at the alert level."""
    sla = sla or current()
    ops = settings.MONITORING_THRESHOLDS
    return {
        "latency_p95_ms": Threshold(sla.api_ms.p95, sla.api_ms.p99, unit="ms"),
        "error_rate_percent": Threshold(
            sla.error_rate_percent, sla.error_rate_percent * ERROR_BUDGET_BURN_RATE, unit="%"
        ),
        "cpu_percent": Threshold(sla.cpu_percent, sla.cpu_percent + CPU_ALERT_POINTS_ABOVE_TARGET, unit="%"),
        "memory_percent": Threshold(
            sla.memory_percent, sla.memory_percent + MEMORY_ALERT_POINTS_ABOVE_TARGET, unit="%"
        ),
        "disk_percent": Threshold(
            sla.disk_percent, min(99.0, sla.disk_percent + DISK_CRITICAL_POINTS_ABOVE_TARGET), unit="%"
        ),
        "db_connections": Threshold(
            sla.database_connections * DB_CONNECTIONS_WARNING_FRACTION, sla.database_connections
        ),
        "slow_queries": Threshold(ops["slow_queries_max"]),
        "cache_hit_ratio": Threshold(ops["cache_hit_ratio_min"], higher_is_worse=False),
        "queue_length": Threshold(ops["queue_backlog"], ops["queue_backlog"] * 10),
        "heartbeat_age_s": Threshold(
            ops["beat_heartbeat_max_age_s"], ops["beat_heartbeat_max_age_s"] * 5, unit="s"
        ),
        # Beyond the bound a replica is out of the rotation (its reads go to the primary): a warning.
        "replica_lag_s": Threshold(settings.REPLICA_MAX_LAG_SECONDS, unit="s"),
    }


def alert_thresholds(sla: SLA | None = None) -> dict[str, float]:
    """The number each rule in deploy/prometheus/alerts.yml compares with, in the rule's own unit."""
    sla = sla or current()
    ops = settings.MONITORING_THRESHOLDS
    t = thresholds(sla)

    def critical(name: str) -> float:
        level = t[name].critical
        if level is None:
            raise ValueError(f"the {name} threshold has no critical level for its alert")
        return level

    return {
        "HighResponseTime": sla.api_ms.p95 / 1000,  # seconds
        "HighErrorRate": round(critical("error_rate_percent") / 100, 6),  # a ratio, not a percentage
        "HighCPUUsage": critical("cpu_percent"),
        "HighMemoryUsage": critical("memory_percent"),
        "DiskSpaceHigh": sla.disk_percent,
        "DatabaseConnectionsHigh": t["db_connections"].warning,
        "CacheHitRatioCollapsed": ops["cache_hit_ratio_min"],
        "CeleryBeatHeartbeatMissing": ops["beat_heartbeat_max_age_s"],
        "CeleryQueueBacklogGrowing": ops["queue_backlog"],
        # Any message waiting on a queue that no worker consumes (README "Celery": a worker per queue).
        "CeleryQueueUnconsumed": 0,
        "WebVitalsLCPHigh": sla.lcp_p75_ms / 1000,  # seconds
        # Any failed CDN purge in 10 minutes, with no successful one, for 5 more: purges are retried until
        # they land, so this is an outage of the CDN's API, not a blip (sigma_playground/cdn).
        "CDNPurgeFailing": 0,
        # Read replicas (sigma_playground/replicas): the bound beyond which every process stops reading one.
        "ReplicaLagHigh": settings.REPLICA_MAX_LAG_SECONDS,
        # sigma_db_replica_up below 1 in every process: nobody reads from it.
        "ReplicaUnavailable": 1,
    }


# --- Load-test verdicts --------------------------------------------------------------------------------------


@dataclass
class Verdict:
    passed: bool
    failures: list[str] = field(default_factory=list)
    phases: dict[str, Verdict] = field(default_factory=dict)  # per phase, when judged phase by phase


@dataclass(frozen=True)
class PhaseResult:
    """One phase of a load test, as the load generator measured it (loadtest/report.py).

    ``offered_per_second`` is the arrival rate the generator was asked to produce (arrivals of new visitors,
    an open model); ``achieved_per_second`` the rate of arrivals whose whole flow completed without an error.
    A server that cannot keep up shows as achieved < offered, never as a lower offered rate.
    """

    name: str
    p50_ms: float
    p95_ms: float
    p99_ms: float
    error_rate_percent: float
    offered_per_second: float
    achieved_per_second: float
    requests_per_second: float | None = None  # achieved (completed) requests per second, all routes


# An open-model generator produces arrivals at random (Poisson) moments: over a short phase the count drifts
# from rate x duration by a few percent, and flows still running at the phase's end complete after it.
ACHIEVED_TOLERANCE = 0.05


def load_test_verdict(
    *,
    p50_ms: float = 0.0,
    p95_ms: float = 0.0,
    p99_ms: float = 0.0,
    error_rate_percent: float = 0.0,
    requests_per_second: float | None = None,
    offered_per_second: float | None = None,
    achieved_per_second: float | None = None,
    kind: str = "api",
    sla: SLA | None = None,
    phases: list[PhaseResult] | None = None,
) -> Verdict:
    """Judge a load test's results against the SLA (``kind`` "api" or "page_load" for the latency targets).

    ``requests_per_second`` is the *achieved* request throughput (responses completed per second), compared
    with the SLA's throughput target: only meaningful when the test offered at least that much. With
    ``offered_per_second`` and ``achieved_per_second`` (arrivals), a server that completed fewer flows than
    were offered fails, whatever its latency. With ``phases``, each phase is judged on its own figures and the
    verdict passes only when every phase does (failures are prefixed with the phase's name).
    """
    sla = sla or current()
    if phases is not None:
        verdicts = {
            phase.name: load_test_verdict(
                p50_ms=phase.p50_ms,
                p95_ms=phase.p95_ms,
                p99_ms=phase.p99_ms,
                error_rate_percent=phase.error_rate_percent,
                offered_per_second=phase.offered_per_second,
                achieved_per_second=phase.achieved_per_second,
                kind=kind,
                sla=sla,
            )
            for phase in phases
        }
        failures = [f"{name}: {failure}" for name, v in verdicts.items() for failure in v.failures]
        return Verdict(passed=bool(verdicts) and not failures, failures=failures, phases=verdicts)
    targets: Percentiles = sla.api_ms if kind == "api" else sla.page_load_ms
    failures = [
        f"{name} {value:.0f} ms > {limit:.0f} ms"
        for name, value, limit in (
            ("p50", p50_ms, targets.p50),
            ("p95", p95_ms, targets.p95),
            ("p99", p99_ms, targets.p99),
        )
        if value > limit
    ]
    if error_rate_percent > sla.error_rate_percent:
        failures.append(f"error rate {error_rate_percent:.3f}% > {sla.error_rate_percent}%")
    if requests_per_second is not None and requests_per_second < sla.requests_per_second:
        failures.append(
            f"achieved throughput {requests_per_second:.0f} req/s < {sla.requests_per_second} req/s"
        )
    if (
        offered_per_second is not None
        and achieved_per_second is not None
        and achieved_per_second < offered_per_second * (1 - ACHIEVED_TOLERANCE)
    ):
        failures.append(
            f"achieved {achieved_per_second:.1f} arrivals/s < offered {offered_per_second:.1f} arrivals/s"
        )
    return Verdict(passed=not failures, failures=failures)
