"""monitoring.web_metrics: the web processes' counters read from the directory gunicorn writes, from any
process; the quantile interpolation; the capacity sampler and the diagnosis reading them."""

from __future__ import annotations

import urllib.error
from datetime import timedelta

import pytest
from django.utils import timezone

from monitoring import web_metrics
from monitoring.capacity import services as capacity_services
from monitoring.diagnosis import readings
from monitoring.web_metrics import WebCounters, histogram_quantile
from tests.monitoring.helpers import fetch, gunicorn_serving


def test_histogram_quantile_interpolates_as_prometheus_does():
    buckets = {"0.1": 50.0, "0.5": 90.0, "1.0": 100.0, "+Inf": 100.0}
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.7, buckets) == pytest.approx(0.3)  # 0.1 + 0.4 * (70 - 50) / 40
    assert histogram_quantile(0.95, buckets) == pytest.approx(0.75)
    assert histogram_quantile(0.99, {"0.1": 1.0, "+Inf": 10.0}) == 0.1  # in +Inf: the highest finite bound
    assert histogram_quantile(0.95, {"0.1": 0.0, "+Inf": 0.0}) is None
    assert histogram_quantile(0.95, {}) is None


def test_a_reading_since_another_and_a_restart():
    before = WebCounters(10, 1, {"0.1": 8, "+Inf": 10}, 5, 5)
    now = WebCounters(30, 2, {"0.1": 20, "+Inf": 30}, 25, 10)
    diff = now.since(WebCounters.from_dict(before.as_dict()))
    assert (diff.responses, diff.errors, diff.buckets, diff.cache_hits, diff.cache_misses) == (
        20,
        1,
        {"0.1": 12, "+Inf": 20},
        20,
        5,
    )
    assert WebCounters(3, 0, {"+Inf": 3}).since(before) is None  # counters went down: the web restarted


def get(url: str) -> None:
    try:
        fetch(url)
    except urllib.error.HTTPError as exc:
        assert exc.code == 404


@pytest.mark.slow
@pytest.mark.django_db
def test_a_worker_reads_the_web_processes_merged_counters(tmp_path, settings, monkeypatch):
    """gunicorn (two workers) writes its directory; a Celery pool process (this one, marked so) samples
    request rate, p95 and the hit ratio from it, and scrapes and probes are not in them."""
    from sigma_playground.telemetry import process

    metrics_dir = tmp_path / "prometheus-web"
    env = {
        "WEB_CONCURRENCY": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "SQLITE_PATH": str(tmp_path / "db.sqlite3"),
    }
    settings.PROMETHEUS_URL = ""
    settings.PROMETHEUS_WEB_MULTIPROC_DIR = str(metrics_dir)
    monkeypatch.setattr(process, "in_celery_worker", lambda: True)
    now = timezone.now()
    with gunicorn_serving(env) as (base, _):
        for _ in range(4):
            get(base + "/no/such/page/")
        first = capacity_services.capacity_sample_take(now=now - timedelta(seconds=30))
        assert "merged from" in first.notes["requests"] and first.request_rate is None
        for _ in range(12):
            get(base + "/no/such/page/")
        for path in ("/healthz", "/metrics", "/healthz"):
            fetch(base + path)
        counters = web_metrics.read()
        second = capacity_services.capacity_sample_take(now=now)
    assert counters.responses == 16 and counters.errors == 0
    assert second.request_rate == pytest.approx(12 / 30)
    assert second.latency_p95_ms is not None and second.latency_p95_ms > 0
    assert f"merged from {metrics_dir}" in second.notes["requests"]
    assert "over the last 30 s" in second.notes["requests"]
    assert "requests" not in second.missing
    state = readings.cache_state()
    assert "merged from" in state.source and state.missing == ""


def test_an_empty_web_directory_says_so(tmp_path, settings, monkeypatch):
    from sigma_playground.telemetry import process

    monkeypatch.setattr(process, "in_celery_worker", lambda: True)
    settings.PROMETHEUS_WEB_MULTIPROC_DIR = str(tmp_path)
    with pytest.raises(web_metrics.Unavailable, match="holds no samples yet"):
        web_metrics.read()
