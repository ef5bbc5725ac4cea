"""The metrics this project declares, in one place so rules, dashboard and tests can find them.

Other modules declare theirs through :mod:`monitoring.metrics` the same way. Two more series come from
scrape-time collectors in :mod:`monitoring.exposition`: ``sigma_celery_queue_length`` and
``sigma_celery_broker_up``.
"""

from __future__ import annotations

from django.conf import settings
from prometheus_client import disable_created_metrics

from monitoring import metrics
from monitoring.routes import page_route_names

# The *_created series double the series count and Prometheus doesn't need them.
disable_created_metrics()

# --- Real-user monitoring (static/js/rum.js -> /monitoring/rum/) ---------------------------------------------

RUM_TIMINGS = ("lcp", "inp", "ttfb", "dcl", "load")
RUM_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 8.0, 13.0, 20.0, 30.0)
CLS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)
RUM_REPORT_RESULTS = ("accepted", "malformed", "too_large", "rate_limited", "unsupported_media_type")
INTERACTION_TYPES = ("click", "submit")

RUM_TIMING = metrics.histogram(
    "sigma_rum_timing_seconds",
    "Web Vitals and navigation timings reported by real browsers, by page route: lcp, inp, ttfb, "
    "dcl (DOMContentLoaded) and load, each measured from the start of navigation.",
    {"route": page_route_names, "metric": RUM_TIMINGS},
    buckets=RUM_BUCKETS,
)
RUM_CLS = metrics.histogram(
    "sigma_rum_cls",
    "Cumulative Layout Shift (largest session window) reported by real browsers, by page route.",
    {"route": page_route_names},
    buckets=CLS_BUCKETS,
)
RUM_INTERACTIONS = metrics.counter(
    "sigma_rum_interactions_total",
    "Clicks and form submits on elements carrying data-rum, by page route and the data-rum name.",
    {
        "route": page_route_names,
        "type": INTERACTION_TYPES,
        "target": lambda: settings.RUM_INTERACTION_NAMES,
    },
)
RUM_REPORTS = metrics.counter(
    "sigma_rum_reports_total",
    "Beacons received at /monitoring/rum/, by what became of them.",
    {"result": RUM_REPORT_RESULTS},
    initialize=True,
)

# --- Celery (recorded in the worker processes; see sigma_playground/celery.py) -------------------------------

TASK_STATES = ("success", "failure", "retry", "revoked", "ignored", "rejected")

CELERY_TASKS = metrics.counter(
    "sigma_celery_tasks_total",
    "Celery tasks finished, by task name and final state.",
    {"task": metrics.task_names, "state": TASK_STATES},
)
CELERY_TASK_SECONDS = metrics.histogram(
    "sigma_celery_task_duration_seconds",
    "Wall time of Celery task bodies.",
    {"task": metrics.task_names},
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0),
)
BEAT_HEARTBEAT = metrics.gauge(
    "sigma_celery_beat_heartbeat_timestamp_seconds",
    "Unix time at which a worker last ran the beat heartbeat task (scheduled every minute).",
    multiprocess_mode="max",
)

# --- Database connection pool (this process's psycopg pool; all zero on SQLite) -----------------------------

DB_POOL_CONNECTIONS = metrics.gauge(
    "sigma_db_pool_connections",
    "Connections held by this process's database pool, in use or idle (sampled after each request).",
    {"state": ("in_use", "idle")},
    initialize=True,
)
DB_POOL_MAX = metrics.gauge("sigma_db_pool_max_connections", "The database pool's max_size (0: no pool).")
DB_POOL_WAITING = metrics.gauge(
    "sigma_db_pool_requests_waiting", "Requests waiting for a pooled database connection."
)

# --- Read replicas (sigma_playground/replicas; series exist only with DATABASE_REPLICA_URLS) ----------------

REPLICA_ALIASES = metrics.Capped(limit=16, pattern=r"^replica_\d{1,2}$")
DB_REPLICA_LAG = metrics.gauge(
    "sigma_db_replica_lag_seconds",
    "How far each read replica is behind the primary, as this process last measured it plus the time since "
    "(it keeps growing while the replica cannot be measured); 0 when it has replayed everything.",
    {"replica": REPLICA_ALIASES},
    multiprocess_mode="livemax",
)
DB_REPLICA_UP = metrics.gauge(
    "sigma_db_replica_up",
    "1 while public reads may go to the replica (reachable, a standby, within REPLICA_MAX_LAG_SECONDS), else 0.",
    {"replica": REPLICA_ALIASES},
    multiprocess_mode="livemax",
)
PUBLIC_READ_REASONS = ("replica", "pinned", "staff", "recent_write", "unavailable", "unknown")
DB_PUBLIC_READS = metrics.counter(
    "sigma_db_public_reads_total",
    "Public page requests that read the database, by where their reads went (replica or primary) and why: "
    "pinned (the client wrote recently), staff, recent_write (the page changed after what the replicas have), "
    "unavailable (no replica reachable within the lag bound), unknown (change times unreadable).",
    {"target": ("replica", "primary"), "reason": PUBLIC_READ_REASONS},
)

# --- Cache: declared here, incremented by the caching layer --------------------------------------------------

CACHE_KINDS = metrics.Capped(limit=50)
CACHE_REQUESTS = metrics.counter(
    "sigma_cache_requests_total",
    "Cache lookups by kind of cached thing and result (hit or miss).",
    {"kind": CACHE_KINDS, "result": ("hit", "miss")},
    batched=True,  # counted on every cached page served
)

# --- Profiler (monitoring/profiling.py) ---------------------------------------------------------------------

PROFILE_NAMES = metrics.Capped(limit=200)
PROFILE_SECONDS = metrics.histogram(
    "sigma_profile_duration_seconds", "Wall time of profiled sections.", {"name": PROFILE_NAMES}
)
PROFILE_CPU_SECONDS = metrics.histogram(
    "sigma_profile_cpu_seconds",
    "CPU time of profiled sections (the calling thread's), user or system.",
    {"name": PROFILE_NAMES, "mode": ("user", "system")},
)
PROFILE_MEMORY_DELTA = metrics.histogram(
    "sigma_profile_memory_delta_bytes",
    "Change of the process's resident memory across profiled sections (negative buckets: memory freed).",
    {"name": PROFILE_NAMES},
    buckets=(-(2**24), -(2**20), 0, 2**16, 2**18, 2**20, 2**22, 2**24, 2**26, 2**28),
)
