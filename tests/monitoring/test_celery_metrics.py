"""Celery: task metrics, the beat heartbeat, and workers serving their own metrics on a port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import uuid
import warnings
from pathlib import Path

import pytest
from celery.exceptions import AlwaysEagerIgnored
from django.conf import settings
from django.core.cache import cache

from monitoring import tasks as monitoring_tasks
from sigma_playground.caching import keys
from tests.monitoring.helpers import fetch, free_port, sample, scrape, stop_gracefully, wait_until_serving

ROOT = Path(settings.BASE_DIR)


def test_task_runs_are_counted_and_timed_by_name_and_state():
    labels = {"task": "monitoring.tasks.beat_heartbeat", "state": "success"}
    before = sample("sigma_celery_tasks_total", labels)
    duration_before = sample(
        "sigma_celery_task_duration_seconds_count", {"task": "monitoring.tasks.beat_heartbeat"}
    )
    monitoring_tasks.beat_heartbeat.delay()
    assert sample("sigma_celery_tasks_total", labels) == before + 1
    assert (
        sample("sigma_celery_task_duration_seconds_count", {"task": "monitoring.tasks.beat_heartbeat"})
        == duration_before + 1
    )


def test_a_failing_task_is_counted_as_a_failure(monkeypatch):
    labels = {"task": "monitoring.tasks.beat_heartbeat", "state": "failure"}
    before = sample("sigma_celery_tasks_total", labels)

    def broken(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(monitoring_tasks.cache, "set", broken)
    # As a worker runs it (errors are not propagated to a caller); eager propagation skips Celery's signals.
    result = monitoring_tasks.beat_heartbeat.apply(throw=False)
    assert result.state == "FAILURE"
    assert sample("sigma_celery_tasks_total", labels) == before + 1


def test_the_heartbeat_records_a_timestamp_in_the_cache_and_a_gauge():
    started = time.time()
    stamp = (
        monitoring_tasks.beat_heartbeat.delay().result
    )  # EagerResult: .get() refuses in a process a worker test marked
    assert started <= stamp <= time.time()
    assert cache.get(keys.beat_heartbeat()) == stamp
    assert sample("sigma_celery_beat_heartbeat_timestamp_seconds") == stamp


def test_beat_schedules_the_heartbeat_every_minute():
    entry = settings.CELERY_BEAT_SCHEDULE["monitoring-beat-heartbeat"]
    assert entry["task"] == "monitoring.tasks.beat_heartbeat" and entry["schedule"] == 60.0
    assert entry["options"]["expires"] < 60


def test_worker_init_serves_the_workers_metrics_on_its_port(settings):
    from monitoring import celery_signals

    port = free_port()
    settings.CELERY_METRICS_PORT = port
    settings.CELERY_METRICS_ADDR = "127.0.0.1"
    monitoring_tasks.beat_heartbeat.delay()
    celery_signals._start_metrics_server()
    server, _thread = celery_signals.metrics_server
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            samples = scrape(response.read().decode())
    finally:
        server.shutdown()
        server.server_close()
        celery_signals.metrics_server = None
    assert any(
        s.labels.get("task") == "monitoring.tasks.beat_heartbeat" for s in samples["sigma_celery_tasks_total"]
    )
    assert samples["sigma_celery_beat_heartbeat_timestamp_seconds"][0].value > 0


def test_without_a_port_the_worker_serves_nothing(settings):
    from monitoring import celery_signals

    settings.CELERY_METRICS_PORT = 0
    celery_signals._start_metrics_server()
    assert celery_signals.metrics_server is None


def test_cleaning_the_multiprocess_dir_keeps_only_the_given_pids(tmp_path):
    from monitoring.exposition import clean_multiprocess_dir

    tmp_path = tmp_path / "prometheus"
    tmp_path.mkdir()

    for name in (
        "counter_111.db",
        "histogram_111.db",
        "gauge_livesum_222.db",
        "gauge_max_333.db",
        "notes.txt",
    ):
        (tmp_path / name).write_text("x")
    assert clean_multiprocess_dir(str(tmp_path), keep_pids=[333]) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gauge_max_333.db", "notes.txt"]


@pytest.mark.redis
@pytest.mark.slow
def test_a_prefork_worker_serves_the_merged_metrics_of_its_pool(tmp_path):
    """A real `celery worker` (2 pool processes, Redis broker) in multiprocess mode: stale files are cleaned at
    start, tasks run in both children, and the main process's port serves their merged counts."""
    from sigma_playground.celery import app

    metrics_dir = tmp_path / "prometheus-celery"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"stale")
    port = free_port()
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "CELERY_METRICS_PORT": str(port),
        "CELERY_METRICS_ADDR": "127.0.0.1",
        "CELERY_SKIP_CHECKS": "1",
    }
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "sigma_playground",
            "worker",
            "--pool=prefork",
            "--concurrency=2",
            "-Q",
            queue,
            "--loglevel=WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        wait_until_serving(url, worker, "the Celery worker's metrics port")
        deadline = time.monotonic() + 60
        assert not (metrics_dir / "counter_999999.db").exists()
        with warnings.catch_warnings():  # the session's eager mode doesn't apply to send_task, as wanted here
            warnings.simplefilter("ignore", AlwaysEagerIgnored)
            for _ in range(8):
                app.send_task("monitoring.tasks.beat_heartbeat", queue=queue)
        labels = {"task": "monitoring.tasks.beat_heartbeat", "state": "success"}
        done = 0.0
        while time.monotonic() < deadline:
            samples = scrape(fetch(url))
            done = sum(s.value for s in samples.get("sigma_celery_tasks_total", []) if s.labels == labels)
            if done >= 8:
                break
            time.sleep(0.25)
        assert done == 8
        assert samples["sigma_celery_beat_heartbeat_timestamp_seconds"][0].value > time.time() - 120
        pids = {p.name.rsplit("_", 1)[-1] for p in metrics_dir.glob("counter_*.db")}
        assert len(pids) >= 1
    finally:
        stop_gracefully(worker)
