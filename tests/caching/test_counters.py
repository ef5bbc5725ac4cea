"""View counters buffered in Redis: exact under concurrency, exactly once across a flush that dies."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from django.db import connections

from sigma_playground.caching import keys
from tests.factories import WorkbookFactory
from workbooks import counters
from workbooks.models import Workbook, WorkbookDailyStat

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def count_in_threads(workbook_id: int, threads: int = 10, each: int = 100) -> None:
    """Views from 10 request threads of one process, then that process's batch sent to Redis (what its
    sender thread does within VIEW_PROCESS_FLUSH_SECONDS)."""
    barrier = threading.Barrier(threads)
    run = uuid.uuid4().hex[:8]

    def work(thread: int) -> None:
        barrier.wait()
        for n in range(each):  # distinct visitors: each view passes the once-per-visitor filter
            counters.record_view(workbook_id=workbook_id, visitor=f"{run}-{thread}-{n}")
        connections.close_all()

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    counters.send_process_views()


def totals(workbook: Workbook) -> tuple[int, int]:
    workbook.refresh_from_db()
    return workbook.view_count, sum(
        WorkbookDailyStat.objects.filter(workbook=workbook).values_list("views", flat=True)
    )


def test_ten_threads_times_a_hundred_views_count_a_thousand():
    workbook = WorkbookFactory()
    count_in_threads(workbook.pk)
    assert counters.pending_views() == 1000
    assert totals(workbook) == (0, 0)  # nothing reached the database yet: no row lock per view
    assert counters.flush_views() == 1000
    assert totals(workbook) == (1000, 1000)
    assert counters.flush_views() == 0
    assert totals(workbook) == (1000, 1000)


def test_a_flush_killed_between_claim_and_apply_loses_nothing():
    workbook = WorkbookFactory()
    count_in_threads(workbook.pk)
    claimed = counters.claim_batches()  # ... and the process dies here
    assert len(claimed) == 1
    count_in_threads(workbook.pk, threads=2, each=50)  # views keep arriving meanwhile
    assert counters.flush_views() == 1100
    assert totals(workbook) == (1100, 1100)


def test_a_flush_killed_between_apply_and_cleanup_counts_nothing_twice(monkeypatch):
    workbook = WorkbookFactory()
    count_in_threads(workbook.pk)
    [(day, batch_id)] = counters.claim_batches()
    client = counters._redis()
    real_pipeline = client.pipeline
    calls = {"n": 0}

    def dying_pipeline(*args, **kwargs):
        calls["n"] += 1
        raise ConnectionError("killed after the database commit")

    monkeypatch.setattr(client, "pipeline", dying_pipeline)
    with pytest.raises(ConnectionError):
        counters.finish_batch(client, day, batch_id)  # applied and committed, not cleaned up
    monkeypatch.setattr(client, "pipeline", real_pipeline)
    assert totals(workbook) == (1000, 1000)
    assert counters.flush_views() == 0  # the batch is recognised as applied and only cleaned up
    assert totals(workbook) == (1000, 1000)
    assert not client.smembers(keys.views_batches())


# --- Batching in the web process -------------------------------------------------------------------------------


def buffered_in_redis(workbook_id: int) -> int:
    """Read straight from Redis: pending_views() would send this process's batch first."""
    client = counters._redis()
    return sum(
        int(client.hget(keys.views_buffer(d.decode()), str(workbook_id)) or 0)
        for d in client.smembers(keys.views_days())
    )


def test_a_view_costs_no_round_trip_and_the_batch_goes_in_one(settings, monkeypatch):
    settings.VIEW_PROCESS_FLUSH_SECONDS = 3600
    workbook = WorkbookFactory()
    sends = []
    real_send = counters._send
    monkeypatch.setattr(counters, "_send", lambda counts, *a: sends.append(counts) or real_send(counts, *a))
    for _ in range(100):
        counters.record_view(workbook_id=workbook.pk)
    assert sends == [] and buffered_in_redis(workbook.pk) == 0
    assert counters.send_process_views() == 100
    assert len(sends) == 1 and sum(sends[0].values()) == 100
    assert buffered_in_redis(workbook.pk) == 100


def test_the_sender_thread_delivers_within_the_interval(settings):
    settings.VIEW_PROCESS_FLUSH_SECONDS = 0.2
    workbook = WorkbookFactory()
    for _ in range(7):
        counters.record_view(workbook_id=workbook.pk)
    deadline = time.monotonic() + 3
    while buffered_in_redis(workbook.pk) < 7:
        assert time.monotonic() < deadline, "the sender thread did not send the batch"
        time.sleep(0.05)
    assert buffered_in_redis(workbook.pk) == 7


def test_a_batch_redis_refuses_is_written_to_the_database(settings, monkeypatch):
    settings.VIEW_PROCESS_FLUSH_SECONDS = 3600
    workbook = WorkbookFactory()
    for _ in range(5):
        counters.record_view(workbook_id=workbook.pk)

    def refused(counts, batch_id=None):  # Redis went away before the send
        raise counters.SendFailed(maybe_applied=False)

    monkeypatch.setattr(counters, "_send", refused)
    assert counters.send_process_views() == 5
    assert totals(workbook) == (5, 5)


# --- Idempotent delivery: a stalled Redis never makes a batch count twice (issue 12) ----------------------


class _Stalling:
    """The durable client, whose script calls fail with ``error`` after (or, with ``apply`` False, before)
    running for real: a Redis that stalled past the socket timeout and then did the work anyway."""

    def __init__(self, client, error: Exception, *, apply: bool = True) -> None:
        self.client, self.error, self.apply = client, error, apply

    def register_script(self, text):
        script = self.client.register_script(text)

        def call(**kwargs):
            if self.apply:
                script(**kwargs)
            raise self.error

        return call


def test_a_send_that_timed_out_after_redis_applied_it_is_not_counted_again(settings, monkeypatch):
    import redis

    settings.VIEW_PROCESS_FLUSH_SECONDS = 3600
    workbook = WorkbookFactory()
    client = counters._redis()
    for _ in range(100):
        counters.record_view(workbook_id=workbook.pk)
    monkeypatch.setattr(
        counters, "_redis", lambda: _Stalling(client, redis.TimeoutError("Timeout reading from socket"))
    )
    counters.send_process_views()  # applied by Redis, but the caller saw a timeout
    assert counters.pending_batches() == 1
    assert totals(workbook) == (0, 0)  # not written to the database as well (the old double count)
    monkeypatch.undo()
    from sigma_playground.caching import service

    service.reset_backend()  # the breaker the timeout opened
    counters.send_process_views()  # the same batch again, with its id: Redis recognises it
    assert counters.pending_batches() == 0
    assert counters.flush_views() == 100
    assert totals(workbook) == (100, 100)


def test_a_send_that_timed_out_before_redis_ran_it_is_delivered_later(settings, monkeypatch):
    import redis

    settings.VIEW_PROCESS_FLUSH_SECONDS = 3600
    workbook = WorkbookFactory()
    client = counters._redis()
    for _ in range(40):
        counters.record_view(workbook_id=workbook.pk)
    monkeypatch.setattr(
        counters,
        "_redis",
        lambda: _Stalling(client, redis.ConnectionError("Connection reset by peer"), apply=False),
    )
    counters.send_process_views()
    assert counters.pending_batches() == 1 and totals(workbook) == (0, 0)
    monkeypatch.undo()
    from sigma_playground.caching import service

    service.reset_backend()
    assert counters.flush_views() == 40
    assert totals(workbook) == (40, 40)


def test_a_batch_redis_refused_with_an_error_goes_to_the_database_once(settings, monkeypatch):
    """OOM on a durable Redis at its memory limit: Redis answered, the marker (the script's first write)
    failed, so nothing was applied there and the database gets the batch."""
    import redis

    settings.VIEW_PROCESS_FLUSH_SECONDS = 3600
    workbook = WorkbookFactory()
    client = counters._redis()
    for _ in range(25):
        counters.record_view(workbook_id=workbook.pk)
    oom = redis.ResponseError("OOM command not allowed when used memory > 'maxmemory'.")
    monkeypatch.setattr(counters, "_redis", lambda: _Stalling(client, oom, apply=False))
    counters.send_process_views()
    assert counters.pending_batches() == 0
    assert totals(workbook) == (25, 25)
    monkeypatch.undo()
    from sigma_playground.caching import service

    service.reset_backend()
    assert counters.flush_views() == 0
    assert totals(workbook) == (25, 25)


@pytest.mark.postgres
@pytest.mark.slow
def test_gunicorn_workers_send_their_last_batch_when_they_stop(tmp_path, settings):
    """Real gunicorn, real cached detail pages: views counted on hits and misses survive a graceful stop."""
    from tests.monitoring.helpers import fetch_response, gunicorn_serving, services_env

    workbook = WorkbookFactory()
    env = services_env(redis_url=settings.REDIS_URL, metrics_dir=tmp_path)
    env["VIEW_PROCESS_FLUSH_SECONDS"] = "3600"  # nothing is sent before the workers stop
    # 40 visitors behind a trusted proxy (a visitor counts once per VIEW_DEDUP_SECONDS): the first is the
    # readiness probe from 127.0.0.1, the others forwarded addresses.
    env["TRUSTED_PROXY_NETWORKS"] = "127.0.0.0/8"
    with gunicorn_serving(env, path=workbook.get_absolute_url()) as (base, _):
        for n in range(39):
            fetch_response(
                base + workbook.get_absolute_url(),
                headers={"X-Forwarded-For": f"198.51.100.{n + 1}"},
                timeout=30,
            )
        assert buffered_in_redis(workbook.pk) == 0
    assert buffered_in_redis(workbook.pk) == 40
    assert counters.flush_views() == 40
    assert totals(workbook) == (40, 40)
