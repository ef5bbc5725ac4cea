"""Celery queues per workload (issue 20, section 4): each task routed in one place (settings.CELERY_TASK_ROUTES),
every queue consumed by the documented worker commands, and, with one real worker per queue, a flood on
``media`` delays nothing on ``counters``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test import Client

from sigma_playground.celery import app
from tests.factories import UserFactory, WorkbookFactory
from tests.monitoring.helpers import fetch, free_port, scrape
from workbooks import counters, tasks

ROOT = Path(settings.BASE_DIR)

# Every task of the site and the queue of its workload (README "Celery").
EXPECTED_QUEUE = {
    "workbooks.tasks.flush_views": "counters",
    "workbooks.tasks.recount_counters": "counters",
    "workbooks.tasks.render_thumbnail_derivatives": "media",
    "workbooks.tasks.capture_embed_preview": "media",
    "workbooks.tasks.render_pending_thumbnails": "media",
    "workbooks.tasks.refresh_embed_previews": "media",
    "workbooks.tasks.sweep_orphan_masters": "media",
    "monitoring.tasks.capacity_sample": "reports",
    "monitoring.tasks.capacity_retention": "reports",
    "monitoring.tasks.capacity_report": "reports",
    "workbooks.tasks.recompute_trending": "reports",
    "workbooks.tasks.refresh_search_lexemes": "reports",
    "workbooks.tasks.warm_cache": "celery",
    "workbooks.tasks.check_embed_links": "celery",
    "monitoring.tasks.beat_heartbeat": "celery",
    "notifications.tasks.notify_new_follower": "celery",
    "notifications.tasks.notify_favorite": "celery",
    "notifications.tasks.notify_embed_link": "celery",
    "notifications.tasks.fan_out_new_workbook": "celery",
    "notifications.tasks.send_digests": "celery",
    "notifications.tasks.cleanup_notifications": "celery",
    "accounts.tasks.clear_expired_sessions": "celery",
    "sigma_playground.cdn.tasks.purge_pending": "celery",
    "sigma_playground.cdn.tasks.purge_keys": "celery",
}
OUR_MODULES = ("accounts.", "workbooks.", "notifications.", "monitoring.", "sigma_playground.")


def queue_of(task_name: str) -> str:
    return app.amqp.router.route({}, task_name)["queue"].name


def test_every_task_goes_to_the_queue_of_its_workload():
    app.loader.import_default_modules()
    ours = {name for name in app.tasks if name.startswith(OUR_MODULES)}
    assert ours == set(EXPECTED_QUEUE), "a task was added or removed: give it a queue here and in README"
    assert {name: queue_of(name) for name in ours} == EXPECTED_QUEUE
    assert set(EXPECTED_QUEUE.values()) == set(settings.WORKER_QUEUES)


def test_the_beat_schedule_only_names_routed_tasks():
    """Beat publishes; where each periodic job runs is the route's business (it is one of the tasks above)."""
    assert {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()} <= set(EXPECTED_QUEUE)
    assert not any("queue" in entry.get("options", {}) for entry in settings.CELERY_BEAT_SCHEDULE.values())


def test_every_queue_is_consumed_by_the_documented_commands():
    """`make worker` (development) and `make stack` consume every queue (the fault suite's worker reads
    settings.WORKER_QUEUES itself); production has one `make worker-<name>` per queue, and the README shows
    each command."""
    queues = list(settings.WORKER_QUEUES)
    makefile = (ROOT / "Makefile").read_text()
    (make_all,) = re.findall(r"^WORKER_QUEUES := (\S+)$", makefile, re.M)
    assert make_all.split(",") == queues
    assert "-Q $(WORKER_QUEUES)" in makefile
    from deploy import stack

    assert stack.WORKER_QUEUES.split(",") == queues
    readme = (ROOT / "README.md").read_text()
    for queue in queues:
        target = "default" if queue == settings.CELERY_TASK_DEFAULT_QUEUE else queue
        block = re.search(rf"^worker-{target}: venv\n((?:\t.*\n)+)", makefile, re.M)
        assert block, f"no `make worker-{target}`"
        assert re.search(rf"-Q {queue} -n {target}@%h ", block.group(1)), block.group(1)
        assert f"make worker-{target}" in readme


# --- One real worker per queue ----------------------------------------------------------------------------

FLOOD = 50  # slow tasks on media
FLOOD_TASK_SECONDS = 0.3  # each: the flood takes 15 s at least, with one media worker of one child


def _start_worker(queue: str, env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    """A worker as README "Celery" runs it in production: its queue only, prefork, its metrics port."""
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "sigma_playground", "worker", "-Q", queue,
         "-n", f"{queue}-{uuid.uuid4().hex[:6]}@%h", "--pool=prefork", "--concurrency=1",
         "--include=tests.worker_tasks", "--without-gossip", "--without-mingle", "--without-heartbeat",
         "--loglevel=INFO"],
        cwd=ROOT,
        env={**env, "CELERY_METRICS_PORT": str(port), "CELERY_METRICS_ADDR": "127.0.0.1"},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip


def _wait(what: str, check, seconds: float, workers: dict[str, subprocess.Popen], logs: Path):
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        for queue, worker in workers.items():
            if worker.poll() is not None:
                pytest.fail(f"the {queue} worker exited:\n{(logs / f'{queue}.log').read_text()[-3000:]}")
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {q}\n{(logs / f'{q}.log').read_text()[-1500:]}" for q in workers)
            pytest.fail(f"{what}: not within {seconds:.0f} s\n{tails}")
        time.sleep(0.05)


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_flood_on_media_delays_nothing_on_counters(tmp_path):
    """Four workers, one per queue, on the Redis broker. 50 slow tasks land on `media`, then a view flush is
    queued as beat queues it (routed to `counters`): the flush is done while most of the flood still waits,
    in a small fraction of the flood's time. Routed to `media` instead, it would wait for the whole flood."""
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    results = redis.Redis.from_url(settings.REDIS_URL)
    broker.delete(*settings.WORKER_QUEUES)
    tag = uuid.uuid4().hex[:8]
    where_key, flood_key = f"test:where:{tag}", f"test:flood:{tag}"
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "PYTHONUNBUFFERED": "1",
    }
    if settings.DATABASE_POOLER != "pgbouncer":  # behind PgBouncer there is no pool of ours to size
        env.update({"DB_POOL_MIN_SIZE": "1", "DB_POOL_MAX_SIZE": "1"})
    workbook = WorkbookFactory(author=UserFactory())
    for n in range(5):
        counters.record_view(workbook_id=workbook.pk, visitor=f"flood-test-{n}")
    counters.send_process_views()

    ports = {queue: free_port() for queue in settings.WORKER_QUEUES}
    workers: dict[str, subprocess.Popen] = {}
    try:
        for queue in settings.WORKER_QUEUES:
            workers[queue] = _start_worker(queue, env, ports[queue], tmp_path / f"{queue}.log")

        def consuming(queue: str) -> set[str] | None:
            try:
                samples = scrape(fetch(f"http://127.0.0.1:{ports[queue]}/metrics"))
            except OSError:
                return None
            return {s.labels["queue"] for s in samples.get("sigma_celery_worker_queue", [])}

        # Each worker says on its metrics port which queue it consumes, and takes a task sent to it.
        for queue in settings.WORKER_QUEUES:
            assert _wait(f"{queue} metrics", lambda q=queue: consuming(q), 120, workers, tmp_path) == {queue}
        app.conf.task_always_eager = False
        try:
            for queue in settings.WORKER_QUEUES:
                app.send_task("tests.worker_tasks.where", args=[where_key], queue=queue)
            seen = _wait(
                "a task on every queue",
                lambda: len(got := results.lrange(where_key, 0, -1)) == len(workers) and got,
                120,
                workers,
                tmp_path,
            )
            by_queue = dict(item.decode().split(" ", 1) for item in seen)
            assert set(by_queue) == set(settings.WORKER_QUEUES)
            assert all(host.startswith(f"{queue}-") for queue, host in by_queue.items()), by_queue

            flood_started = time.monotonic()
            for _ in range(FLOOD):
                app.send_task("tests.worker_tasks.slow", args=[FLOOD_TASK_SECONDS, flood_key], queue="media")
            flush_sent = time.monotonic()
            tasks.flush_views.delay()  # routed to `counters` by CELERY_TASK_ROUTES, as beat sends it

            def flushed() -> bool:
                workbook.refresh_from_db(fields=["view_count"])
                return workbook.view_count == 5

            _wait("the view flush", flushed, 120, workers, tmp_path)
            flush_seconds = time.monotonic() - flush_sent
            media_waiting = broker.llen("media")
            flood_done_at_flush = results.llen(flood_key)
            # The per-queue metric (asked of the broker at scrape time) sees the same.
            metrics = scrape(Client().get("/metrics").content.decode())
            lengths = {s.labels["queue"]: s.value for s in metrics["sigma_celery_queue_length"]}
            _wait(
                "the flood",
                lambda: results.llen(flood_key) == FLOOD,
                FLOOD * FLOOD_TASK_SECONDS * 10 + 60,
                workers,
                tmp_path,
            )
            flood_seconds = time.monotonic() - flood_started
        finally:
            app.conf.task_always_eager = True
    finally:
        for worker in workers.values():
            worker.terminate()
        for worker in workers.values():
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
        broker.delete(*settings.WORKER_QUEUES)
        results.delete(where_key, flood_key)
    print(
        f"flood of {FLOOD} x {FLOOD_TASK_SECONDS} s on media: {flood_seconds:.1f} s; the view flush on "
        f"{queue_of('workbooks.tasks.flush_views')} was done {flush_seconds * 1000:.0f} ms after it was queued, with {flood_done_at_flush} of the flood "
        f"done and {media_waiting} still waiting on media"
    )
    assert flush_seconds < flood_seconds / 4
    assert media_waiting >= FLOOD // 2 and flood_done_at_flush <= FLOOD // 2
    assert lengths == {"celery": 0, "counters": 0, "media": lengths["media"], "reports": 0}
    assert 0 < lengths["media"] <= media_waiting
