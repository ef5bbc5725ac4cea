"""Owed purges in Redis: a burst of writes sends one purge per key, keys wait until web processes can no
longer serve the old page, failures give the keys back, a dead worker's claims are picked up again."""

from __future__ import annotations

import time

import pytest

from sigma_playground.caching import keys, service
from sigma_playground.cdn import purge, tasks
from tests.caching.conftest import publish
from tests.factories import UserFactory
from workbooks import services

# Keys fall due CDN_PURGE_DELAY_SECONDS after their commit, by the wall clock: stopped here, and moved on by
# the tests, so "not due yet" cannot become due on a slow machine.
pytestmark = [
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("frozen_clock"),
]


@pytest.fixture
def queued(settings, fake, monkeypatch):
    """Purges go to the fake Varnish; tasks are recorded instead of being sent to a broker."""
    from sigma_playground.celery import app

    settings.CDN_PURGE_BACKEND = "varnish"
    settings.CDN_VARNISH_URLS = [fake.url]
    settings.CDN_PURGE_DELAY_SECONDS = 0.3
    service.reset_backend()
    scheduled: list[dict] = []
    monkeypatch.setattr(tasks.purge_pending, "apply_async", lambda *a, **kw: scheduled.append(kw))
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        yield fake, scheduled
    finally:
        app.conf.task_always_eager = eager
        service.reset_backend()


def run_task() -> int:
    return tasks.purge_pending()


def test_a_burst_of_writes_schedules_one_task_and_sends_one_purge_per_key(queued, frozen_clock):
    fake, scheduled = queued
    author = UserFactory(username="ada")
    workbook = publish(author, "Burst board", n=1)
    for user in UserFactory.create_batch(10):
        services.favorite_add(user=user, workbook=workbook)
    publish(author, "Second burst board", n=2)
    assert len(scheduled) == 1 and scheduled[0]["countdown"] == pytest.approx(0.3)
    assert purge.pending_keys() == sorted(["lists", f"wb-{workbook.pk}", f"wb-{workbook.pk + 1}", "user-ada"])
    frozen_clock.shift(0.35)
    assert run_task() == 4
    [request] = fake.seen
    assert sorted(request.headers["xkey-purge"].split()) == sorted(
        ["lists", f"wb-{workbook.pk}", f"wb-{workbook.pk + 1}", "user-ada"]
    )
    assert purge.pending_keys() == []
    publish(author, "After the burst", n=3)  # the task cleared the flag: the next write schedules again
    assert len(scheduled) == 2


def test_keys_are_sent_only_once_web_processes_dropped_the_old_page(queued, frozen_clock):
    fake, scheduled = queued
    purge.purge_soon(["lists"])
    assert run_task() == 0 and fake.seen == []  # committed just now: not due
    assert scheduled[-1]["countdown"] == pytest.approx(0.3)  # rescheduled for when it is
    frozen_clock.shift(0.31)
    assert run_task() == 1 and fake.seen[0].headers["xkey-purge"] == "lists"


def test_a_failed_purge_gives_its_keys_back_and_holds_new_writes_for_the_retry(queued, frozen_clock):
    from sigma_playground.cdn.backends import PurgeError

    fake, scheduled = queued
    fake.status = 503
    purge.purge_soon(["lists", "wb-1"])
    frozen_clock.shift(0.31)
    with pytest.raises(PurgeError):  # called directly, Celery's retry re-raises; under a worker it retries
        run_task()
    assert purge.pending_keys() == ["lists", "wb-1"]
    client = service.backend().client
    assert client.pttl(keys.cdn_scheduled()) > 30_000  # the retry's countdown plus the margin
    count = len(scheduled)
    purge.purge_soon(["user-ada"])
    assert len(scheduled) == count  # held for the retry, which takes them all
    fake.status = 200
    frozen_clock.shift(0.31)
    assert run_task() == 3 and purge.pending_keys() == []


def test_keys_claimed_by_a_worker_that_died_are_sent_again(queued):
    fake, _ = queued
    client = service.backend().client
    client.zadd(keys.cdn_inflight(), {"wb-9": time.time() - purge.IN_FLIGHT_STALE_SECONDS - 1})
    client.zadd(keys.cdn_inflight(), {"wb-10": time.time()})  # still being sent by a live worker
    assert run_task() == 1
    assert fake.seen[0].headers["xkey-purge"] == "wb-9"
    assert purge.pending_keys() == ["wb-10"]


def test_without_a_backend_nothing_is_owed(settings):
    settings.CDN_PURGE_BACKEND = "none"
    purge.purge_soon(["lists"])
    assert purge.pending_keys() == []
