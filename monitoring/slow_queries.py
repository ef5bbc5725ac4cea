"""Slow queries for the health diagnosis.

The source is a callable named by ``settings.MONITORING_SLOW_QUERY_SOURCE`` taking the threshold in ms and
returning ``list[SlowQuery]``, or raising :class:`Unavailable` to say why it has nothing to report. The default
reads the slow-statement log that the query instrumentation keeps (``monitoring.SlowQuery``, one row per
normalised statement); ``pg_stat_statements`` reads PostgreSQL's extension when it is installed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class SlowQuery:
    query: str
    calls: int
    mean_ms: float
    max_ms: float | None = None


class Unavailable(Exception):
    """The source has no data to give, and the message says why (shown as an information line)."""


SlowQuerySource = Callable[[float], list[SlowQuery]]


def source() -> SlowQuerySource:
    return import_string(settings.MONITORING_SLOW_QUERY_SOURCE)


def slow_query_log(threshold_ms: float, limit: int = 20) -> list[SlowQuery]:
    """Distinct statements that ran slower than ``threshold_ms`` within the last window, slowest first."""
    from datetime import timedelta

    from django.utils import timezone

    from monitoring.models import SlowQuery as Row

    since = timezone.now() - timedelta(seconds=settings.MONITORING_THRESHOLDS["slow_queries_window_s"])
    rows = Row.objects.filter(last_seen__gte=since, max_seconds__gt=threshold_ms / 1000).order_by(
        "-max_seconds"
    )
    return [
        SlowQuery(
            query=row.sql[:500],
            calls=row.calls,
            mean_ms=row.mean_seconds * 1000,
            max_ms=row.max_seconds * 1000,
        )
        for row in rows[:limit]
    ]


def pg_stat_statements(threshold_ms: float, limit: int = 20) -> list[SlowQuery]:
    if connection.vendor != "postgresql":
        raise Unavailable(
            f"not yet available on {connection.vendor}: slow queries come from PostgreSQL's "
            "pg_stat_statements or the database issue's slow-query log"
        )
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'")
        if cursor.fetchone() is None:
            raise Unavailable("not yet available: the pg_stat_statements extension is not installed")
    try:
        # A savepoint, so a failed read doesn't abort the caller's transaction.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT query, calls, mean_exec_time, max_exec_time FROM pg_stat_statements "
                "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND mean_exec_time > %s ORDER BY mean_exec_time DESC LIMIT %s",
                [threshold_ms, limit],
            )
            rows = cursor.fetchall()
    except Exception as exc:  # installed but not in shared_preload_libraries
        raise Unavailable(
            f"not yet available: pg_stat_statements cannot be read ({type(exc).__name__})"
        ) from exc
    return [SlowQuery(query=q[:500], calls=int(c), mean_ms=float(m), max_ms=float(x)) for q, c, m, x in rows]
