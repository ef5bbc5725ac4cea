"""Celery beat's scheduler: django-celery-beat's database scheduler, run by one beat at a time.

Two beats (a second one started by mistake, or on another host) each send every periodic task, so every job
ran twice (issue 12). Beat now runs its schedule only while it holds a lock in the durable Redis
(``SET NX PX``, value ``host:pid:token``), renewed on every tick, well inside its TTL (``BEAT_LOCK_SECONDS``).
A beat that finds the lock held logs who holds it and stands by, trying again every few seconds; it takes
over when the holder stops (it releases the lock) or dies (the lock expires). A holder that loses the lock
(it stalled past the TTL and another beat took over) stops sending and says so.

Without Redis (the embedded defaults) there is nothing to lock: beat runs as before.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid

from django.conf import settings
from django_celery_beat.schedulers import DatabaseScheduler

from sigma_playground.caching import keys, service

logger = logging.getLogger("sigma_playground.beat")

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class BeatLock:
    def __init__(self) -> None:
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.held = False
        self._standby_logged = False

    def _client(self):
        backend = service.durable()
        return backend.client if backend.is_redis else None

    def hold(self) -> bool:
        """Acquire or renew the lock; True while this beat holds it."""
        client = self._client()
        if client is None:
            return True
        ttl_ms = int(settings.BEAT_LOCK_SECONDS * 1000)
        try:
            if self.held:
                if client.register_script(_RENEW)(keys=[keys.beat_lock()], args=[self.token, ttl_ms]):
                    return True
                holder = client.get(keys.beat_lock())
                logger.error(
                    "celery beat: lost the beat lock to %s; standing by (no periodic task is sent by this beat)",
                    holder.decode() if holder else "nobody",
                )
                self.held = False
            if client.set(keys.beat_lock(), self.token, nx=True, px=ttl_ms):
                self.held, self._standby_logged = True, False
                logger.warning("celery beat: acquired the beat lock (%s); sending periodic tasks", self.token)
                return True
            if not self._standby_logged:
                holder = client.get(keys.beat_lock())
                logger.warning(
                    "celery beat: another beat holds the beat lock (%s); this one (%s) stands by and sends "
                    "nothing, checking every %.0f s. Stop one of them: only one beat should run.",
                    holder.decode() if holder else "unknown",
                    self.token,
                    self.retry_seconds(),
                )
                self._standby_logged = True
        except Exception as exc:
            # Redis (and with it the broker) is unreachable: nothing could be sent anyway.
            logger.warning(
                "celery beat: cannot reach the durable Redis for the beat lock: %s", type(exc).__name__
            )
            self.held = False
        return False

    def release(self) -> None:
        client = self._client()
        if client is None or not self.held:
            return
        try:
            client.register_script(_RELEASE)(keys=[keys.beat_lock()], args=[self.token])
            logger.warning("celery beat: released the beat lock (%s)", self.token)
        except Exception:
            logger.warning("celery beat: could not release the beat lock; it expires by itself")
        self.held = False

    @staticmethod
    def retry_seconds() -> float:
        """Renew (or retry) three times per TTL."""
        return max(0.5, settings.BEAT_LOCK_SECONDS / 3)


class LockedDatabaseScheduler(DatabaseScheduler):
    def __init__(self, *args, **kwargs) -> None:
        self.beat_lock = BeatLock()
        super().__init__(*args, **kwargs)

    def tick(self, *args, **kwargs) -> float:
        if not self.beat_lock.hold():
            return self.beat_lock.retry_seconds()
        return min(super().tick(*args, **kwargs), self.beat_lock.retry_seconds())

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.beat_lock.release()
