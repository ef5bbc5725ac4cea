"""Tasks for the worker-queue test (tests/test_worker_queues.py), loaded only by its workers (``--include``):
one that takes a while (to flood a queue with) and one that says which worker got it. Each records in the
Redis of REDIS_URL, under the key the test gives, so the test can see what ran, where and when."""

from __future__ import annotations

import os
import time

import redis
from celery import shared_task


def _record(key: str, value: str) -> None:
    redis.Redis.from_url(os.environ["REDIS_URL"]).rpush(key, value)


@shared_task(name="tests.worker_tasks.slow", ignore_result=True)
def slow(seconds: float, key: str) -> None:
    time.sleep(seconds)
    _record(key, f"{time.time():.3f}")


@shared_task(name="tests.worker_tasks.where", ignore_result=True, bind=True)
def where(self, key: str) -> None:
    _record(key, f"{self.request.delivery_info.get('routing_key')} {self.request.hostname}")
