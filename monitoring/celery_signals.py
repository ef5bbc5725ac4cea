"""Monitoring's Celery signal handlers, connected by :meth:`monitoring.apps.MonitoringConfig.ready` (in web
processes, workers and eager mode alike):

* the request id of the web request that queued a task travels in the message headers and is bound while
  the task runs, so the task's log lines carry it;
* every task's duration and final state are recorded (``sigma_celery_tasks_total``,
  ``sigma_celery_task_duration_seconds``) and logged in one line;
* with ``CELERY_METRICS_PORT`` set, the worker's main process serves its pool processes' metrics on that
  port (prometheus_client multiprocess mode when ``PROMETHEUS_MULTIPROC_DIR`` is set, as it must be for the
  prefork pool); see README "Monitoring".

A worker imports its task modules (and so runs ``django.setup()``) before it sends ``worker_init``, so the
handlers are connected in time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time

from celery import signals
from django.conf import settings
from prometheus_client import multiprocess, start_http_server

from monitoring import instruments
from monitoring.exposition import clean_multiprocess_dir, multiprocess_dir, worker_registry
from sigma_playground.request_id import current_request_id, reset_request_id, sane_request_id, set_request_id
from sigma_playground.telemetry import process

# The logger name task lines have always carried (log pipelines select on it).
logger = logging.getLogger("sigma_playground.celery")
REQUEST_ID_HEADER = "sigma_request_id"

# task id -> (request-id context token, start time); a dict because prerun and postrun are separate calls.
_running: dict[str, tuple[object, float]] = {}
_running_lock = threading.Lock()

metrics_server = None  # (server, thread) once a worker serves its metrics


def _send_request_id(headers: dict | None = None, **kwargs) -> None:
    request_id = current_request_id()
    if request_id and headers is not None:
        headers.setdefault(REQUEST_ID_HEADER, request_id)


def _request_id_of(task) -> str | None:
    request = task.request
    value = getattr(request, REQUEST_ID_HEADER, None) or (request.headers or {}).get(REQUEST_ID_HEADER)
    # Eager tasks run inside the request that started them, which has bound the id already.
    return sane_request_id(value) if value else current_request_id()


def _task_started(task_id: str | None = None, task=None, **kwargs) -> None:
    if task_id is None or task is None:
        return
    token = set_request_id(_request_id_of(task))
    now = time.perf_counter()
    with _running_lock:
        if len(_running) > 1000:  # eager tasks that raised skip postrun; forget entries older than an hour
            for stale in [key for key, (_, started) in _running.items() if now - started > 3600]:
                del _running[stale]
        _running[task_id] = (token, now)


def _task_finished(task_id: str | None = None, task=None, state: str | None = None, **kwargs) -> None:
    with _running_lock:
        entry = _running.pop(task_id, None) if task_id else None
    if entry is None or task is None:
        return
    token, started = entry
    duration = time.perf_counter() - started
    state_label = (state or "unknown").lower()
    instruments.CELERY_TASKS.inc(task=task.name, state=state_label)
    instruments.CELERY_TASK_SECONDS.observe(duration, task=task.name)
    logger.info(
        "task %s %s in %.1fms",
        task.name,
        state_label,
        duration * 1000,
        extra={
            "task": task.name,
            "task_id": task_id,
            "state": state_label,
            "duration_ms": round(duration * 1000, 1),
        },
    )
    with contextlib.suppress(
        ValueError
    ):  # postrun ran in another context than prerun (not in Celery's pools)
        reset_request_id(token)  # type: ignore[arg-type]


def _task_revoked(sender=None, **kwargs) -> None:
    instruments.CELERY_TASKS.inc(task=getattr(sender, "name", None) or "other", state="revoked")


def _mark_worker(**kwargs) -> None:
    process.mark_celery_worker()


def consumed_queues(worker) -> list[str]:
    """The queues a worker consumes (its -Q; without one, the default queue)."""
    queues = getattr(getattr(getattr(worker, "app", None), "amqp", None), "queues", None)
    if queues is None:
        return []
    return sorted(str(name) for name in queues.consume_from)


def _start_metrics_server(sender=None, **kwargs) -> None:
    """In the worker's main process, before its pool forks: clean the multiprocess directory and serve."""
    port = settings.CELERY_METRICS_PORT
    if not port:
        return
    path = multiprocess_dir()
    if path:
        clean_multiprocess_dir(path, keep_pids=[os.getpid()])

    global metrics_server
    queues = consumed_queues(sender)
    metrics_server = start_http_server(
        port, addr=settings.CELERY_METRICS_ADDR, registry=worker_registry(queues=queues)
    )
    logger.info(
        "worker metrics on %s:%s (multiprocess dir: %s; queues: %s)",
        settings.CELERY_METRICS_ADDR,
        port,
        path,
        ",".join(queues) or "-",
    )


def _mark_process_dead(pid: int | None = None, **kwargs) -> None:
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid or os.getpid())


def connect() -> None:
    """Connect every handler once (dispatch_uid: a second ``ready()``, as in some tests, adds nothing)."""
    for signal, handler in (
        (signals.before_task_publish, _send_request_id),
        (signals.task_prerun, _task_started),
        (signals.task_postrun, _task_finished),
        (signals.task_revoked, _task_revoked),
        (signals.worker_init, _mark_worker),
        (signals.worker_init, _start_metrics_server),
        (signals.worker_process_shutdown, _mark_process_dead),
    ):
        signal.connect(handler, weak=False, dispatch_uid=f"monitoring.celery_signals.{handler.__name__}")
