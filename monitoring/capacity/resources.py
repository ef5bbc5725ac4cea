"""The resources capacity planning watches, their thresholds and what to do as they near them.

Thresholds come from the SLA (:mod:`monitoring.sla`) wherever it states one: CPU 70 %, memory 80 %, disk
85 %, database connections at 80 % of the budget (the SLA's 100, or ``max_connections`` when the server
allows fewer), p95 latency and request rate at their SLA targets; Redis memory at
``CAPACITY_REDIS_MEMORY_PERCENT`` of ``maxmemory``; the Celery backlog and cache hit ratio at the
operational thresholds the health diagnosis uses.

Priorities. The design gives a priority for a resource that is over its threshold now (CPU and memory
high, database connections medium); that is each resource's ceiling here. A projected crossing within
:data:`URGENT_DAYS` gets the same priority (it takes that long to buy and roll out capacity), within
:data:`SOON_DAYS` one level lower, within a year low; later, no recommendation.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from monitoring.sla import DB_CONNECTIONS_WARNING_FRACTION, SLA, current

PRIORITIES = ("high", "medium", "low")
URGENT_DAYS = 30
SOON_DAYS = 90
HORIZON_DAYS = 365


@dataclass(frozen=True)
class Resource:
    key: str  # the CapacitySample field and hourly-aggregate key
    title: str
    unit: str  # "%", "ratio", "bytes", "B/s", or a count's noun
    kind: str = ""  # the recommendation's type, as the design names them (cpu, memory, database, ...)
    action: str = ""  # what to do when it nears its threshold; "" for resources only projected
    priority: str = ""  # when over its threshold now (the ceiling; see the module docstring)
    advice: str = ""
    higher_is_worse: bool = True

    @property
    def bounds(self) -> tuple[float, float | None]:
        if self.unit == "%":
            return 0.0, 100.0
        if self.unit == "ratio":
            return 0.0, 1.0
        return 0.0, None

    def format(self, value: float | None) -> str:
        return format_value(value, self.unit)

    def format_axis(self, value: float) -> str:
        """Short enough for a chart's axis: counts without their noun, large ones in k/M."""
        if self.unit in ("%", "ratio", "bytes", "B/s", "ms"):
            return format_value(value, self.unit)
        for divisor, suffix in ((1e6, "M"), (1e3, "k")):
            if abs(value) >= divisor:
                return f"{value / divisor:.3g}{suffix}"
        return f"{value:.3g}"


RESOURCES: tuple[Resource, ...] = (
    Resource(
        "cpu_percent",
        "CPU",
        "%",
        kind="cpu",
        action="scale_up",
        priority="high",
        advice="Scale up (more cores) or out (more gunicorn workers or instances); profile the busiest "
        "pages first (?profile=1).",
    ),
    Resource(
        "memory_percent",
        "Memory",
        "%",
        kind="memory",
        action="increase_memory",
        priority="high",
        advice="Increase the memory allocation, or run fewer workers per machine; check for leaks "
        "(worker RSS growing across requests).",
    ),
    Resource(
        "disk_percent",
        "Disk",
        "%",
        kind="disk",
        action="grow_disk",
        priority="high",
        advice="Grow the volume before it fills; remove orphaned thumbnails and old logs. Database and "
        "table growth are in the report.",
    ),
    Resource(
        "db_connections",
        "Database connections",
        "connections",
        kind="database",
        action="optimize_connections",
        priority="medium",
        advice="Optimise connection pooling: keep DB_POOL_MAX_SIZE x processes under the budget "
        "(docs/operations.md), or put PgBouncer in transaction mode in front of PostgreSQL.",
    ),
    Resource(
        "redis_memory_percent",
        "Redis memory",
        "%",
        kind="cache",
        action="increase_cache_memory",
        priority="medium",
        advice="Give Redis more memory (maxmemory, and the machine under it), or cache less or for less "
        "long: evictions lower the hit ratio and move the load to the database.",
    ),
    Resource(
        "queue_length",
        "Celery queue",
        "messages",
        kind="queue",
        action="add_workers",
        priority="medium",
        advice="Add worker concurrency or workers, and look for a task that got slow "
        "(sigma_celery_task_duration_seconds).",
    ),
    Resource("latency_p95_ms", "Request latency p95", "ms"),
    Resource("request_rate", "Request rate", "req/s"),
    Resource("cache_hit_ratio", "Cache hit ratio", "ratio", higher_is_worse=False),
    Resource("db_size_bytes", "Database size", "bytes"),
    Resource("net_in_bytes_per_s", "Network in", "B/s"),
    Resource("net_out_bytes_per_s", "Network out", "B/s"),
)
BY_KEY = {r.key: r for r in RESOURCES}


@dataclass(frozen=True)
class Limit:
    value: float
    label: str


def thresholds(max_connections: int | None = None, sla: SLA | None = None) -> dict[str, Limit]:
    """Each resource's threshold; resources without one are absent. ``max_connections`` is the server's,
    from the latest sample that read it."""
    sla = sla or current()
    ops = settings.MONITORING_THRESHOLDS
    budget = sla.database_connections
    budget_label = f"the SLA's {budget}"
    if max_connections and max_connections < budget:
        budget, budget_label = max_connections, f"max_connections {max_connections}"
    redis_percent = settings.CAPACITY_REDIS_MEMORY_PERCENT
    return {
        "cpu_percent": Limit(sla.cpu_percent, f"SLA {sla.cpu_percent:g}%"),
        "memory_percent": Limit(sla.memory_percent, f"SLA {sla.memory_percent:g}%"),
        "disk_percent": Limit(sla.disk_percent, f"SLA {sla.disk_percent:g}%"),
        "db_connections": Limit(
            budget * DB_CONNECTIONS_WARNING_FRACTION,
            f"{DB_CONNECTIONS_WARNING_FRACTION:.0%} of {budget_label} connections",
        ),
        "redis_memory_percent": Limit(redis_percent, f"{redis_percent:g}% of maxmemory"),
        "queue_length": Limit(float(ops["queue_backlog"]), f"backlog {ops['queue_backlog']}"),
        "latency_p95_ms": Limit(sla.api_ms.p95, f"SLA p95 {sla.api_ms.p95:g} ms"),
        "request_rate": Limit(sla.requests_per_second, f"SLA {sla.requests_per_second:g} req/s"),
        "cache_hit_ratio": Limit(ops["cache_hit_ratio_min"], f"minimum {ops['cache_hit_ratio_min']:.0%}"),
    }


def priority(resource: Resource, *, over_now: bool, crossing_days: float | None) -> str | None:
    """The priority of a recommendation for ``resource`` (None: no recommendation)."""
    if not resource.action:
        return None
    ceiling = PRIORITIES.index(resource.priority)
    if over_now or (crossing_days is not None and crossing_days <= URGENT_DAYS):
        return PRIORITIES[ceiling]
    if crossing_days is not None and crossing_days <= SOON_DAYS:
        return PRIORITIES[min(ceiling + 1, len(PRIORITIES) - 1)]
    if crossing_days is not None and crossing_days <= HORIZON_DAYS:
        return "low"
    return None


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "%":
        return f"{value:.1f}%"
    if unit == "ratio":
        return f"{value:.0%}"
    if unit in ("bytes", "B/s"):
        suffix = "/s" if unit == "B/s" else ""
        size = float(value)
        for name in ("B", "KiB", "MiB", "GiB", "TiB"):
            if abs(size) < 1024 or name == "TiB":
                return f"{size:.0f} {name}{suffix}" if name == "B" else f"{size:.1f} {name}{suffix}"
            size /= 1024
    if unit == "ms":
        return f"{value:.0f} ms"
    if unit == "req/s":
        return f"{value:.2f} req/s"
    if abs(value) >= 10 or float(value).is_integer():
        return f"{value:,.0f} {unit}"
    return f"{value:.1f} {unit}"
