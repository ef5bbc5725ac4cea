"""Prometheus increments and observations collected in memory and published once a second per process.

Under gunicorn every ``inc`` and ``observe`` of prometheus_client's multiprocess mode takes a lock and writes
to a memory-mapped file; a cached page records about twenty of them, which cost more than serving the page
itself. Paths that run thousands of times a second (cache hits) add to this batch instead: a dictionary
update under one lock. A daemon thread publishes the sums every METRICS_BATCH_SECONDS (1 s by default),
and whatever is left when the process exits normally. Prometheus scrapes every 15 s or more, so a scrape
sees the same series and the same totals, at most one second later; a worker killed with SIGKILL loses its
last second of these samples. METRICS_BATCH_SECONDS=0 publishes each at once (the tests' default).

A histogram's observations are published as one addition per bucket and one to the sum: the same numbers
``observe`` would have written one at a time (tested against ``observe`` in tests/monitoring/test_batched.py,
because it reaches into prometheus_client's per-child ``_buckets`` and ``_sum``).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.conf import settings
from prometheus_client import Counter, Histogram

from sigma_playground.telemetry.process_buffer import ProcessBuffer

Labels = tuple[str, ...]


@dataclass
class _Batch:
    counts: defaultdict[tuple[Counter, Labels], float] = field(default_factory=lambda: defaultdict(float))
    observations: defaultdict[tuple[Histogram, Labels], list[float]] = field(
        default_factory=lambda: defaultdict(list)
    )


class MetricBatch(ProcessBuffer[_Batch]):
    thread_name = "metrics-batch"

    def empty(self) -> _Batch:
        return _Batch()

    def interval(self) -> float:
        return settings.METRICS_BATCH_SECONDS

    def inc(self, metric: Counter, labels: Labels = (), amount: float = 1) -> None:
        self.record([(metric, labels, amount)], [])

    def observe(self, metric: Histogram, labels: Labels, value: float) -> None:
        self.record([], [(metric, labels, value)])

    def record(
        self,
        counts: Sequence[tuple[Counter, Labels, float]],
        observations: Sequence[tuple[Histogram, Labels, float]],
    ) -> None:
        """Additions and observations under one lock (one request's worth)."""
        if self.interval() > 0:
            with self._lock:
                _add(self._claim(), counts, observations)
        else:  # METRICS_BATCH_SECONDS=0: published at once, as without the batch
            batch = _Batch()
            _add(batch, counts, observations)
            self.deliver(batch)

    def deliver(self, state: _Batch) -> None:
        for (metric, labels), amount in state.counts.items():
            (metric.labels(*labels) if labels else metric).inc(amount)
        for (histogram, labels), values in state.observations.items():
            _observe_many(histogram.labels(*labels) if labels else histogram, values)


def _add(
    batch: _Batch,
    counts: Sequence[tuple[Counter, Labels, float]],
    observations: Sequence[tuple[Histogram, Labels, float]],
) -> None:
    for metric, labels, amount in counts:
        batch.counts[metric, labels] += amount
    for histogram, labels, value in observations:
        batch.observations[histogram, labels].append(value)


def _observe_many(child: Histogram, values: list[float]) -> None:
    bounds = child._upper_bounds
    per_bucket = [0] * len(bounds)
    for value in values:
        per_bucket[bisect.bisect_left(bounds, value)] += 1  # the first bound >= value, as observe() picks
    child._sum.inc(sum(values))
    for index, count in enumerate(per_bucket):
        if count:
            child._buckets[index].inc(count)


BATCH = MetricBatch()
