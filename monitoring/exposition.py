"""What ``/metrics`` and the Celery worker's metrics port serve.

Under gunicorn (several worker processes) and Celery's prefork pool, ``PROMETHEUS_MULTIPROC_DIR`` is set
before Python starts: every process writes its samples to files there, and a scrape merges them with
prometheus_client's ``MultiProcessCollector``. Without it (runserver, tests, one process) the default
registry is served. Either way two series are computed at scrape time rather than recorded: the Celery
queue lengths and whether the broker answered.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterable, Iterator

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def clean_multiprocess_dir(path: str, keep_pids: Iterable[int] = ()) -> int:
    """Remove sample files left by earlier runs (whose pids may be reused); returns how many were removed.

    Called by the Celery worker's ``worker_init`` before its pool forks (deploy/gunicorn.conf.py does the same
    in ``on_starting``, without importing Django into the master).
    """
    os.makedirs(path, exist_ok=True)
    keep = {str(pid) for pid in keep_pids}
    removed = 0
    for name in glob.glob(os.path.join(path, "*.db")):
        pid = os.path.basename(name).rsplit("_", 1)[-1].removesuffix(".db")
        if pid not in keep:
            os.remove(name)
            removed += 1
    return removed


class QueueLengthCollector(Collector):
    """``sigma_celery_queue_length{queue}`` and ``sigma_celery_broker_up``, asked of the broker at scrape time.

    A gauge set by a task would freeze exactly when the queue backs up; asking the broker cannot.
    """

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from monitoring import queues

        lengths, up = queues.queue_lengths()
        family = GaugeMetricFamily(
            "sigma_celery_queue_length", "Messages waiting in each Celery queue.", labels=["queue"]
        )
        for queue, length in sorted(lengths.items()):
            family.add_metric([queue], length)
        yield family
        yield GaugeMetricFamily(
            "sigma_celery_broker_up",
            "1 when the Celery broker answered the last scrape.",
            value=1 if up else 0,
        )


def web_registries() -> list[CollectorRegistry]:
    """What one scrape of ``/metrics`` reads: the samples (merged across processes in multiprocess mode) and
    a registry of the scrape-time collectors, kept off the default registry so that reading a sample
    elsewhere (``REGISTRY.get_sample_value``) never asks the broker."""
    scrape_time = CollectorRegistry()
    scrape_time.register(QueueLengthCollector())
    path = multiprocess_dir()
    if not path:
        return [REGISTRY, scrape_time]
    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged, path=path)
    return [merged, scrape_time]


def web_exposition() -> bytes:
    return b"".join(generate_latest(registry) for registry in web_registries())


class WorkerQueuesCollector(Collector):
    """``sigma_celery_worker_queue{queue}``: 1 for each queue this worker consumes (its ``-Q``).

    Summed over the workers Prometheus scrapes, it is the number of workers per queue; a queue with messages
    and no worker is what the CeleryQueueUnconsumed alert looks for (a worker started without a queue, or a
    queue added to CELERY_TASK_ROUTES that no worker command names yet).
    """

    def __init__(self, queues: Iterable[str]) -> None:
        self.queues = sorted(set(queues))

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "sigma_celery_worker_queue", "1 for each Celery queue this worker consumes.", labels=["queue"]
        )
        for queue in self.queues:
            family.add_metric([queue], 1)
        yield family


class _RegistryCollector(Collector):
    """Another registry's samples, served beside this registry's own collectors."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self.registry.collect()


def worker_registry(queues: Iterable[str] = ()) -> CollectorRegistry:
    """The registry a Celery worker's metrics port serves: its pool processes' samples (merged in multiprocess
    mode), and the queues it consumes."""
    registry = CollectorRegistry()
    path = multiprocess_dir()
    if path:
        multiprocess.MultiProcessCollector(registry, path=path)
    else:
        registry.register(_RegistryCollector(REGISTRY))
    registry.register(WorkerQueuesCollector(queues))
    return registry
