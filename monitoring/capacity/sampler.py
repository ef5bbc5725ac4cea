"""One capacity sample: every resource, read once, cheaply; a source that fails is recorded as missing.

Runs every minute (beat task ``capacity_sample``), so every read is bounded: a few database statements,
one Redis ``INFO``, one broker round trip, and Prometheus queries only when ``PROMETHEUS_URL`` is set.
Rates (CPU busy time, network bytes, the web processes' requests and cache lookups) come from cumulative
counters kept in the sample and the previous sample of the same host, so no reading blocks to measure an
interval. Request and cache numbers are the web processes' (monitoring.web_metrics), never the sampling
process's own.

The machine-level numbers (CPU, memory, disk, network) are those of the machine whose worker ran the task.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from datetime import datetime, timedelta

import psutil
from django.apps import apps
from django.conf import settings
from django.core.cache import cache, caches
from django.db import connection, transaction
from django.utils import timezone
from redis import Redis

from monitoring import queues, web_metrics
from monitoring.diagnosis import readings
from monitoring.models import CapacitySample
from monitoring.web_metrics import WebCounters

logger = logging.getLogger(__name__)

# Counters older than this make no useful rate (the sampler was down): start again from this sample. Closer
# than MIN_RATE_GAP (two runs at once), the difference is noise.
MAX_RATE_GAP = timedelta(minutes=15)
MIN_RATE_GAP = timedelta(seconds=5)
CPU_FALLBACK_INTERVAL_S = 0.1


class Missing(Exception):
    """A source with nothing to read here (not configured, or not applicable): the reason is the note."""


Reader = Callable[[CapacitySample, CapacitySample | None], str]

# The fields each source fills, cleared when it fails half way.
SOURCES: dict[str, tuple[str, ...]] = {
    "cpu": ("cpu_percent",),
    "memory": ("memory_percent", "memory_used_bytes", "memory_total_bytes"),
    "disk": ("disk_percent", "disk_used_bytes", "disk_total_bytes"),
    "network": ("net_in_bytes_per_s", "net_out_bytes_per_s"),
    "db_connections": (
        "db_connections",
        "db_connections_active",
        "db_max_connections",
        "db_pool_in_use",
        "db_pool_max",
    ),
    "db_size": ("db_size_bytes", "table_rows"),
    "redis": ("redis_used_memory_bytes", "redis_max_memory_bytes", "redis_memory_percent"),
    "cache_hit_ratio": ("cache_hit_ratio",),
    "requests": ("request_rate", "latency_p95_ms"),
    "queue": ("queue_length",),
}


def _recent(previous: CapacitySample | None, now: datetime, key: str) -> dict | None:
    """The previous sample's counters under ``key``, if recent enough to make a rate from."""
    if previous is None or not MIN_RATE_GAP <= now - previous.taken_at <= MAX_RATE_GAP:
        return None
    value = previous.counters.get(key)
    return value if isinstance(value, dict) else None


# --- Machine ------------------------------------------------------------------------------------------------


def read_cpu(sample: CapacitySample, previous: CapacitySample | None) -> str:
    times = psutil.cpu_times()
    total = sum(times)
    idle = times.idle + getattr(times, "iowait", 0.0)
    sample.counters["cpu"] = {"busy": total - idle, "total": total}
    before = _recent(previous, sample.taken_at, "cpu")
    if before is not None and total > before["total"] and total - idle >= before["busy"]:
        busy = (total - idle) - before["busy"]
        sample.cpu_percent = round(min(100.0, busy / (total - before["total"]) * 100), 2)
        return "psutil CPU times since the previous sample"
    sample.cpu_percent = psutil.cpu_percent(interval=CPU_FALLBACK_INTERVAL_S)
    return f"psutil, {CPU_FALLBACK_INTERVAL_S:g} s measurement (no recent previous sample)"


def read_memory(sample: CapacitySample, previous: CapacitySample | None) -> str:
    memory = psutil.virtual_memory()
    sample.memory_percent = memory.percent
    sample.memory_total_bytes = memory.total
    sample.memory_used_bytes = memory.total - memory.available
    return "psutil virtual memory (used = total - available)"


def disk_path() -> str:
    if settings.CAPACITY_DISK_PATH:
        return settings.CAPACITY_DISK_PATH
    return str(settings.MEDIA_ROOT if os.path.exists(settings.MEDIA_ROOT) else settings.BASE_DIR)


def read_disk(sample: CapacitySample, previous: CapacitySample | None) -> str:
    path = disk_path()
    usage = psutil.disk_usage(path)
    sample.disk_percent = usage.percent
    sample.disk_used_bytes = usage.used
    sample.disk_total_bytes = usage.total
    return f"psutil, the volume holding {path}"


def read_network(sample: CapacitySample, previous: CapacitySample | None) -> str:
    io = psutil.net_io_counters()
    if io is None:
        raise Missing("no network interfaces")
    sample.counters["net"] = {"recv": io.bytes_recv, "sent": io.bytes_sent}
    before = _recent(previous, sample.taken_at, "net")
    if before is None or io.bytes_recv < before["recv"] or io.bytes_sent < before["sent"]:
        return "psutil counters recorded; the rate starts with the next sample"
    seconds = (sample.taken_at - previous.taken_at).total_seconds()  # type: ignore[union-attr]
    sample.net_in_bytes_per_s = (io.bytes_recv - before["recv"]) / seconds
    sample.net_out_bytes_per_s = (io.bytes_sent - before["sent"]) / seconds
    return f"psutil, all interfaces, over the last {seconds:.0f} s"


# --- Database -----------------------------------------------------------------------------------------------


def read_db_connections(sample: CapacitySample, previous: CapacitySample | None) -> str:
    if connection.vendor != "postgresql":
        raise Missing(f"{connection.vendor}: a local file, no server connections to count")
    with transaction.atomic():
        data = readings.db_connections()
    sample.db_connections = data.server_total
    sample.db_connections_active = data.server_active
    sample.db_max_connections = data.server_max
    sample.db_pool_in_use = data.pool_in_use
    sample.db_pool_max = data.pool_max
    if settings.DATABASE_POOLER == "pgbouncer":
        return "pg_stat_activity; pool: PgBouncer's (DATABASE_POOLER=pgbouncer), none in this process"
    return f"pg_stat_activity; pool: the sampling process's (pid {os.getpid()})"


def table_names() -> list[str]:
    names = []
    for label in settings.CAPACITY_TABLES:
        try:
            names.append(apps.get_model(label)._meta.db_table)
        except (LookupError, ValueError):
            logger.warning("capacity: CAPACITY_TABLES names an unknown model %r", label)
    return names


def read_db_size(sample: CapacitySample, previous: CapacitySample | None) -> str:
    tables = table_names()
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_database_size(current_database())")
            (sample.db_size_bytes,) = cursor.fetchone()
            # reltuples is the planner's estimate from the last VACUUM/ANALYZE (-1: never analysed); the
            # statistics collector's live-tuple count covers a table not analysed yet.
            cursor.execute(
                "SELECT c.relname, CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint "
                "ELSE coalesce(s.n_live_tup, 0) END "
                "FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid "
                "WHERE c.relkind IN ('r', 'p') AND c.relname = ANY(%s) AND pg_table_is_visible(c.oid)",
                [tables],
            )
            sample.table_rows = {name: int(rows) for name, rows in cursor.fetchall()}
            return "pg_database_size; rows estimated from pg_class.reltuples"
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA page_count")
            (pages,) = cursor.fetchone()
            cursor.execute("PRAGMA page_size")
            (page_size,) = cursor.fetchone()
            sample.db_size_bytes = pages * page_size
            if tables:
                quote = connection.ops.quote_name
                cursor.execute("SELECT " + ", ".join(f"(SELECT count(*) FROM {quote(t)})" for t in tables))  # noqa: S608 (table names from model metadata, quoted)
                sample.table_rows = dict(zip(tables, cursor.fetchone(), strict=True))
            return "SQLite page count; rows counted (small development tables)"
    raise Missing(f"{connection.vendor}: no size query")


# --- Redis and the cache ------------------------------------------------------------------------------------


def _redis_client() -> Redis:
    client = getattr(cache, "client", None)
    if client is None or not hasattr(client, "get_client"):
        raise Missing(f"the cache is {type(caches['default']).__name__}, not Redis")
    return client.get_client(write=False)


def read_redis(sample: CapacitySample, previous: CapacitySample | None) -> str:
    info = _redis_client().info()
    used = int(info["used_memory"])
    maxmemory = int(info.get("maxmemory") or 0)
    limit = maxmemory or int(info.get("total_system_memory") or 0)
    sample.redis_used_memory_bytes = used
    sample.redis_max_memory_bytes = limit or None
    sample.redis_memory_percent = used / limit * 100 if limit else None
    if maxmemory:
        return "Redis INFO: used_memory of maxmemory"
    return "Redis INFO: maxmemory is 0 (no limit), so used_memory of the machine's memory"


def _web_reading(sample: CapacitySample, previous: CapacitySample | None) -> tuple[WebCounters, float] | str:
    """The web processes' counters since the previous sample and the seconds between (read once per sample
    and kept in its counters), or a note saying why there is no interval yet. Raises Missing without them."""
    cached = getattr(sample, "_web_reading", None)
    if cached is None:
        try:
            now = web_metrics.read()
        except web_metrics.Unavailable as exc:
            cached = Missing(str(exc))
        else:
            sample.counters["web"] = now.as_dict()
            before = _recent(previous, sample.taken_at, "web")
            diff = None if before is None else now.since(WebCounters.from_dict(before))
            if diff is None:
                cached = (
                    f"{now.source}: counters (responses, latency, sigma_cache_requests_total) recorded; "
                    "the rate starts with the next sample"
                )
            else:
                seconds = (sample.taken_at - previous.taken_at).total_seconds()  # type: ignore[union-attr]
                diff.source = f"{now.source.split(', since')[0]}, over the last {seconds:.0f} s"
                cached = (diff, seconds)
        sample._web_reading = cached  # type: ignore[attr-defined]
    if isinstance(cached, Missing):
        raise cached
    return cached


def _web_reading_noted(
    note: str, sample: CapacitySample, previous: CapacitySample | None
) -> tuple[WebCounters, float] | str:
    """:func:`_web_reading` after Prometheus failed with ``note``: the note goes in front of what is said."""
    try:
        reading = _web_reading(sample, previous)
    except Missing as exc:
        raise Missing(f"{note}{exc}") from None
    return note + reading if isinstance(reading, str) else reading


def _prometheus_note(exc: Exception) -> str:
    logger.warning("capacity: Prometheus did not answer: %s", exc)
    return f"Prometheus did not answer ({exc}); "


def read_cache_hit_ratio(sample: CapacitySample, previous: CapacitySample | None) -> str:
    """The project's own lookups (sigma_cache_requests_total of the web processes), as the diagnosis reads
    them: site-wide from Prometheus when PROMETHEUS_URL is set, otherwise the web processes' merged
    multiprocess metrics since the previous sample. Never Redis INFO (the whole server, broker included)."""
    note = ""
    if settings.PROMETHEUS_URL:
        try:
            hits = readings.prometheus_scalar(
                settings.PROMETHEUS_URL, readings.cache_lookups_query("hit"), 2.0
            )
            misses = readings.prometheus_scalar(
                settings.PROMETHEUS_URL, readings.cache_lookups_query("miss"), 2.0
            )
        except readings.PrometheusError as exc:
            note = _prometheus_note(exc)
        else:
            lookups = (hits or 0) + (misses or 0)
            sample.cache_hit_ratio = (hits or 0) / lookups if lookups else None
            return f"sigma_cache_requests_total of the web job from Prometheus, last {readings.WINDOW}"
    reading = _web_reading_noted(note, sample, previous)
    if isinstance(reading, str):
        return reading
    diff, _ = reading
    lookups = diff.cache_hits + diff.cache_misses
    sample.cache_hit_ratio = diff.cache_hits / lookups if lookups else None
    return f"{note}sigma_cache_requests_total of {diff.source}"


# --- Requests and Celery ------------------------------------------------------------------------------------


def read_requests(sample: CapacitySample, previous: CapacitySample | None) -> str:
    """Users' request rate and p95 latency: from Prometheus (the web job) when PROMETHEUS_URL is set,
    otherwise from the web processes' merged multiprocess metrics since the previous sample; never this
    process's own (a Celery pool process serves no requests), "missing" with the reason instead."""
    note = ""
    if settings.PROMETHEUS_URL:
        try:
            stats = readings.prometheus_request_stats(settings.PROMETHEUS_URL)
        except readings.PrometheusError as exc:
            note = _prometheus_note(exc)
        else:
            sample.request_rate = (stats.requests or 0.0) / 300
            sample.latency_p95_ms = stats.p95_ms
            return stats.source
    reading = _web_reading_noted(note, sample, previous)
    if isinstance(reading, str):
        return reading
    diff, seconds = reading
    sample.request_rate = diff.responses / seconds
    p95 = diff.quantile(0.95) if diff.responses else None
    sample.latency_p95_ms = None if p95 is None else p95 * 1000
    return f"{note}{diff.source}"


def read_queue(sample: CapacitySample, previous: CapacitySample | None) -> str:
    if readings.broker_is_memory():
        sample.queue_length = 0
        return "in-memory broker: tasks run in-process, nothing queues"
    lengths, up = queues.queue_lengths()
    if not up:
        raise Missing("the broker did not answer")
    sample.queue_length = sum(lengths.values())
    return "broker: " + (", ".join(f"{name} {n}" for name, n in sorted(lengths.items())) or "no queues")


READERS: dict[str, Reader] = {
    "cpu": read_cpu,
    "memory": read_memory,
    "disk": read_disk,
    "network": read_network,
    "db_connections": read_db_connections,
    "db_size": read_db_size,
    "redis": read_redis,
    "cache_hit_ratio": read_cache_hit_ratio,
    "requests": read_requests,
    "queue": read_queue,
}


def _previous(host: str) -> CapacitySample | None:
    try:
        return CapacitySample.objects.filter(host=host).only("taken_at", "counters").first()
    except Exception:
        logger.warning("capacity: could not read the previous sample", exc_info=True)
        return None


def collect(now: datetime | None = None) -> CapacitySample:
    """Read every source into an unsaved sample; never raises for a source."""
    sample = CapacitySample(taken_at=now or timezone.now(), host=socket.gethostname()[:100])
    sample.counters, sample.notes, sample.missing = {}, {}, []
    previous = _previous(sample.host)
    for name, read in READERS.items():
        try:
            sample.notes[name] = read(sample, previous)
        except Exception as exc:
            for field in SOURCES[name]:
                setattr(sample, field, {} if field == "table_rows" else None)
            sample.missing.append(name)
            if isinstance(exc, Missing):
                sample.notes[name] = str(exc)
            else:
                sample.notes[name] = f"{type(exc).__name__}: {str(exc)[:200]}"
                logger.warning("capacity: source %s failed: %s", name, sample.notes[name])
    return sample
