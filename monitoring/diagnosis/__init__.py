"""The health diagnosis: the design's troubleshooting service, measured for real and graded by the SLA.

Each check measures one thing (:mod:`~monitoring.diagnosis.readings`), grades it with
:func:`monitoring.sla.thresholds` and says what to do about it (:mod:`~monitoring.diagnosis.grading`). A check
that fails to measure is a warning naming the error, never an exception: the page, the JSON and
``manage.py diagnose`` always answer.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime

import psutil
from django.conf import settings

from monitoring import queues
from monitoring.diagnosis import readings
from monitoring.diagnosis.grading import (
    Finding,
    Report,
    assess_cache,
    assess_cpu,
    assess_db_connections,
    assess_disk,
    assess_durable_redis,
    assess_errors,
    assess_heartbeat,
    assess_latency,
    assess_memory,
    assess_prometheus,
    assess_queue,
    assess_replicas,
    assess_slow_queries,
)
from monitoring.sla import thresholds
from sigma_playground.replicas.monitor import MONITOR as REPLICAS

logger = logging.getLogger(__name__)


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
    stats_holder: dict[str, readings.RequestStats] = {}

    def stats() -> readings.RequestStats:
        if "s" not in stats_holder:
            stats_holder["s"] = readings.request_stats()
        return stats_holder["s"]

    def memory() -> Finding:
        return assess_memory(
            psutil.virtual_memory().percent, psutil.Process().memory_info().rss, t["memory_percent"]
        )

    def disk() -> Finding:
        path = str(settings.MEDIA_ROOT if os.path.exists(settings.MEDIA_ROOT) else settings.BASE_DIR)
        return assess_disk(psutil.disk_usage(path).percent, path, t["disk_percent"])

    def cpu() -> Finding:
        reading = readings.cpu_utilisation()
        return assess_cpu(reading.percent, t["cpu_percent"], reading.source, reading.load_1m)

    def queue() -> Finding:
        if readings.broker_is_memory():
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
            lambda: assess_db_connections(readings.db_connections(), t["db_connections"]),
        ),
        ("replicas", "Read replicas", replicas),
        ("memory", "Memory", memory),
        ("cpu", "CPU", cpu),
        ("disk", "Disk", disk),
        (
            "cache",
            "Cache",
            lambda: assess_cache(readings.cache_state(), t["cache_hit_ratio"], ops["cache_min_lookups"]),
        ),
        ("celery_queue", "Celery queue", queue),
        ("durable_redis", "Durable Redis", durable_redis),
        (
            "beat_heartbeat",
            "Celery beat heartbeat",
            lambda: assess_heartbeat(
                readings.heartbeat_age_s(), t["heartbeat_age_s"], readings.broker_is_memory()
            ),
        ),
    ]
    if settings.PROMETHEUS_URL:
        checks.append(("prometheus", "Prometheus", lambda: assess_prometheus(stats())))
    findings = [_safely(check, title, run) for check, title, run in checks]
    return Report(findings=findings, generated_at=datetime.now(tz=UTC))
