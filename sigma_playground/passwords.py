"""Password hashing that stays cheap enough to survive a login storm, and never queues.

The design's load test logs in every arrival. Django's default PBKDF2 (1,000,000 iterations of SHA-256) costs
about 208 ms of CPU per check here: 200 logins a second would need 41.6 cores, and the checks queued behind
each other in gunicorn until clients gave up, then went on for those clients for a minute more (issue 15).

- Argon2id with OWASP's recommended parameters (19 MiB, 2 iterations, 1 lane: about 20 ms of CPU) is the
  preferred hasher (first in ``PASSWORD_HASHERS``). Existing PBKDF2 hashes still verify and are re-hashed
  with Argon2id at the user's next successful login (Django's ``must_update``/setter mechanism).
- Every hash (verify, encode, and Django's dummy hash for unknown usernames) takes a slot from a per-process
  semaphore of ``PASSWORD_HASH_CONCURRENCY`` slots, waiting at most ``PASSWORD_HASH_WAIT_SECONDS``. Without a
  slot it raises :class:`HashingBusy`, which :class:`HashingBusyMiddleware` turns into a fast 503 with
  ``Retry-After``: a login beyond what the CPU can hash is told to come back, instead of waiting in line
  behind hashes whose clients may already have left. Counted in ``sigma_password_hash_rejected_total``.
"""

from __future__ import annotations

import threading
import time

from django.conf import settings
from django.contrib.auth import hashers
from django.http import HttpRequest, HttpResponse

from sigma_playground.telemetry import metrics

HASHES_REJECTED = metrics.counter(
    "sigma_password_hash_rejected_total",
    "Password hashes refused because this process already ran PASSWORD_HASH_CONCURRENCY of them (503).",
)
HASH_SECONDS = metrics.histogram(
    "sigma_password_hash_seconds",
    "Wall time of password hashes (verify or encode), by algorithm.",
    labels={"algorithm": ("argon2", "pbkdf2_sha256", "other")},
    buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0),
)


class HashingBusy(Exception):
    """Every hashing slot of this process is taken: answer 503, don't queue."""


class _Slots:
    """A semaphore sized from settings at first use (tests change the setting through ``reset``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._semaphore: threading.BoundedSemaphore | None = None

    def semaphore(self) -> threading.BoundedSemaphore:
        if self._semaphore is None:
            with self._lock:
                if self._semaphore is None:
                    self._semaphore = threading.BoundedSemaphore(max(1, settings.PASSWORD_HASH_CONCURRENCY))
        return self._semaphore

    def reset(self) -> None:
        with self._lock:
            self._semaphore = None


SLOTS = _Slots()


def _bounded(algorithm: str | None, fn, *args):
    semaphore = SLOTS.semaphore()
    wait = settings.PASSWORD_HASH_WAIT_SECONDS
    acquired = semaphore.acquire(timeout=wait) if wait > 0 else semaphore.acquire(blocking=False)
    if not acquired:
        HASHES_REJECTED.inc()
        raise HashingBusy
    started = time.perf_counter()
    try:
        return fn(*args)
    finally:
        semaphore.release()
        HASH_SECONDS.observe(time.perf_counter() - started, algorithm=algorithm)


class Argon2idPasswordHasher(hashers.Argon2PasswordHasher):
    """Argon2id with OWASP's parameters (m=19 MiB, t=2, p=1), bounded per process.

    Django's own defaults are t=2, m=100 MiB, p=8; OWASP's minimum configuration trades memory for time
    at the same strength and costs about 20 ms of one core here. ``must_update`` re-hashes stored hashes
    whose parameters differ at the next login, so changing these numbers migrates users by itself.
    """

    time_cost = 2
    memory_cost = 19456  # KiB
    parallelism = 1

    def encode(self, password, salt):
        return _bounded(self.algorithm, super().encode, password, salt)

    def verify(self, password, encoded):
        return _bounded(self.algorithm, super().verify, password, encoded)


class BoundedPBKDF2PasswordHasher(hashers.PBKDF2PasswordHasher):
    """Verifies existing PBKDF2 hashes (one login each, then upgraded to Argon2id) under the same bound.

    Only ``encode`` is bounded: Django's ``verify`` and ``harden_runtime`` both call it, once each.
    """

    def encode(self, password, salt, iterations=None):
        return _bounded(self.algorithm, super().encode, password, salt, iterations)


def busy_response() -> HttpResponse:
    response = HttpResponse(
        "Too many sign-ins at once. Please try again in a few seconds.\n",
        status=503,
        content_type="text/plain; charset=utf-8",
    )
    response["Retry-After"] = str(settings.OVERLOAD_RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    # An expected answer under load, counted in a metric: not one "Service Unavailable" error log line each.
    response._has_been_logged = True  # type: ignore[attr-defined]  # read by django.utils.log.log_response
    return response


class HashingBusyMiddleware:
    """A view that hit the hashing bound (login, sign-up, password change) answers a 503 at once."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        return busy_response() if isinstance(exception, HashingBusy) else None
