"""Every database query, timed.

An execute wrapper installed on each connection (``connection_created``) observes each statement into the
``sigma_db_query_duration_seconds`` histogram, labelled by statement kind and main table: bounded labels,
never SQL text. A statement slower than ``DB_SLOW_QUERY_SECONDS`` is logged with its SQL and with its
parameter values redacted (they can hold emails, search terms, tokens), and added to the slow-statement
aggregate (monitoring.SlowQuery: count, total, mean, max per normalised fingerprint) that staff read in
admin, through the writer monitoring hands to :func:`install`. The aggregate is written after the request or
task, outside whatever transaction the slow statement ran in (it may have been aborted by the very timeout
that made it slow).
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings
from django.db.backends.signals import connection_created

from sigma_playground.telemetry import metrics

logger = logging.getLogger("sigma_playground.db.slow")

STATEMENTS = {"select", "insert", "update", "delete", "other"}

QUERY_SECONDS = metrics.histogram(
    "sigma_db_query_duration_seconds",
    "Time spent executing database statements, by statement kind and main table.",
    labels={"statement": STATEMENTS, "table": metrics.model_tables},
    buckets=metrics.DB_BUCKETS,
)
SLOW_QUERIES = metrics.counter(
    "sigma_db_slow_queries_total",
    "Statements slower than DB_SLOW_QUERY_SECONDS.",
    labels={"statement": STATEMENTS, "table": metrics.model_tables},
)

_TABLE_AFTER = {
    "select": re.compile(r"\bFROM\s+\"?([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE),
    "delete": re.compile(r"\bFROM\s+\"?([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE),
    "insert": re.compile(r"\bINTO\s+\"?([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE),
    "update": re.compile(r"^\s*UPDATE\s+\"?([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE),
}
_NORMALISE = [
    (re.compile(r"'(?:[^']|'')*'"), "?"),  # string literals
    (re.compile(r"\b\d+(?:\.\d+)?\b"), "?"),  # numbers
    (re.compile(r"%s"), "?"),  # placeholders
    (re.compile(r"\(\s*\?(?:\s*,\s*\?)*\s*\)"), "(?)"),  # IN lists of any length
    (re.compile(r"(?:\(\?\)\s*,\s*)+\(\?\)"), "(?)"),  # multi-row VALUES
    (re.compile(r"\s+"), " "),
]


def classify(sql: str) -> tuple[str, str]:
    """(statement kind, main table) of a SQL string, for metric labels."""
    head = sql.lstrip()[:10].lower()
    statement = next(
        (kind for kind in ("select", "insert", "update", "delete") if head.startswith(kind)), "other"
    )
    if statement == "other" and head.startswith("with"):
        statement = "select"
    pattern = _TABLE_AFTER.get(statement)
    match = pattern.search(sql) if pattern else None
    return statement, (match.group(1).lower() if match else "other")


def normalise(sql: str) -> str:
    text = sql
    for pattern, replacement in _NORMALISE:
        text = pattern.sub(replacement, text)
    return text.strip()[:4000]


def fingerprint(sql: str) -> str:
    return hashlib.sha256(normalise(sql).encode()).hexdigest()[:32]


@dataclass
class SlowStatement:
    fingerprint: str
    statement: str
    table: str
    sql: str
    seconds: float


class SlowStatementWriter(Protocol):
    def __call__(self, *, fingerprint: str, statement: str, table: str, sql: str, seconds: float) -> None: ...


_pending = threading.local()
_record_slow: SlowStatementWriter | None = None  # set by install()


def _queue(item: SlowStatement) -> None:
    if not hasattr(_pending, "items"):
        _pending.items = []
    if len(_pending.items) < 100:
        _pending.items.append(item)


def flush_slow_statements(**_: Any) -> int:
    """Add this thread's queued slow statements to the aggregate; returns how many were written."""
    items: list[SlowStatement] = getattr(_pending, "items", [])
    if not items or getattr(_pending, "flushing", False):
        return 0
    _pending.items = []
    if _record_slow is None:
        return 0
    _pending.flushing = True
    try:
        for item in items:
            _record_slow(
                fingerprint=item.fingerprint,
                statement=item.statement,
                table=item.table,
                sql=item.sql,
                seconds=item.seconds,
            )
    except Exception:
        logger.warning("could not record %d slow statements", len(items), exc_info=True)
    finally:
        _pending.flushing = False
    return len(items)


def redacted(params: Any) -> str:
    if params is None:
        return "none"
    try:
        count = len(params)
    except TypeError:
        return "[redacted]"
    return f"[{count} redacted]"


def timing_wrapper(execute: Callable, sql: str, params: Any, many: bool, context: dict) -> Any:
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        elapsed = time.perf_counter() - started
        statement, table = classify(sql)
        QUERY_SECONDS.observe(elapsed, statement=statement, table=table)
        if elapsed >= settings.DB_SLOW_QUERY_SECONDS and not getattr(_pending, "flushing", False):
            SLOW_QUERIES.inc(statement=statement, table=table)
            fp = fingerprint(sql)
            logger.warning(
                "slow query %.3fs fingerprint=%s statement=%s table=%s sql=%s params=%s",
                elapsed, fp, statement, table, sql[:2000], redacted(params),
            )  # fmt: skip
            _queue(SlowStatement(fp, statement, table, normalise(sql), elapsed))


def install_on(connection: Any, **_: Any) -> None:
    if timing_wrapper not in connection.execute_wrappers:
        connection.execute_wrappers.append(timing_wrapper)


def install(*, record_slow: SlowStatementWriter) -> None:
    """Called once from MonitoringConfig.ready(): time every connection, and hand the slow statements to
    ``record_slow`` after each request and task."""
    from celery.signals import task_postrun
    from django.core.signals import request_finished
    from django.db import connections

    global _record_slow
    _record_slow = record_slow
    connection_created.connect(install_on, dispatch_uid="sigma_db_timing")
    for conn in connections.all(initialized_only=True):
        install_on(conn)
    request_finished.connect(flush_slow_statements, dispatch_uid="sigma_db_slow_flush")
    task_postrun.connect(flush_slow_statements, dispatch_uid="sigma_db_slow_flush_task", weak=False)


def pg_stat_statements_top(limit: int = 20) -> list[dict[str, Any]] | None:
    """The server's own view of the costliest statements, when the pg_stat_statements extension is
    installed in this database (it needs shared_preload_libraries); None when it is not available."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'")
        if cursor.fetchone() is None:
            return None
        try:
            cursor.execute(
                "SELECT query, calls, total_exec_time, mean_exec_time, max_exec_time, rows "
                "FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "ORDER BY total_exec_time DESC LIMIT %s",
                [limit],
            )
        except Exception:  # loaded in the catalog but not preloaded: the view raises
            logger.info("pg_stat_statements is installed but not loaded", exc_info=True)
            return None
        columns = [c.name for c in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
