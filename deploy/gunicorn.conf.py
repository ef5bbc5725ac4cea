"""gunicorn configuration: ``gunicorn -c deploy/gunicorn.conf.py sigma_playground.wsgi``.

Sized for the 2-core machines this runs on. Every worker is a separate process, so Prometheus metrics use
prometheus_client's multiprocess mode: each process writes its samples into PROMETHEUS_MULTIPROC_DIR, /metrics
merges them, the directory is emptied when the master starts (stale files from an earlier run would add old
counts, and pids get reused) and a dead worker's live gauges are dropped when it exits.

Environment: GUNICORN_BIND (127.0.0.1:8000), WEB_CONCURRENCY (workers), GUNICORN_THREADS, GUNICORN_MAX_REQUESTS,
PROMETHEUS_MULTIPROC_DIR (/run/sigma-playground/prometheus-web; must differ from the Celery worker's and from
any other gunicorn instance's on the host), GUNICORN_CONTROL_SOCKET (default: gunicorn.ctl in that directory).
"""

from __future__ import annotations

import multiprocessing
import os

# Set before any worker imports prometheus_client: the value class is chosen at import time.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", "/run/sigma-playground/prometheus-web")
# The diagnosis and capacity sampler in these workers read the web's merged samples from here (settings.py).
os.environ.setdefault("PROMETHEUS_WEB_MULTIPROC_DIR", os.environ["PROMETHEUS_MULTIPROC_DIR"])
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sigma_playground.settings")

cores = multiprocessing.cpu_count()
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# 2 x cores + 1 workers keep both cores busy while some wait on PostgreSQL or Redis; two threads each cover
# slow I/O without the memory of more processes. Each thread holds at most one pooled connection at a time:
# size DB_POOL_MIN_SIZE / DB_POOL_MAX_SIZE for this process type (docs/operations.md, "Database connections").
workers = int(os.environ.get("WEB_CONCURRENCY", 2 * cores + 1))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", 2))
# Restart a worker after this many requests (jittered so they don't all restart together): bounds slow leaks.
# Not too low: booting a worker (importing Django and the project) costs about a second of CPU, and at the few
# thousand cached pages a second this machine serves, 2,000 would restart a worker every couple of seconds.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 100_000))
max_requests_jitter = max_requests // 10
timeout = 30
graceful_timeout = 30
keepalive = 5
# Each worker listens on its own SO_REUSEPORT socket, so the kernel spreads new connections over the workers.
# Without it every worker accepts from one shared socket, and a gthread worker takes every connection it can
# (up to worker_connections, 1,000) and keeps it for as long as the client keeps it alive: bench-web's 32 wrk
# connections, or nginx's upstream keep-alive pool, landed on one or two workers, and one Python process
# runs on one core (the GIL): the uncached list used 1.00 of 2 cores (issue 15, docs/performance.md).
# The cost: a worker that exits drops the connections still queued on its own socket (kernel behaviour), so
# workers are recycled rarely (max_requests below) and a deploy drains through the proxy's retry.
reuse_port = True
# Don't import the app in the master: each worker builds its own metrics and database pool after the fork.
preload_app = False
accesslog = None  # the app's JSON access log (sigma_playground.request_id) replaces gunicorn's
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# gunicorn's control socket (gunicornc) defaults to one path per user ($XDG_RUNTIME_DIR/gunicorn.ctl or
# ~/.gunicorn/gunicorn.ctl), shared by every instance on the host: the last one started takes it over from the
# others. One per instance instead, beside its metrics (each instance already needs its own directory there).
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET") or os.path.join(
    os.environ["PROMETHEUS_MULTIPROC_DIR"], "gunicorn.ctl"
)


def on_starting(server) -> None:
    """In the master, before any worker exists: empty the metrics directory."""
    from pathlib import Path

    path = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    removed = 0
    for stale in path.glob("*.db"):
        stale.unlink()
        removed += 1
    server.log.info("prometheus multiprocess dir %s ready (%d stale files removed)", path, removed)


def child_exit(server, worker) -> None:
    """In the master, after a worker exited: drop its live gauges (livesum etc.); counters stay summed."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
