"""Metrics that core infrastructure records (database pool, read replicas, cache lookups), declared in one place
so rules, dashboard and tests can find them.

Other modules declare theirs through :mod:`sigma_playground.telemetry.metrics` the same way (monitoring's own in
monitoring/instruments.py). Two more series come from scrape-time collectors in :mod:`monitoring.exposition`:
``sigma_celery_queue_length`` and ``sigma_celery_broker_up``.
"""

from __future__ import annotations

from sigma_playground.telemetry import metrics

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

# --- Cache: incremented by the caching layer --------------------------------------------------

CACHE_KINDS = metrics.Capped(limit=50)
CACHE_REQUESTS = metrics.counter(
    "sigma_cache_requests_total",
    "Cache lookups by kind of cached thing and result (hit or miss).",
    {"kind": CACHE_KINDS, "result": ("hit", "miss")},
    batched=True,  # counted on every cached page served
)
