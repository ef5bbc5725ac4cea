"""View counters buffered in Redis: exact under concurrency, exactly once across a flush that dies."""

from __future__ import annotations

import threading

import pytest
from django.db import connections

from tests.factories import WorkbookFactory
from workbooks import counters, services
from workbooks.models import Workbook, WorkbookDailyStat

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def count_in_threads(workbook_id: int, threads: int = 10, each: int = 100) -> None:
    barrier = threading.Barrier(threads)

    def work() -> None:
        barrier.wait()
        for _ in range(each):
            services.workbook_record_view(workbook_id=workbook_id)
        connections.close_all()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()


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
    assert not client.smembers("sp:1:views:batches")
