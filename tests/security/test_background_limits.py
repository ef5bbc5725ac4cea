"""Costly background work is bounded (issue 13, section 6): thumbnail renders on their own queue with a time
limit, image uploads limited per user per hour, and the view flush runs while renders wait."""

from __future__ import annotations

import os
import time

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test import Client

from sigma_playground.celery import app
from tests.factories import UserFactory, WorkbookFactory
from tests.images import image_bytes, upload
from workbooks import counters, tasks
from workbooks.models import Workbook

EMBED = "https://app.sigmacomputing.com/embed/1-Limits"


def queue_of(task_name: str) -> str:
    return app.amqp.router.route({}, task_name)["queue"].name


def test_renders_go_to_the_media_queue_and_the_view_flush_to_counters():
    assert queue_of("workbooks.tasks.render_thumbnail_derivatives") == "media"
    assert queue_of("workbooks.tasks.flush_views") == "counters"
    for other in ("monitoring.tasks.beat_heartbeat", "workbooks.tasks.warm_cache"):
        assert queue_of(other) == "celery"


def test_render_tasks_have_a_time_limit():
    task = tasks.render_thumbnail_derivatives
    assert task.soft_time_limit == settings.THUMBNAIL_RENDER_TIME_LIMIT
    assert task.time_limit == settings.THUMBNAIL_RENDER_TIME_LIMIT + 30


@pytest.mark.django_db
def test_a_render_over_its_soft_limit_gives_up_cleanly(monkeypatch, caplog):
    from celery.exceptions import SoftTimeLimitExceeded

    workbook = WorkbookFactory(thumbnail="thumbnails/1/" + "a" * 32 + ".webp")

    def slow(*args, **kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(tasks.thumbnails, "render_derivatives", slow)
    assert tasks.render_thumbnail_derivatives(workbook.pk, workbook.thumbnail) is False
    assert "THUMBNAIL_RENDER_TIME_LIMIT" in caplog.text


@pytest.mark.django_db
def test_image_uploads_are_limited_per_user_per_hour(settings):
    settings.IMAGE_UPLOADS_PER_HOUR = 2
    user = UserFactory()
    client = Client()
    client.force_login(user)

    def publish(n: int):
        return client.post(
            "/workbooks/new/",
            {
                "title": f"Board {n}",
                "sigma_embed_url": f"{EMBED}{n}",
                "visibility": "public",
                "publish": "on",
                "thumbnail": upload(image_bytes(), name=f"p{n}.png"),
            },
        )

    assert publish(1).status_code == 302
    assert publish(2).status_code == 302
    refused = publish(3)
    assert refused.status_code == 200
    assert "the most allowed" in refused.content.decode()
    assert not Workbook.objects.filter(title="Board 3").exists()
    # The profile picture counts against the same hourly allowance.
    response = client.post(
        "/accounts/profile/", {"full_name": "A", "bio": "", "avatar": upload(image_bytes(), name="a.png")}
    )
    assert response.status_code == 200 and "the most allowed" in response.content.decode()
    # Another user is not affected.
    other = Client()
    other.force_login(UserFactory())
    assert (
        other.post(
            "/workbooks/new/",
            {"title": "Mine", "sigma_embed_url": f"{EMBED}x", "visibility": "public", "publish": "on",
             "thumbnail": upload(image_bytes(), name="o.png")},
        ).status_code
        == 302
    )  # fmt: skip


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_the_view_flush_runs_while_renders_are_queued(tmp_path):
    """A real worker on the counters queue (as deployed: the media queue has its own worker, absent here)
    flushes views while 20 renders wait untouched on the media queue."""
    from tests.caching.test_celery_integration import start

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete("media", "counters")
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "DB_POOL_MIN_SIZE": "1",
        "DB_POOL_MAX_SIZE": "2",
    }
    workbook = WorkbookFactory(author=UserFactory())
    for n in range(5):
        counters.record_view(workbook_id=workbook.pk, visitor=f"queue-test-{n}")
    counters.send_process_views()
    app.conf.task_always_eager = False
    try:
        for _ in range(20):
            tasks.render_thumbnail_derivatives.delay(workbook.pk, "thumbnails/0/" + "0" * 32 + ".webp")
        tasks.flush_views.delay()
    finally:
        app.conf.task_always_eager = True
    assert broker.llen("media") == 20
    worker = start(
        [
            "worker",
            "-Q",
            "counters",
            "--pool=solo",
            "--without-gossip",
            "--without-mingle",
            "--loglevel=INFO",
        ],
        env,
        tmp_path / "worker.log",
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            workbook.refresh_from_db()
            if workbook.view_count == 5:
                break
            assert worker.poll() is None, "the worker exited"
            time.sleep(0.5)
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except Exception:
            worker.kill()
        queued = broker.llen("media")
        broker.delete("media")
    assert workbook.view_count == 5, (tmp_path / "worker.log").read_text()[-3000:]
    assert queued == 20  # the renders are still waiting for their own worker
