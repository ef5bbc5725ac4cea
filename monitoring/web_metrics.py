"""The web processes' own counters, read without Prometheus: user requests, 5xx, latency buckets, cache lookups.

Under gunicorn every worker writes its samples into its PROMETHEUS_MULTIPROC_DIR; merged, they are the
numbers ``/metrics`` serves. The health diagnosis and the capacity sampler read them from
``settings.PROMETHEUS_WEB_MULTIPROC_DIR`` (the directory gunicorn writes), whichever process they run in: a
Celery pool process, ``manage.py diagnose`` or a web worker. Without that directory, only a single-process
server (runserver, the tests: no PROMETHEUS_MULTIPROC_DIR, not a Celery worker) reads its own registry, which
*is* the web's; anything else is "missing" with the reason, never another process's numbers.

The counters are cumulative since the web processes started; a rate comes from two readings (the capacity
sampler keeps the previous one), a ratio since start from one.
"""

from __future__ import annotations

import glob
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

from django.conf import settings
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

from monitoring.exposition import multiprocess_dir
from sigma_playground.telemetry import process

RESPONSES = "django_http_responses_total_by_status_view_method_total"
LATENCY_BUCKET = "django_http_requests_latency_seconds_by_view_method_bucket"
CACHE_LOOKUPS = "sigma_cache_requests_total"


class Unavailable(Exception):
    """No web counters to read here; the message says why."""


@dataclass
class WebCounters:
    responses: float = 0.0
    errors: float = 0.0  # 5xx
    buckets: dict[str, float] = field(default_factory=dict)  # le -> cumulative count, summed over routes
    cache_hits: float = 0.0
    cache_misses: float = 0.0
    source: str = ""

    def as_dict(self) -> dict:
        data = asdict(self)
        data.pop("source")
        return data

    @classmethod
    def from_dict(cls, data: Mapping) -> WebCounters:
        return cls(
            responses=float(data.get("responses", 0)),
            errors=float(data.get("errors", 0)),
            buckets={str(k): float(v) for k, v in dict(data.get("buckets", {})).items()},
            cache_hits=float(data.get("cache_hits", 0)),
            cache_misses=float(data.get("cache_misses", 0)),
        )

    def since(self, before: WebCounters) -> WebCounters | None:
        """What happened between ``before`` and this reading; None when a counter went down (a restart)."""
        diff = WebCounters(
            responses=self.responses - before.responses,
            errors=self.errors - before.errors,
            buckets={le: n - before.buckets.get(le, 0.0) for le, n in self.buckets.items()},
            cache_hits=self.cache_hits - before.cache_hits,
            cache_misses=self.cache_misses - before.cache_misses,
            source=self.source,
        )
        values = [diff.responses, diff.errors, diff.cache_hits, diff.cache_misses, *diff.buckets.values()]
        return None if any(v < 0 for v in values) else diff

    def quantile(self, q: float) -> float | None:
        """Seconds: ``histogram_quantile(q, ...)`` of the latency buckets, interpolated as Prometheus does."""
        return histogram_quantile(q, self.buckets)


def histogram_quantile(q: float, buckets: Mapping[str, float]) -> float | None:
    points = sorted((float(le), count) for le, count in buckets.items())
    if not points or points[-1][1] <= 0 or not math.isinf(points[-1][0]):
        return None
    rank = q * points[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in points:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # in the +Inf bucket: the highest finite bound, as Prometheus answers
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return None


def in_celery_worker() -> bool:
    return process.in_celery_worker()


def this_process_serves_the_site() -> bool:
    """A single process that is the whole site: its own registry holds the web's numbers."""
    return not multiprocess_dir() and not in_celery_worker()


def _sum(families: Iterable, source: str) -> WebCounters:
    counters = WebCounters(source=source)
    for family in families:
        for s in family.samples:
            if s.name == RESPONSES:
                counters.responses += s.value
                if s.labels.get("status", "").startswith("5"):
                    counters.errors += s.value
            elif s.name == LATENCY_BUCKET:
                le = s.labels.get("le", "")
                counters.buckets[le] = counters.buckets.get(le, 0.0) + s.value
            elif s.name == CACHE_LOOKUPS:
                if s.labels.get("result") == "hit":
                    counters.cache_hits += s.value
                elif s.labels.get("result") == "miss":
                    counters.cache_misses += s.value
    return counters


def web_directory() -> str:
    return settings.PROMETHEUS_WEB_MULTIPROC_DIR


def read() -> WebCounters:
    """The web processes' counters: merged from their directory, or this process's own when it is the whole
    site; raises :class:`Unavailable` saying why not."""
    path = web_directory()
    if path and os.path.isdir(path) and glob.glob(os.path.join(path, "*.db")):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=path)
        return _sum(registry.collect(), f"the web processes' metrics merged from {path}, since they started")
    if this_process_serves_the_site():
        return _sum(
            REGISTRY.collect(),
            f"this process (pid {os.getpid()}), the whole site in single-process mode, since it started",
        )
    if not path:
        raise Unavailable("PROMETHEUS_WEB_MULTIPROC_DIR is not set (the directory gunicorn writes)")
    if not os.path.isdir(path):
        raise Unavailable(
            f"no web metrics directory at {path} (PROMETHEUS_WEB_MULTIPROC_DIR): gunicorn runs elsewhere or "
            "with another PROMETHEUS_MULTIPROC_DIR; set PROMETHEUS_URL for the whole site"
        )
    raise Unavailable(
        f"{path} holds no samples yet: is gunicorn running with PROMETHEUS_MULTIPROC_DIR={path}?"
    )
