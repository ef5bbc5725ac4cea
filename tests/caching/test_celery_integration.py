"""A real Celery worker and a real beat, as separate processes against Redis and PostgreSQL, run the view
flush and the cache warming on their own schedule."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.urls import reverse

from sigma_playground.caching import keys, service
from tests.factories import UserFactory, WorkbookFactory
from workbooks import counters

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "sigma_playground", *args],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def page_cached(path: str) -> bool:
    """Is the anonymous page in the cache? Looked up directly: a GET from here would cache it itself."""
    gens, entry = service.get_entry_with_generations(
        keys.KIND_PAGE, keys.page("home", path, secure=False), [keys.LISTS]
    )
    return entry is not None and entry.value["generations"] == gens


def test_worker_and_beat_flush_views_and_warm_the_cache(tmp_path):
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "VIEW_FLUSH_SECONDS": "1",
        "CACHE_WARM_SECONDS": "2",
        "DB_POOL_MIN_SIZE": "1",
        "DB_POOL_MAX_SIZE": "2",
    }
    workbook = WorkbookFactory(author=UserFactory(), is_featured=True)
    for _ in range(30):
        counters.record_view(workbook_id=workbook.pk)
    assert counters.pending_views() == 30

    worker = start(
        # Every queue, as `make worker`: the flush is on `counters`, the warming on the default queue.
        [
            "worker",
            "-Q",
            ",".join(settings.WORKER_QUEUES),
            "--pool=solo",
            "--purge",
            "--without-gossip",
            "--without-mingle",
            "--loglevel=INFO",
        ],
        env,
        tmp_path / "worker.log",
    )
    beat = start(
        ["beat", "--loglevel=INFO", "--schedule", str(tmp_path / "beat.db")], env, tmp_path / "beat.log"
    )
    try:
        deadline = time.monotonic() + 90
        flushed = warmed = False
        while time.monotonic() < deadline and not (flushed and warmed):
            time.sleep(1)
            workbook.refresh_from_db()
            flushed = workbook.view_count == 30
            warmed = warmed or page_cached(reverse("home"))
            assert worker.poll() is None and beat.poll() is None, "a Celery process exited"
    finally:
        for process in (beat, worker):
            process.terminate()
        for process in (beat, worker):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
    logs = (tmp_path / "worker.log").read_text() + (tmp_path / "beat.log").read_text()
    assert flushed, "views were not flushed by the worker\n" + logs[-3000:]
    assert warmed, "the home page was not warmed by the worker\n" + logs[-3000:]
    assert "workbooks.tasks.flush_views" in logs and "workbooks.tasks.warm_cache" in logs
    assert counters.pending_views() == 0
    assert Client().get(reverse("home")).get("X-Cache") == "hit"  # and visitors get the warmed page


def _wait_for(path: Path, text: str, seconds: float, *processes: subprocess.Popen) -> None:
    deadline = time.monotonic() + seconds
    while text not in (path.read_text() if path.exists() else ""):
        assert all(p.poll() is None for p in processes), f"a beat exited:\n{path.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"{text!r} not in {path.name}:\n{path.read_text()[-3000:]}"
        time.sleep(0.3)


def test_a_second_beat_stands_by_and_takes_over_when_the_first_stops(tmp_path):
    """Issue 12: two beats used to send every periodic task twice. The second one now says another beat holds
    the lock, sends nothing, and takes over once the first stops."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "VIEW_FLUSH_SECONDS": "1",
        "BEAT_LOCK_SECONDS": "3",
        "DB_POOL_MIN_SIZE": "1",
        "DB_POOL_MAX_SIZE": "1",
    }
    first_log, second_log = tmp_path / "beat1.log", tmp_path / "beat2.log"
    first = start(["beat", "--loglevel=INFO"], env, first_log)
    second = None
    try:
        _wait_for(first_log, "acquired the beat lock", 60, first)
        second = start(["beat", "--loglevel=INFO"], env, second_log)
        _wait_for(second_log, "another beat holds the beat lock", 60, first, second)
        time.sleep(3)  # three flush-views periods
        assert "Sending due task" in first_log.read_text()
        assert "Sending due task" not in second_log.read_text()
        first.terminate()
        first.wait(timeout=20)
        assert "released the beat lock" in first_log.read_text()
        started = time.monotonic()
        _wait_for(second_log, "acquired the beat lock", 15, second)
        _wait_for(second_log, "Sending due task", 15, second)
        print(f"the standby beat took over {time.monotonic() - started:.1f} s after the first one stopped")
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
