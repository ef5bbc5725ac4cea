"""The per-process metric batch publishes exactly what direct calls would have."""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from sigma_playground.telemetry.batched import MetricBatch

VALUES = [0.0, 0.004, 0.005, 0.0051, 0.2, 0.2, 0.75, 1.0, 29.9, 30.0, 31.0, 1e9]
BUCKETS = (0.005, 0.01, 0.2, 0.5, 1.0, 30.0)


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


def _metrics(registry: CollectorRegistry) -> tuple[Counter, Histogram, Histogram]:
    return (
        Counter("t_hits", "hits", ["view"], registry=registry),
        Histogram("t_latency", "latency", ["view"], buckets=BUCKETS, registry=registry),
        Histogram("t_size", "size", buckets=BUCKETS, registry=registry),
    )


@pytest.fixture
def batch(settings) -> MetricBatch:
    settings.METRICS_BATCH_SECONDS = 3600
    return MetricBatch()


def test_a_published_batch_equals_direct_observations(batch):
    direct, batched = CollectorRegistry(), CollectorRegistry()
    d_hits, d_latency, d_size = _metrics(direct)
    b_hits, b_latency, b_size = _metrics(batched)
    for i, value in enumerate(VALUES):
        view = "a" if i % 3 else "b"
        d_hits.labels(view).inc()
        d_latency.labels(view).observe(value)
        d_size.observe(value * 1000)
        batch.record([(b_hits, (view,), 1)], [(b_latency, (view,), value), (b_size, (), value * 1000)])
    batch.inc(b_hits, ("a",), 2.5)
    d_hits.labels("a").inc(2.5)
    assert _samples(batched) != _samples(direct)  # nothing published yet
    batch.flush()
    assert _samples(batched) == _samples(direct)
    batch.flush()  # an empty batch adds nothing
    assert _samples(batched) == _samples(direct)


def test_the_thread_publishes_within_the_interval(batch, settings):
    registry = CollectorRegistry()
    hits, _, _ = _metrics(registry)
    settings.METRICS_BATCH_SECONDS = 0.2
    batch.inc(hits, ("a",))
    deadline = time.monotonic() + 10
    while registry.get_sample_value("t_hits_total", {"view": "a"}) != 1.0:
        assert time.monotonic() < deadline, "the batch thread never published"
        time.sleep(0.05)


def test_zero_seconds_publishes_at_once(batch, settings):
    registry = CollectorRegistry()
    hits, latency, _ = _metrics(registry)
    settings.METRICS_BATCH_SECONDS = 0
    batch.inc(hits, ("a",))
    batch.observe(latency, ("a",), 0.3)
    assert registry.get_sample_value("t_hits_total", {"view": "a"}) == 1.0
    assert registry.get_sample_value("t_latency_bucket", {"view": "a", "le": "0.5"}) == 1.0


def test_a_declared_batched_counter_waits_for_the_batch_and_folds_labels(settings):
    from sigma_playground.telemetry import metrics
    from sigma_playground.telemetry.batched import BATCH
    from tests.monitoring.helpers import sample

    settings.METRICS_BATCH_SECONDS = 3600
    cache_requests = metrics.get("sigma_cache_requests_total")
    assert cache_requests.batched and not metrics.get("sigma_views_total").batched
    labels = {"kind": "other", "result": "hit"}
    BATCH.flush()
    before = sample("sigma_cache_requests_total", labels)
    cache_requests.inc(kind="no-such-kind!", result="hit")
    cache_requests.inc(kind="no-such-kind!", result="hit")
    assert sample("sigma_cache_requests_total", labels) == before
    BATCH.flush()
    assert sample("sigma_cache_requests_total", labels) == before + 2
