"""Monitoring's own metrics: real-user monitoring, Celery tasks and the profiler.

The metrics core infrastructure records are in sigma_playground/telemetry/instruments.py.
"""

from __future__ import annotations

import importlib
import importlib.util

from django.apps import apps
from django.conf import settings

from sigma_playground.celery import app
from sigma_playground.telemetry import metrics
from sigma_playground.telemetry.routes import page_route_names

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

# --- Celery (recorded in the worker processes; see monitoring/celery_signals.py) -----------------------------


def task_names() -> set[str]:
    """Celery task names registered by this project (Celery's own ``celery.*`` tasks fold into other)."""
    # Import each app's tasks module and CELERY_IMPORTS directly: Celery's import_default_modules() would run
    # Django's system checks and reconfigure logging from inside whatever task first records a metric.
    for config in apps.get_app_configs():
        try:
            if importlib.util.find_spec(f"{config.name}.tasks") is not None:
                importlib.import_module(f"{config.name}.tasks")
        except ModuleNotFoundError:  # the app is a module, not a package
            continue
    for module in app.conf.imports or ():
        importlib.import_module(module)
    return {name for name in app.tasks if not name.startswith("celery.")}


TASK_STATES = ("success", "failure", "retry", "revoked", "ignored", "rejected")

CELERY_TASKS = metrics.counter(
    "sigma_celery_tasks_total",
    "Celery tasks finished, by task name and final state.",
    {"task": task_names, "state": TASK_STATES},
)
CELERY_TASK_SECONDS = metrics.histogram(
    "sigma_celery_task_duration_seconds",
    "Wall time of Celery task bodies.",
    {"task": task_names},
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0),
)
BEAT_HEARTBEAT = metrics.gauge(
    "sigma_celery_beat_heartbeat_timestamp_seconds",
    "Unix time at which a worker last ran the beat heartbeat task (scheduled every minute).",
    multiprocess_mode="max",
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
