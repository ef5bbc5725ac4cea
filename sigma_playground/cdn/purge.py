"""Purges owed to the CDN: recorded after commit, coalesced in Redis, sent by a Celery task.

``purge_soon(keys)`` runs in the ``on_commit`` hook of every write that bumps cache generations
(caching/invalidate.py). It costs the request one pipelined round trip to Redis and, for the first write of
a burst, publishing one task; the purge itself is sent by the worker:

- owed keys live in a sorted set scored by the time of the latest commit that owes them (``ZADD GT``);
- a key is due ``CDN_PURGE_DELAY_SECONDS`` after that commit (``PAGE_LOCAL_SECONDS`` + 0.1 s: 0.1 s behind a
  CDN, where the in-process copies are off by default): web processes may reuse a page for
  ``PAGE_LOCAL_SECONDS`` after a write elsewhere, and a CDN that asked again inside that window could store
  the old page for a day;
- one task is scheduled per burst (a flag set with ``SET NX``); it claims every due key at once (a Lua
  script moves them to an in-flight set), so a burst of writes sends one purge per key, and reschedules
  itself for keys not yet due;
- a failed purge puts its keys back (due at once) and the task retries with backoff (1, 2, 4 ... 60 s,
  ``CDN_PURGE_MAX_RETRIES``); the flag holds new writes' keys for that retry. Keys still owed after the last
  retry, or left in flight by a worker that died, are picked up by the beat task ``cdn-purge-sweep`` every
  minute, so a purge is never dropped: it lands when the CDN is back.

Embedded mode (no Redis, or eager Celery) has nothing to coalesce in and no worker to wait: the keys travel
in the task message and are sent in-process at once. ``CDN_PURGE_BACKEND=none`` (the default) records nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings

from sigma_playground.caching import keys, service
from sigma_playground.cdn.backends import PurgeError, get_backend

logger = logging.getLogger(__name__)

IN_FLIGHT_STALE_SECONDS = 300.0  # a claim older than this belongs to a worker that died mid-purge
_SCHEDULE_MARGIN_SECONDS = 30.0  # the scheduled flag outlives the task's countdown by this much

# KEYS: pending, inflight. ARGV: due-before time, now, stale-before time.
# In-flight claims older than the stale time are given back first; then every due key moves to in-flight.
# Returns the claimed keys and the score of the earliest key still pending (or nil).
_CLAIM = """
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
for _, key in ipairs(stale) do
  redis.call('ZADD', KEYS[1], 'GT', 0, key)
  redis.call('ZREM', KEYS[2], key)
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for _, key in ipairs(due) do
  redis.call('ZREM', KEYS[1], key)
  redis.call('ZADD', KEYS[2], ARGV[2], key)
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {due, first[2] or false}
"""


def _eager() -> bool:
    """Tasks run in-process (embedded mode): nothing to wait for, a countdown would not be honoured."""
    from sigma_playground.celery import app

    return bool(app.conf.task_always_eager)


def _redis():
    """The raw client of the durable Redis (pending purges must not be evicted), or None in embedded mode."""
    backend = service.durable()
    return backend.client if backend.is_redis else None


def purge_soon(surrogate_keys: Iterable[str]) -> None:
    """Owe a purge of these keys; called after the commit of the write that changed them."""
    owed = sorted(set(surrogate_keys))
    if not owed or settings.CDN_PURGE_BACKEND == "none":
        return
    from sigma_playground.cdn import tasks

    client = _redis()
    if client is None or _eager():
        try:
            tasks.purge_keys.delay(owed)
        except Exception:  # in-process: a CDN outage must not fail the write that already committed
            logger.exception(
                "cdn: purge of %s failed; the CDN keeps these pages until their lifetime ends", owed
            )
        return
    now = time.time()
    delay = settings.CDN_PURGE_DELAY_SECONDS
    try:
        pipe = client.pipeline(transaction=False)
        pipe.zadd(keys.cdn_pending(), dict.fromkeys(owed, now), gt=True)
        pipe.set(keys.cdn_scheduled(), b"1", nx=True, px=int((delay + _SCHEDULE_MARGIN_SECONDS) * 1000))
        _, first = pipe.execute()
    except Exception as exc:  # Redis unavailable: the message carries the keys instead
        logger.warning("cdn: could not record owed purges in Redis (%s); sending them with the task", exc)
        tasks.purge_keys.apply_async((owed,), countdown=delay)
        return
    if first:
        tasks.purge_pending.apply_async(countdown=delay)


@dataclass
class Claim:
    keys: list[str]
    next_due_in: float | None  # seconds until the earliest key still pending is due


def claim_due() -> Claim:
    """Take every key that is due (and in-flight claims left by dead workers) for sending."""
    client = _redis()
    if client is None:
        return Claim([], None)
    now = time.time()
    delay = settings.CDN_PURGE_DELAY_SECONDS
    due, first = client.eval(
        _CLAIM, 2, keys.cdn_pending(), keys.cdn_inflight(), now - delay, now, now - IN_FLIGHT_STALE_SECONDS
    )
    next_due = None if first is None else max(0.0, float(first) + delay - now)
    return Claim(sorted(k.decode() if isinstance(k, bytes) else k for k in due), next_due)


def done(sent: Iterable[str]) -> None:
    client = _redis()
    sent = list(sent)
    if client is not None and sent:
        client.zrem(keys.cdn_inflight(), *sent)


def give_back(failed: Iterable[str], *, hold_seconds: float) -> None:
    """A purge failed: its keys are owed again, due at once, and new writes leave scheduling to the retry
    (due in ``hold_seconds``)."""
    client = _redis()
    failed = list(failed)
    if client is None or not failed:
        return
    pipe = client.pipeline(transaction=True)
    pipe.zadd(keys.cdn_pending(), dict.fromkeys(failed, 0), gt=True)
    pipe.zrem(keys.cdn_inflight(), *failed)
    pipe.set(keys.cdn_scheduled(), b"1", px=int((hold_seconds + _SCHEDULE_MARGIN_SECONDS) * 1000))
    pipe.execute()


def reschedule(in_seconds: float) -> None:
    """Keys are pending but not yet due: make sure a task will come for them."""
    from sigma_playground.cdn import tasks

    client = _redis()
    ttl = int((in_seconds + _SCHEDULE_MARGIN_SECONDS) * 1000)
    if client is not None and not _eager() and client.set(keys.cdn_scheduled(), b"1", nx=True, px=ttl):
        tasks.purge_pending.apply_async(countdown=in_seconds)


def clear_schedule() -> None:
    client = _redis()
    if client is not None:
        client.delete(keys.cdn_scheduled())


def pending_keys() -> list[str]:
    """Keys still owed (pending or in flight), for operators and tests."""
    client = _redis()
    if client is None:
        return []
    names = client.zrange(keys.cdn_pending(), 0, -1) + client.zrange(keys.cdn_inflight(), 0, -1)
    return sorted({n.decode() for n in names})


def send(surrogate_keys: list[str]) -> None:
    """Purge now, through the configured backend; raises PurgeError."""
    get_backend().purge_keys(surrogate_keys)


__all__ = ["Claim", "PurgeError", "claim_due", "done", "give_back", "pending_keys", "purge_soon", "send"]
