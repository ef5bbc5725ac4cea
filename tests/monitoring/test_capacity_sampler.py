"""The capacity sampler: every source, missing sources, rates from counters, the real services, the task."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import psutil
import pytest
from django.core.cache import cache, caches
from django.db import connection
from django.utils import timezone

from monitoring import tasks
from monitoring.capacity import sampler
from monitoring.capacity import services as capacity_services
from monitoring.models import CapacitySample
from tests.test_health import CLOSED_PORT_REDIS

pytestmark = pytest.mark.django_db

MACHINE = ("cpu_percent", "memory_percent", "memory_used_bytes", "disk_percent", "disk_used_bytes")
REDIS_FIELDS = (
    "redis_used_memory_bytes",
    "redis_max_memory_bytes",
    "redis_memory_percent",
    "cache_hit_ratio",
)


def test_a_sample_reads_every_source_and_says_how():
    sample = capacity_services.capacity_sample_take()
    stored = CapacitySample.objects.get(pk=sample.pk)
    for name in MACHINE:
        assert getattr(stored, name) is not None, name
    assert 0 <= stored.cpu_percent <= 100 and 0 < stored.memory_percent < 100
    assert stored.db_size_bytes > 0
    assert set(stored.table_rows) >= {"workbooks_workbook", "accounts_user"}
    assert stored.queue_length is not None and stored.queue_length >= 0
    assert set(stored.notes) == set(sampler.READERS)  # every source says how it was read, or why not
    assert set(stored.missing) <= {"db_connections", "redis", "requests"}
    if connection.vendor == "sqlite":
        assert "db_connections" in stored.missing and stored.db_connections is None
        assert "sqlite" in stored.notes["db_connections"]


def test_the_next_sample_turns_counters_into_rates():
    now = timezone.now()
    first = capacity_services.capacity_sample_take(now=now - timedelta(seconds=60))
    assert first.net_in_bytes_per_s is None and "next sample" in first.notes["network"]
    # CPU times advance in clock ticks (10 ms): wait for the next tick, as a minute between samples would.
    start = sum(psutil.cpu_times())
    deadline = time.monotonic() + 5
    while sum(psutil.cpu_times()) <= start + 0.02 and time.monotonic() < deadline:
        time.sleep(0.01)
    second = capacity_services.capacity_sample_take(now=now)
    assert second.net_in_bytes_per_s >= 0 and second.net_out_bytes_per_s >= 0
    assert second.notes["cpu"] == "psutil CPU times since the previous sample"
    assert "over the last 60 s" in second.notes["network"]


def test_counters_from_another_host_or_too_long_ago_make_no_rate(monkeypatch):
    now = timezone.now()
    CapacitySample.objects.create(
        taken_at=now - timedelta(hours=2),
        host=sampler.socket.gethostname()[:100],
        counters={"net": {"recv": 0, "sent": 0}},
    )
    sample = capacity_services.capacity_sample_take(now=now)
    assert sample.net_in_bytes_per_s is None
    assert "no recent previous sample" in sample.notes["cpu"]


def test_a_failing_source_is_recorded_as_missing_and_the_rest_is_stored(monkeypatch, caplog):
    def broken():
        raise RuntimeError("psutil exploded")

    monkeypatch.setattr(psutil, "virtual_memory", broken)
    with caplog.at_level(logging.WARNING, logger="monitoring.capacity.sampler"):
        sample = capacity_services.capacity_sample_take()
    stored = CapacitySample.objects.get(pk=sample.pk)
    assert "memory" in stored.missing and stored.notes["memory"] == "RuntimeError: psutil exploded"
    assert stored.memory_percent is None and stored.memory_total_bytes is None
    assert stored.cpu_percent is not None and stored.disk_percent is not None and stored.db_size_bytes
    assert "source memory failed" in caplog.text


def test_a_source_failing_half_way_leaves_none_of_its_fields(monkeypatch):
    def half(sample, previous):
        sample.db_size_bytes = 123
        raise OSError("disk gone")

    monkeypatch.setitem(sampler.READERS, "db_size", half)
    sample = capacity_services.capacity_sample_take()
    assert sample.db_size_bytes is None and sample.table_rows == {} and "db_size" in sample.missing


def test_with_redis_down_the_sample_is_stored_with_the_redis_fields_missing(settings):
    settings.CACHES = CLOSED_PORT_REDIS
    try:
        started = time.perf_counter()
        sample = capacity_services.capacity_sample_take()
        elapsed = time.perf_counter() - started
    finally:
        caches["default"].close()
    stored = CapacitySample.objects.get(pk=sample.pk)
    assert "redis" in stored.missing
    for name in REDIS_FIELDS:
        assert getattr(stored, name) is None, name
    assert "ConnectionError" in stored.notes["redis"]
    # The hit ratio is of the site's own lookups (monitoring.web_metrics), not Redis's: still read.
    assert "sigma_cache_requests_total" in stored.notes["cache_hit_ratio"]
    for name in MACHINE:
        assert getattr(stored, name) is not None, name
    assert stored.db_size_bytes > 0
    assert elapsed < 5, "a dead Redis must not hold the sampler up"


def test_the_task_stores_a_sample_and_never_raises(monkeypatch, caplog):
    pk = tasks.capacity_sample.delay().get()
    assert CapacitySample.objects.filter(pk=pk).exists()

    def refuse(self, *args, **kwargs):
        raise RuntimeError("database refused the row")

    monkeypatch.setattr(CapacitySample, "save", refuse)
    with caplog.at_level(logging.ERROR, logger="monitoring.tasks"):
        assert tasks.capacity_sample.delay().get() is None
    assert "the sample could not be stored" in caplog.text


def test_requests_since_the_previous_sample_in_a_single_process_site(client, settings):
    settings.PROMETHEUS_URL = ""
    now = timezone.now()
    first = capacity_services.capacity_sample_take(now=now - timedelta(seconds=60))
    assert first.request_rate is None and "the rate starts with the next sample" in first.notes["requests"]
    for _ in range(3):
        client.get("/")
    client.get("/healthz")  # a probe: not traffic
    sample = capacity_services.capacity_sample_take(now=now)
    assert sample.request_rate == pytest.approx(3 / 60) and sample.latency_p95_ms is not None
    assert "single-process" in sample.notes["requests"] and "over the last 60 s" in sample.notes["requests"]


def test_in_a_celery_worker_without_the_web_directory_requests_are_missing_with_the_reason(
    client, settings, monkeypatch
):
    """Never the pool process's own numbers (warming's traffic, or nothing)."""
    from sigma_playground.telemetry import process

    settings.PROMETHEUS_URL = ""
    monkeypatch.setattr(process, "in_celery_worker", lambda: True)
    client.get("/")
    sample = capacity_services.capacity_sample_take()
    assert {"requests", "cache_hit_ratio"} <= set(sample.missing)
    assert sample.request_rate is None and sample.latency_p95_ms is None
    assert "no web metrics directory" in sample.notes["requests"]
    assert "PROMETHEUS_WEB_MULTIPROC_DIR" in sample.notes["requests"]


def test_requests_and_hit_ratio_from_prometheus_when_it_is_set(fake_prometheus):
    fake_prometheus.answers = {
        "histogram_quantile(0.95": "0.75",
        'result="hit"': "900",
        'result="miss"': "100",
        'status=~"5.."': "0",
        "increase(django_http": "12000",
    }
    sample = capacity_services.capacity_sample_take()
    assert sample.request_rate == pytest.approx(40.0) and sample.latency_p95_ms == pytest.approx(750.0)
    assert sample.notes["requests"].startswith("Prometheus at http://127.0.0.1")
    assert sample.cache_hit_ratio == pytest.approx(0.9)
    assert "from Prometheus" in sample.notes["cache_hit_ratio"]


# --- The real services -------------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_on_postgresql_the_sampler_reads_real_connection_counts_size_and_rows(settings):
    from tests.factories import WorkbookFactory

    WorkbookFactory.create_batch(5)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE workbooks_workbook")
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")
        (clients,) = cursor.fetchone()
        cursor.execute("SHOW max_connections")
        (max_connections,) = cursor.fetchone()
        cursor.execute("SELECT pg_database_size(current_database())")
        (size,) = cursor.fetchone()
    sample = capacity_services.capacity_sample_take()
    assert "db_connections" not in sample.missing and "db_size" not in sample.missing
    assert sample.db_connections >= 1 and abs(sample.db_connections - clients) <= 3
    assert sample.db_max_connections == int(max_connections)
    assert sample.db_connections_active >= 1  # the sampler's own statement
    if settings.DATABASE_POOLER == "pgbouncer":  # `make test-pgbouncer`: no pool in this process
        assert sample.db_pool_max is None and sample.db_pool_in_use is None
        assert "PgBouncer" in sample.notes["db_connections"]
    else:
        assert sample.db_pool_max is not None and sample.db_pool_in_use is not None
    assert sample.db_size_bytes == pytest.approx(size, rel=0.1)
    assert sample.table_rows["workbooks_workbook"] == 5
    assert "pg_class.reltuples" in sample.notes["db_size"]


@pytest.mark.redis
def test_on_redis_the_sampler_reads_used_memory_maxmemory_and_the_hit_ratio():
    from sigma_playground.telemetry.instruments import CACHE_REQUESTS

    client = cache.client.get_client(write=False)
    info = client.info()
    expected_limit = int(info["maxmemory"]) or int(info["total_system_memory"])
    now = timezone.now()
    capacity_services.capacity_sample_take(now=now - timedelta(seconds=60))
    for _ in range(30):  # the caching layer's lookups, as the site's pages make them
        CACHE_REQUESTS.inc(kind="page", result="hit")
        CACHE_REQUESTS.inc(kind="page", result="miss")
    sample = capacity_services.capacity_sample_take(now=now)
    assert "redis" not in sample.missing and "cache_hit_ratio" not in sample.missing
    assert sample.redis_used_memory_bytes == pytest.approx(int(client.info("memory")["used_memory"]), rel=0.5)
    assert sample.redis_max_memory_bytes == expected_limit
    assert sample.redis_memory_percent == pytest.approx(
        sample.redis_used_memory_bytes / expected_limit * 100, rel=1e-3
    )
    assert sample.cache_hit_ratio == pytest.approx(0.5)  # 30 hits and 30 misses since the previous sample
    assert "over the last 60 s" in sample.notes["cache_hit_ratio"]
    assert sample.queue_length is not None and sample.notes["queue"].startswith("broker:")
