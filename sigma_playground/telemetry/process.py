"""What kind of process this is, where the answer changes what its metrics mean.

A Celery worker's main process and its pool (marked before the fork by monitoring's ``worker_init`` handler,
monitoring/celery_signals.py) are never the web: they initialise no request series and never read their own
registry as the site's numbers (monitoring.web_metrics).
"""

from __future__ import annotations

_in_celery_worker = False


def mark_celery_worker(value: bool = True) -> None:
    global _in_celery_worker
    _in_celery_worker = value


def in_celery_worker() -> bool:
    return _in_celery_worker
