"""Cache access: instrumented, fail-open, with stampede control.

Every read and write goes through here, so every one is counted (``sigma_cache_requests_total{kind,result}``)
and timed (``sigma_cache_operation_seconds{op,kind}``), labelled by kind of key, never by the key.

Fail-open: any Redis error is a miss (or a skipped write), logged at most every few seconds, counted in
``sigma_cache_errors_total``. After an error that Redis is skipped for ``CACHE_RETRY_SECONDS`` (a small circuit
breaker, one per process and Redis role), so a Redis that hangs costs one socket timeout per process every few
seconds, not one per request; then one caller probes it while the others keep skipping it, and caching resumes
by itself when Redis is back. Sessions use the same breaker (sigma_playground.sessions).

Two roles (docs/operations.md, "Redis"): the *cache* Redis (``REDIS_URL``: pages, fragments, function
results, rebuild locks, sessions' cached copies; may evict) and the *durable* one (``REDIS_DURABLE_URL``,
defaulting to the same server: generation keys, view buffers, the beat lock, the Celery broker; must not
evict). When both are the same database a page hit reads the page and its generations in one ``MGET``.

Generations never go back: a generation key that is missing (evicted, or Redis restarted empty) is recreated
from Redis's clock in microseconds, a value no earlier generation of it can have had, whether a read or a bump
finds it missing. So no entry stored under an old value can become current again.

Writes while Redis is skipped (issue 17): a bump that cannot reach the durable Redis (its breaker is open, or
the call failed) is not dropped. The process keeps the namespaces as owed bumps and replays them, one INCR of
each, before anything else it sends to that Redis once it answers again: in the breaker's probe, and at the
start of every later cache call (``_timed``), so this process never reads a page or a generation from the
recovered Redis before its own writes are counted there. A replay that repeats a bump which did land (an
answer lost to a timeout) costs one extra miss, never a stale page. Other processes cannot know what this one
owes: they may serve a page stored before the write until the replay, and never longer than that page's
freshness (``PAGE_CACHE_TTL``, or the view's own ``ttl``: pages are stored fresh for at most that, and a
stale copy is only served while a rebuild is under way or has failed). That is the bound on how long a write
made during an outage can stay hidden; a process that makes no more cache calls (an idle worker) leaves its
pages to that bound. The CDN's purge is owed separately (sigma_playground.cdn.purge) and does not wait for
this.

Each bump also records when it happened (``keys.changed``, the newest time wins, kept ``CHANGED_SECONDS``).
Read replicas need it (``changed_at``, sigma_playground/replicas): a page is built from a replica only if the
replica has every write committed before the newest change of the namespaces the page shows, or the rebuild
after a write would store the replica's older rows under the new generation. (A generation recreated after
Redis lost it records no change: pages rebuilt then may be up to REPLICA_MAX_LAG_SECONDS behind, until their
TTL or the next write.)

Stampede control: entries carry a soft expiry inside a longer hard TTL. When a hot entry goes stale, the first
request to take the rebuild lock (``SET NX PX``, via ``add``) rebuilds it; the others keep serving the stale
copy. When an entry is missing altogether (first build, or just invalidated, when serving the old content
would be wrong), the others wait briefly for the builder and then build themselves only if it failed.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from django.conf import settings
from django.core.cache import cache as django_cache

from sigma_playground.caching import keys
from sigma_playground.caching.local import LocalLRUCache
from sigma_playground.replicas import router as replica_router
from sigma_playground.telemetry import metrics
from sigma_playground.telemetry.instruments import CACHE_REQUESTS

logger = logging.getLogger("sigma_playground.cache")
DURABLE_ALIAS = "durable"  # settings.CACHES alias of the durable Redis (absent: the cache Redis)

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
T_co = TypeVar("T_co", covariant=True)


# --- Backends -------------------------------------------------------------------------------------------


class Breaker:
    """One process's view of one Redis: closed (use it), open (skip it) or probing.

    When the open interval ends, the next caller does not try Redis itself: it starts one probe (a PING with
    the socket timeout) in a background thread and carries on without the cache. The probe's answer closes
    the breaker or opens it for another interval; so while Redis hangs, only the request that first met the
    hang waits for a socket timeout, never a later one.
    """

    def __init__(self, probe: Callable[[], object] | None = None) -> None:
        self._probe = probe
        self._lock = threading.Lock()
        self._tripped = False
        self._open_until = 0.0
        self._probing = False

    def allow(self) -> bool:
        """May this caller use Redis now?"""
        if not self._tripped:
            return True
        if time.monotonic() < self._open_until:
            return False
        with self._lock:
            if self._probing or not self._tripped:
                return not self._tripped
            self._probing = True
        if self._probe is None:
            return True  # the caller is the probe
        threading.Thread(target=self._run_probe, name="cache-breaker-probe", daemon=True).start()
        return False

    def _run_probe(self) -> None:
        try:
            self._probe()  # type: ignore[misc]
        except Exception:
            self.failed()
        else:
            self.succeeded()

    def is_open(self) -> bool:
        return self._tripped and (time.monotonic() < self._open_until or self._probing)

    def succeeded(self) -> None:
        if self._tripped:
            with self._lock:
                self._tripped = self._probing = False

    def failed(self) -> None:
        with self._lock:
            self._tripped, self._probing = True, False
            self._open_until = time.monotonic() + settings.CACHE_RETRY_SECONDS


class _Backend:
    """The few primitives we need, on the raw Redis client or on Django's cache (the embedded default)."""

    is_redis = False
    client: Any  # the raw Redis client, on a Redis backend only (is_redis)

    def __init__(self) -> None:
        self.breaker = Breaker(self._probe)
        # Generation keys whose bump could not reach this Redis: replayed before anything else it is sent.
        self._owed: set[str] = set()
        self._owed_lock = threading.Lock()

    def _probe(self) -> None:
        self.ping()
        self.replay_owed()

    def ping(self) -> None: ...

    def owe(self, names: Iterable[str]) -> None:
        """Keep bumps that could not be sent, to replay when this Redis answers again."""
        with self._owed_lock:
            self._owed.update(names)

    @property
    def owes(self) -> bool:
        return bool(self._owed)

    def replay_owed(self) -> None:
        """Send the bumps this process owes, one INCR of each; raises (keeping them owed) when Redis fails.
        Holds the lock while it sends, so no other thread of the process reads generations behind it."""
        if not self._owed:
            return
        with self._owed_lock:
            owed = sorted(self._owed)
            if not owed:
                return
            self.incr_generations(owed, [keys.changed_of_generation(name) for name in owed], time.time())
            self._owed.clear()
        RECENT_PAGES.clear()
        logger.warning("cache: replayed %d generation bumps owed since an outage", len(owed))

    def get_many(self, names: list[str]) -> list[bytes | None]:
        raise NotImplementedError

    def set(self, name: str, value: bytes, ttl: float) -> None:
        raise NotImplementedError

    def add(self, name: str, value: bytes, ttl: float) -> bool:
        raise NotImplementedError

    def delete(self, name: str) -> None:
        raise NotImplementedError

    def incr_generations(self, names: list[str], stamps: list[str], at: float) -> list[int]:
        raise NotImplementedError

    def seed_generations(self, names: list[str]) -> list[int]:
        raise NotImplementedError


# How long a bump's time is kept (keys.changed): far longer than any lag a replica may have and stay in use.
CHANGED_SECONDS = 3600


# Generation keys: INCR when present; when missing, created from the server's clock in microseconds (never a
# value used before, as long as a key is bumped less than a million times a second on average).
_SEED = "local t = redis.call('TIME') local seed = string.format('%.0f', tonumber(t[1]) * 1000000 + tonumber(t[2])) "
# A bump's KEYS: n generation keys, then their n change-time keys; ARGV: the time (seconds), the change keys'
# TTL (ms). A change time only moves forward (bumps of two processes may land out of order).
_STAMP = """
local function stamp(key)
  local old = tonumber(redis.call('GET', key) or '0') or 0
  if tonumber(ARGV[1]) > old then redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  else redis.call('PEXPIRE', key, ARGV[2]) end
end
local n = #KEYS / 2
"""
_BUMP_GENERATIONS = (
    _SEED
    + _STAMP
    + """
local out = {}
for i = 1, n do
  local key = KEYS[i]
  if redis.call('EXISTS', key) == 1 then out[i] = redis.call('INCR', key)
  else redis.call('SET', key, seed) out[i] = tonumber(seed) end
  stamp(KEYS[n + i])
end
return out
"""
)
_SEED_GENERATIONS = (
    _SEED
    + """
local out = {}
for i, key in ipairs(KEYS) do
  redis.call('SET', key, seed, 'NX')
  out[i] = tonumber(redis.call('GET', key))
end
return out
"""
)


class _RedisBackend(_Backend):
    is_redis = True

    def __init__(self, alias: str = "default") -> None:
        from django_redis import get_redis_connection

        self.client = get_redis_connection(alias)
        super().__init__()
        self._bump = self.client.register_script(_BUMP_GENERATIONS)
        self._seed = self.client.register_script(_SEED_GENERATIONS)

    def ping(self):
        self.client.ping()

    def get_many(self, names):
        return self.client.mget(names)

    def set(self, name, value, ttl):
        self.client.set(name, value, px=max(1, int(ttl * 1000)))

    def add(self, name, value, ttl):
        return bool(self.client.set(name, value, px=max(1, int(ttl * 1000)), nx=True))

    def delete(self, name):
        self.client.delete(name)

    def incr_generations(self, names, stamps, at):
        return [int(v) for v in self._bump(keys=[*names, *stamps], args=[repr(at), CHANGED_SECONDS * 1000])]

    def seed_generations(self, names):
        return [int(v) for v in self._seed(keys=names)]


def _clock_seed() -> int:
    return time.time_ns() // 1000


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

    def incr_generations(self, names, stamps, at):
        out = []
        for name in names:
            if django_cache.add(name, _clock_seed(), None):
                out.append(django_cache.get(name))
                continue
            try:
                out.append(django_cache.incr(name))
            except ValueError:  # evicted between add and incr
                django_cache.add(name, _clock_seed(), None)
                out.append(django_cache.get(name))
        for stamp in stamps:
            self._stamp(stamp, at)
        return out

    def seed_generations(self, names):
        for name in names:
            django_cache.add(name, _clock_seed(), None)
        found = django_cache.get_many(names)
        return [int(found.get(name) or _clock_seed()) for name in names]

    @staticmethod
    def _stamp(name: str, at: float) -> None:
        django_cache.set(name, max(at, float(django_cache.get(name) or 0.0)), CHANGED_SECONDS)


_backend: _Backend | None = None
_durable: _Backend | None = None
_backend_lock = threading.Lock()


def _redis_backed(alias: str) -> bool:
    return settings.CACHES.get(alias, {}).get("BACKEND") == "django_redis.cache.RedisCache"


def _same_server(alias: str) -> bool:
    caches_ = settings.CACHES
    return alias not in caches_ or caches_[alias].get("LOCATION") == caches_["default"].get("LOCATION")


def backend() -> _Backend:
    """The cache role: pages, fragments, function results, rebuild locks."""
    global _backend
    if _backend is None:
        with _backend_lock:
            if _backend is None:
                _backend = _RedisBackend() if _redis_backed("default") else _DjangoBackend()
    return _backend


def durable() -> _Backend:
    """The durable role: generation keys and view buffers (the same backend when both URLs are equal)."""
    global _durable
    if _durable is None:
        if _same_server(DURABLE_ALIAS) or not _redis_backed(DURABLE_ALIAS):
            return backend()
        with _backend_lock:
            if _durable is None:
                _durable = _RedisBackend(DURABLE_ALIAS)
    return _durable


def shares_server() -> bool:
    """One server and database for both roles: a page and its generations are read in one MGET."""
    return durable() is backend()


def reset_backend() -> None:
    """Forget the backends and their breakers (tests that change CACHES)."""
    global _backend, _durable
    _backend = _durable = None
    RECENT_PAGES.clear()


# Whole pages this process has just served from Redis, kept for at most PAGE_LOCAL_SECONDS (caching.pages):
# a hot page then costs no round trip at all. A bump in this process empties it at once; other processes
# see a bump within PAGE_LOCAL_SECONDS, inside the bound of a second.
RECENT_PAGES = LocalLRUCache("pages", max_entries=256, ttl=0.5)


# --- Fail-open ------------------------------------------------------------------------------------------


def _failed(op: str, exc: BaseException, be: _Backend | None = None) -> None:
    (be or backend()).breaker.failed()
    CACHE_ERRORS.inc(op=op)
    # The rate-limit filter on this logger keeps an outage to a line every few seconds.
    logger.warning("cache unavailable, serving from the database: %s", type(exc).__name__)


def is_degraded() -> bool:
    """The cache Redis is being skipped (its breaker is open)."""
    return backend().breaker.is_open()


def _timed(op: str, kind: str, fn: Callable[[], T], default: T, be: _Backend | None = None) -> T:
    be = be or backend()
    if not be.breaker.allow():
        return default
    started = time.perf_counter()
    try:
        if be.owes:  # bumps from an outage go first: nothing is read from this Redis behind them
            be.replay_owed()
        result = fn()
    except Exception as exc:  # any client or connection error: fail open
        _failed(op, exc, be)
        return default
    else:
        be.breaker.succeeded()
        return result
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


# Entries are stored in a format that can only ever decode to data: a JSON head and the raw bytes values it
# refers to, never a pickle (whoever can write to Redis would run code in every web worker when a pickle is
# read). The frame: MAGIC, the head's length (4 bytes, big-endian), the head
# ``{"f": fresh_until, "v": value, "b": [blob lengths]}``, then the blobs. A bytes value (a page's body) is a
# ``{"__blob__": n}`` reference in the head, so pages are stored without base64 or escaping. Anything else
# that is not JSON (a model instance, a set, a datetime) cannot be cached: ``set_entry`` raises TypeError.
MAGIC = b"SPC1"
_BLOB = "__blob__"


def _encode(value: Any, blobs: list[bytes]) -> Any:
    if isinstance(value, bytes):
        blobs.append(value)
        return {_BLOB: len(blobs) - 1}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value) or _BLOB in value:
            raise TypeError("cached dicts need string keys (and not the blob marker)")
        return {k: _encode(v, blobs) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v, blobs) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"cannot cache a {type(value).__name__}: only JSON data and bytes")


def _decode(value: Any, blobs: list[bytes]) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and _BLOB in value:
            return blobs[value[_BLOB]]
        return {k: _decode(v, blobs) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, blobs) for v in value]
    return value


def _dumps(entry: Entry) -> bytes:
    blobs: list[bytes] = []
    encoded = _encode(entry.value, blobs)
    head = json.dumps(
        {"f": entry.fresh_until, "v": encoded, "b": [len(b) for b in blobs]}, separators=(",", ":")
    ).encode()
    return b"".join([MAGIC, struct.pack(">I", len(head)), head, *blobs])


def _loads(raw: bytes | None) -> Entry | None:
    """The entry, or None for anything that is not a well-formed frame (counted as a miss)."""
    if raw is None or not raw.startswith(MAGIC):
        return None
    try:
        (size,) = struct.unpack_from(">I", raw, len(MAGIC))
        start = len(MAGIC) + 4
        head = json.loads(raw[start : start + size])
        blobs, offset = [], start + size
        for length in head["b"]:
            blobs.append(raw[offset : offset + length])
            offset += length
        if offset != len(raw):
            return None
        return Entry(value=_decode(head["v"], blobs), fresh_until=float(head["f"]))
    except (ValueError, KeyError, TypeError, IndexError, struct.error, RecursionError):
        return None


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
    """The current generations of ``namespaces`` and the entry under ``key``: one ``MGET`` when both roles
    share a server, else one read of each. Generations are None when they could not be read. Not counted as
    a hit or a miss: the caller decides whether the entry is current."""
    names = sorted(set(namespaces))
    gen_keys = [keys.generation(n) for n in names]
    if shares_server():
        raw = _timed("get", kind, lambda: backend().get_many([*gen_keys, key]), None)
        if raw is None:
            return None, None
        gens, raw_entry = _complete(names, raw[:-1]), raw[-1]
    else:
        gens = generations(names)
        if len(gens) != len(names):
            return None, None
        raw_entry = _timed("get", kind, lambda: backend().get_many([key])[0], None)
    if gens is None:
        return None, None
    return gens, _loads(raw_entry)


def _complete(names: list[str], raw: list[bytes | None]) -> dict[str, int] | None:
    """Generations read with MGET, with any missing key created (seeded) first: never read as 0."""
    missing = [n for n, v in zip(names, raw, strict=True) if v is None]
    gens = {n: int(v) for n, v in zip(names, raw, strict=True) if v is not None}
    if missing:
        be = durable()
        seeded = _timed(
            "incr", keys.KIND_GENERATION, lambda: be.seed_generations([keys.generation(n) for n in missing]),
            None, be,
        )  # fmt: skip
        if seeded is None:
            return None
        gens.update(zip(missing, seeded, strict=True))
    return gens


def set_entry(kind: str, key: str, value: Any, ttl: float, *, grace: float | None = None) -> None:
    """Store ``value`` fresh for ``ttl`` seconds, kept ``grace`` more seconds as a stale fallback."""
    grace = settings.CACHE_STALE_GRACE_SECONDS if grace is None else grace
    data = _dumps(Entry(value=value, fresh_until=time.time() + ttl))
    _timed("set", kind, lambda: backend().set(key, data, ttl + grace), None)


def delete(kind: str, key: str) -> None:
    _timed("delete", kind, lambda: backend().delete(key), None)


# --- Generations ----------------------------------------------------------------------------------------


def generations(namespaces: Iterable[str]) -> dict[str, int]:
    """Current generation of each namespace, in one round trip (two when one is missing: it is created).
    Empty when the durable Redis could not be read."""
    names = sorted(set(namespaces))
    be = durable()
    raw = _timed(
        "get", keys.KIND_GENERATION, lambda: be.get_many([keys.generation(n) for n in names]), None, be
    )
    if raw is None:
        return {}
    return _complete(names, raw) or {}


def bump(*namespaces: str) -> None:
    """Invalidate every entry built under these namespaces: one INCR each (in one script), no scan; the
    same script records the time (called after the write's commit, so the time follows the commit). When the
    durable Redis can't be reached the bumps are owed and replayed as soon as it answers (module docstring),
    stamped with the replay's time."""
    RECENT_PAGES.clear()
    ordered = sorted(set(namespaces))
    if ordered:
        names, stamps, at = (
            [keys.generation(ns) for ns in ordered],
            [keys.changed(ns) for ns in ordered],
            time.time(),
        )
        be = durable()
        sent = _timed("incr", keys.KIND_GENERATION, lambda: be.incr_generations(names, stamps, at), None, be)
        if sent is None:
            be.owe(names)


def changed_at(namespaces: Iterable[str]) -> float | None:
    """The newest bump of any of these namespaces (time.time(); 0.0: none in the last CHANGED_SECONDS), or
    None when the durable Redis could not be read (then nothing may be assumed about recent writes)."""
    names = sorted(set(namespaces))
    if not names:
        return 0.0
    be = durable()
    raw = _timed("get", keys.KIND_GENERATION, lambda: be.get_many([keys.changed(n) for n in names]), None, be)
    if raw is None:
        return None
    try:
        return max((float(value) for value in raw if value is not None), default=0.0)
    except (TypeError, ValueError):  # not ours: assume the worst
        return None


def replica_reads_after(namespaces: Iterable[str]) -> contextlib.AbstractContextManager[None]:
    """Around the build of something stored under ``namespaces`` (a fragment, a cached result): inside a
    public page whose reads may go to a replica, they go to one only if it has these namespaces' last change
    too (sigma_playground.replicas). Costs one read of the durable Redis, and only there."""
    if not replica_router.reading_replicas():
        return contextlib.nullcontext()
    return replica_router.reads_after(changed_at(namespaces))


# --- Stampede control -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    """What a builder made: ``result`` goes back to the caller; ``value`` is stored when ``store``."""

    result: Any
    value: Any = None
    store: bool = True
    failed: bool = False  # the build failed (a 5xx page): a stale entry in hand is served instead


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
    got_lock = False
    try:
        if not is_degraded():
            lock_key = keys.lock(key)
            lock_seconds = settings.CACHE_LOCK_SECONDS
            got_lock = _timed(
                "lock", keys.KIND_LOCK, lambda: backend().add(lock_key, b"1", lock_seconds), True
            )
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
        except Exception:
            if entry is None:
                raise
            logger.exception("cache: rebuilding a %s failed, serving the stale copy", kind)
            return from_entry(entry.value)
        if built.failed and entry is not None:
            logger.warning("cache: rebuilding a %s failed, serving the stale copy", kind)
            return from_entry(entry.value)
        if built.store and not is_degraded():
            set_entry(kind, key, built.value, ttl)
        return built.result
    finally:
        if got_lock:
            _timed("delete", keys.KIND_LOCK, lambda: backend().delete(keys.lock(key)), None)


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


class CachedFunction(Protocol[T_co]):
    """What ``@cached`` returns: the function through the cache, and ``uncached``, the function itself."""

    def __call__(self, *args: Any, **kwargs: Any) -> T_co: ...

    @property
    def uncached(self) -> Callable[..., T_co]: ...


def cached(
    name: str,
    *,
    ttl: float,
    key: Callable[..., str] | None = None,
    namespaces: Callable[..., Iterable[str]] | None = None,
) -> Callable[[Callable[..., T]], CachedFunction[T]]:
    """Cache a function's result for ``ttl`` seconds under ``keys.function(name, key(*args, **kwargs))``.

    ``namespaces(*args, **kwargs)`` names generations the result depends on, so that a write that bumps one
    of them invalidates it. Results must be JSON data (bytes allowed; see _dumps). Same metrics, fail-open and stampede control as pages.
    """

    def decorator(fn: Callable[..., T]) -> CachedFunction[T]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> T:
            args_key = key(*args, **kwargs) if key else repr((args, sorted(kwargs.items())))
            if namespaces is not None:
                gens = generations(namespaces(*args, **kwargs))
                args_key += "|" + ",".join(f"{k}={v}" for k, v in sorted(gens.items()))
            cache_key = keys.function(name, args_key)

            def build() -> Built:
                with replica_reads_after(namespaces(*args, **kwargs) if namespaces is not None else ()):
                    value = fn(*args, **kwargs)
                return Built(result=value, value=value)

            return get_or_build(keys.KIND_FUNCTION, cache_key, build, ttl=ttl)

        wrapper.uncached = fn  # type: ignore[attr-defined]
        return cast("CachedFunction[T]", wrapper)

    return decorator
