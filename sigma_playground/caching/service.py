"""Cache access: instrumented, fail-open, with stampede control.

Every read and write goes through here, so every one is counted (``sigma_cache_requests_total{kind,result}``)
and timed (``sigma_cache_operation_seconds{op,kind}``), labelled by kind of key, never by the key.

Fail-open: any Redis error is a miss (or a skipped write), logged at most every few seconds, counted in
``sigma_cache_errors_total``. After an error the cache is skipped for ``CACHE_RETRY_SECONDS`` (a small circuit
breaker), so a Redis that hangs costs one socket timeout per process every few seconds, not one per request;
after that the next request tries again, so caching resumes by itself when Redis is back.

Stampede control: entries carry a soft expiry inside a longer hard TTL. When a hot entry goes stale, the first
request to take the rebuild lock (``SET NX PX``, via ``add``) rebuilds it; the others keep serving the stale
copy. When an entry is missing altogether (first build, or just invalidated, when serving the old content
would be wrong), the others wait briefly for the builder and then build themselves only if it failed.
"""

from __future__ import annotations

import functools
import logging
import pickle
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import cache as django_cache

from monitoring import metrics
from monitoring.instruments import CACHE_REQUESTS
from sigma_playground.caching import keys
from sigma_playground.caching.local import LocalLRUCache

logger = logging.getLogger("sigma_playground.cache")

OPERATIONS = ("get", "set", "incr", "lock", "delete")
CACHE_SECONDS = metrics.histogram(
    "sigma_cache_operation_seconds",
    "Latency of cache operations, by operation and kind of key.",
    labels={"op": OPERATIONS, "kind": keys.KINDS},
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
CACHE_ERRORS = metrics.counter(
    "sigma_cache_errors_total", "Cache operations that failed (served as misses).", labels={"op": OPERATIONS}
)

T = TypeVar("T")


# --- Backends -------------------------------------------------------------------------------------------


class _Backend:
    """The few primitives we need, on the raw Redis client or on Django's cache (the embedded default)."""

    is_redis = False

    def get_many(self, names: list[str]) -> list[bytes | None]: ...
    def set(self, name: str, value: bytes, ttl: float) -> None: ...
    def add(self, name: str, value: bytes, ttl: float) -> bool: ...
    def delete(self, name: str) -> None: ...
    def incr(self, name: str) -> int: ...


class _RedisBackend(_Backend):
    is_redis = True

    def __init__(self) -> None:
        from django_redis import get_redis_connection

        self.client = get_redis_connection("default")

    def get_many(self, names):
        return self.client.mget(names)

    def set(self, name, value, ttl):
        self.client.set(name, value, px=max(1, int(ttl * 1000)))

    def add(self, name, value, ttl):
        return bool(self.client.set(name, value, px=max(1, int(ttl * 1000)), nx=True))

    def delete(self, name):
        self.client.delete(name)

    def incr(self, name):
        return int(self.client.incr(name))


class _DjangoBackend(_Backend):
    def get_many(self, names):
        found = django_cache.get_many(names)
        return [found.get(n) for n in names]

    def set(self, name, value, ttl):
        django_cache.set(name, value, ttl)

    def add(self, name, value, ttl):
        return django_cache.add(name, value, ttl)

    def delete(self, name):
        django_cache.delete(name)

    def incr(self, name):
        django_cache.add(name, 0, None)
        try:
            return django_cache.incr(name)
        except ValueError:  # evicted between add and incr
            django_cache.set(name, 1, None)
            return 1


_backend: _Backend | None = None
_backend_lock = threading.Lock()


def backend() -> _Backend:
    global _backend
    if _backend is None:
        with _backend_lock:
            if _backend is None:
                redis_backed = settings.CACHES["default"]["BACKEND"] == "django_redis.cache.RedisCache"
                _backend = _RedisBackend() if redis_backed else _DjangoBackend()
    return _backend


def reset_backend() -> None:
    """Forget the backend (tests that change CACHES)."""
    global _backend, _open_until
    _backend, _open_until = None, 0.0
    RECENT_PAGES.clear()


# Whole pages this process has just served from Redis, kept for at most PAGE_LOCAL_SECONDS (caching.pages):
# a hot page then costs no round trip at all. A bump in this process empties it at once; other processes
# see a bump within PAGE_LOCAL_SECONDS, inside the bound of a second.
RECENT_PAGES = LocalLRUCache("pages", max_entries=256, ttl=0.5)


# --- Fail-open ------------------------------------------------------------------------------------------

_open_until = 0.0  # while now < this, skip the cache entirely (circuit open)


def _circuit_open() -> bool:
    return time.monotonic() < _open_until


def _failed(op: str, exc: BaseException) -> None:
    global _open_until
    _open_until = time.monotonic() + settings.CACHE_RETRY_SECONDS
    CACHE_ERRORS.inc(op=op)
    # The rate-limit filter on this logger keeps an outage to a line every few seconds.
    logger.warning("cache unavailable, serving from the database: %s", type(exc).__name__)


def is_degraded() -> bool:
    return _circuit_open()


def _timed(op: str, kind: str, fn: Callable[[], T], default: T) -> T:
    if _circuit_open():
        return default
    started = time.perf_counter()
    try:
        return fn()
    except Exception as exc:  # any client or connection error: fail open
        _failed(op, exc)
        return default
    finally:
        CACHE_SECONDS.observe(time.perf_counter() - started, op=op, kind=kind)


# --- Values ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    value: Any
    fresh_until: float  # wall-clock seconds

    @property
    def fresh(self) -> bool:
        return time.time() < self.fresh_until


def _dumps(entry: Entry) -> bytes:
    return pickle.dumps((entry.fresh_until, entry.value), protocol=pickle.HIGHEST_PROTOCOL)


def _loads(raw: bytes | None) -> Entry | None:
    if raw is None:
        return None
    try:
        # Our own entries in our own Redis; nothing a visitor can write reaches this.
        fresh_until, value = pickle.loads(raw)  # noqa: S301
    except Exception:
        return None
    return Entry(value=value, fresh_until=fresh_until)


def _fetch(kind: str, key: str) -> Entry | None:
    return _loads(_timed("get", kind, lambda: backend().get_many([key])[0], None))


def count_request(kind: str, entry: Entry | None) -> None:
    """Count a read as a hit (a fresh entry) or a miss."""
    CACHE_REQUESTS.inc(kind=kind, result="hit" if entry is not None and entry.fresh else "miss")


def get_entry(kind: str, key: str) -> Entry | None:
    entry = _fetch(kind, key)
    count_request(kind, entry)
    return entry


def get_entry_with_generations(
    kind: str, key: str, namespaces: Iterable[str]
) -> tuple[dict[str, int] | None, Entry | None]:
    """The current generations of ``namespaces`` and the entry under ``key``, in one round trip (one
    ``MGET``). Generations are None when the cache could not be read. Not counted as a hit or a miss: the
    caller decides whether the entry is current."""
    names = sorted(set(namespaces))
    raw = _timed("get", kind, lambda: backend().get_many([*(keys.generation(n) for n in names), key]), None)
    if raw is None:
        return None, None
    return {n: int(v or 0) for n, v in zip(names, raw, strict=False)}, _loads(raw[-1])


def set_entry(kind: str, key: str, value: Any, ttl: float, *, grace: float | None = None) -> None:
    """Store ``value`` fresh for ``ttl`` seconds, kept ``grace`` more seconds as a stale fallback."""
    grace = settings.CACHE_STALE_GRACE_SECONDS if grace is None else grace
    data = _dumps(Entry(value=value, fresh_until=time.time() + ttl))
    _timed("set", kind, lambda: backend().set(key, data, ttl + grace), None)


def delete(kind: str, key: str) -> None:
    _timed("delete", kind, lambda: backend().delete(key), None)


# --- Generations ----------------------------------------------------------------------------------------


def generations(namespaces: Iterable[str]) -> dict[str, int]:
    """Current generation of each namespace, in one round trip. Unknown namespaces are generation 0."""
    names = sorted(set(namespaces))
    raw = _timed(
        "get", keys.KIND_GENERATION, lambda: backend().get_many([keys.generation(n) for n in names]), None
    )
    if raw is None:
        return {}
    return {n: int(v or 0) for n, v in zip(names, raw, strict=True)}


def bump(*namespaces: str) -> None:
    """Invalidate every entry built under these namespaces: one INCR each, no scan."""
    RECENT_PAGES.clear()
    for namespace in sorted(set(namespaces)):
        _timed("incr", keys.KIND_GENERATION, lambda ns=namespace: backend().incr(keys.generation(ns)), None)


# --- Stampede control -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    """What a builder made: ``result`` goes back to the caller; ``value`` is stored when ``store``."""

    result: Any
    value: Any = None
    store: bool = True


_FETCH = object()  # get_or_build's "look the entry up yourself"


def get_or_build(
    kind: str,
    key: str,
    build: Callable[[], Built],
    *,
    ttl: float,
    from_entry: Callable[[Any], Any] = lambda value: value,
    wait: float | None = None,
    entry: Entry | object | None = _FETCH,
    fetch: Callable[[], Entry | None] | None = None,
) -> Any:
    """The cached value (through ``from_entry``), or ``build()``'s result, rebuilding at most once at a time.

    ``entry`` is the entry when the caller has already read it (None: there is none usable); ``fetch``
    reads it again while waiting for another builder (default: a plain read of ``key``). Callers with
    their own notion of a usable entry (pages: generations stored in the value) pass both.
    """
    fetch = fetch or (lambda: _fetch(kind, key))
    if entry is _FETCH:
        entry = fetch()
    assert entry is None or isinstance(entry, Entry)
    count_request(kind, entry)
    if entry is not None and entry.fresh:
        return from_entry(entry.value)
    if _circuit_open():
        return build().result
    lock_key = keys.lock(key)
    lock_seconds = settings.CACHE_LOCK_SECONDS
    got_lock = _timed("lock", keys.KIND_LOCK, lambda: backend().add(lock_key, b"1", lock_seconds), True)
    if not got_lock:
        if entry is not None:
            return from_entry(entry.value)  # stale while another request rebuilds
        deadline = time.monotonic() + (settings.CACHE_LOCK_WAIT_SECONDS if wait is None else wait)
        while time.monotonic() < deadline:
            time.sleep(0.02)
            waited = fetch()
            if waited is not None:
                return from_entry(waited.value)
    try:
        built = build()
        if built.store:
            set_entry(kind, key, built.value, ttl)
        return built.result
    finally:
        if got_lock:
            _timed("delete", keys.KIND_LOCK, lambda: backend().delete(lock_key), None)


def try_lock(key: str) -> bool:
    """Take ``key``'s short rebuild lock (the one get_or_build uses) without waiting; False when another
    request holds it or the cache can't be reached (then nobody rebuilds ahead: the entry just expires)."""
    lock_key = keys.lock(key)
    return _timed(
        "lock", keys.KIND_LOCK, lambda: backend().add(lock_key, b"1", settings.CACHE_LOCK_SECONDS), False
    )


def unlock(key: str) -> None:
    lock_key = keys.lock(key)
    _timed("delete", keys.KIND_LOCK, lambda: backend().delete(lock_key), None)


# --- The design's @Cache decorator ---------------------------------------------------------------------


def cached(
    name: str,
    *,
    ttl: float,
    key: Callable[..., str] | None = None,
    namespaces: Callable[..., Iterable[str]] | None = None,
) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Cache a function's result for ``ttl`` seconds under ``keys.function(name, key(*args, **kwargs))``.

    ``namespaces(*args, **kwargs)`` names generations the result depends on, so that a write that bumps one
    of them invalidates it. Results must be picklable. Same metrics, fail-open and stampede control as pages.
    """

    def decorator(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> T:
            args_key = key(*args, **kwargs) if key else repr((args, sorted(kwargs.items())))
            if namespaces is not None:
                gens = generations(namespaces(*args, **kwargs))
                args_key += "|" + ",".join(f"{k}={v}" for k, v in sorted(gens.items()))
            cache_key = keys.function(name, args_key)

            def build() -> Built:
                value = fn(*args, **kwargs)
                return Built(result=value, value=value)

            return get_or_build(keys.KIND_FUNCTION, cache_key, build, ttl=ttl)

        wrapper.uncached = fn  # type: ignore[attr-defined]
        return wrapper

    return decorator
