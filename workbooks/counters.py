"""View counting: batched in each web process, buffered in Redis, flushed to PostgreSQL in batches, exactly once.

A page view adds 1 to a lock-protected in-process counter: no I/O on the request path. A daemon thread sends
the process's counts to Redis every VIEW_PROCESS_FLUSH_SECONDS (0.5 s by default) in one pipelined round trip:
``HINCRBY views:<day> <workbook id> <n>`` per workbook and day, plus ``SADD`` of the day to a small set of
live days (so a flush never needs KEYS or SCAN); whatever is left is sent when the process exits normally.
(The design's one ``HINCRBY`` per view costs a Redis round trip, about 0.1-0.2 ms of CPU, on every request:
more than a cached detail page costs in all. Batching per process is what makes counting nearly free; the
price is that a process killed with SIGKILL loses at most its last interval of views.) With
VIEW_PROCESS_FLUSH_SECONDS=0 each view goes to Redis at once, as the design had it.

A beat task (``flush_views``, every VIEW_FLUSH_SECONDS) then, for each live day:

1. claims the day's buffer atomically: ``RENAME views:<day> views:<day>:batch:<id>`` and ``SADD`` the batch to
   the set of open batches, in one MULTI. New views go to a fresh ``views:<day>`` from then on;
2. applies the batch through ``services.workbook_views_apply``, in one transaction: one
   ``UPDATE … FROM (VALUES …)`` for the totals, one ``INSERT … ON CONFLICT DO UPDATE`` for the day's
   statistics, and a row in AppliedViewBatch with the batch id (unique), all or nothing;
3. deletes the batch key and removes it from the open set.

A flush that dies after 1 leaves its batch in the open set: the next flush applies it first. One that dies
after 2 leaves an applied batch in the open set: the next flush finds its id in AppliedViewBatch, skips the
apply and finishes 3. Nothing is lost and nothing counts twice. Counts only ever grow. A view reaches the
database within VIEW_PROCESS_FLUSH_SECONDS + VIEW_FLUSH_SECONDS (plus the flush's own time).

Delivery to Redis is idempotent (issue 12). Each process batch carries an id, and one Lua script sets the
batch's marker (``SET NX`` with a TTL) and applies its increments, atomically; a marker that exists means the
batch was applied before and the script does nothing. A send that times out (Redis stalled: the command may
still run when it wakes up) has an unknown outcome, so the batch is kept, with its id, and sent again until
Redis answers: never written to the database as well. Only a batch that certainly did not reach Redis (the
breaker was open, the connection was refused, Redis answered with an error such as OOM: the marker is the
script's first write) is written straight to the database; so is a view with Redis unreachable or on the
embedded local-memory cache. A batch whose outcome is still unknown after MAYBE_SENT_GIVE_UP_SECONDS is
dropped with an error log (most likely it was applied: a timeout means Redis was slow, not gone).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass

import redis
from django.conf import settings
from django.core.cache import cache as django_cache
from django.db import connections
from django.utils import timezone

from sigma_playground.caching import keys, service
from sigma_playground.telemetry import metrics
from sigma_playground.telemetry.process_buffer import ProcessBuffer
from workbooks import services

logger = logging.getLogger(__name__)

VIEWS = metrics.counter(
    "sigma_views_total",
    "Workbook page views counted, by where they went first.",
    labels={"path": ("buffered", "direct")},
)
FLUSHED = metrics.counter("sigma_views_flushed_total", "Views written to the database by flushes.")
BUFFER_TTL = 7 * 24 * 3600  # a buffer nobody flushes for a week is dropped rather than kept forever
SENT_MARKER_SECONDS = 15 * 60  # how long Redis remembers a delivered batch id
MAYBE_SENT_GIVE_UP_SECONDS = 10 * 60  # must stay below SENT_MARKER_SECONDS
UNKNOWN = metrics.counter(
    "sigma_views_unknown_outcome_total",
    "View batches whose send to Redis timed out (kept and sent again with the same id).",
)


def _redis():
    """The durable Redis's client, unless it is being skipped (its breaker is open)."""
    backend = service.durable()
    return backend.client if backend.is_redis and not backend.breaker.is_open() else None


Counts = dict[tuple[int, dt.date], int]
# A view in the process buffer: workbook id, day, and, for a view by a known visitor, the dedup window and the
# visitor's digest ("" for views counted unconditionally).
ViewKey = tuple[int, dt.date, int, str]


def visitor_digest(visitor: str) -> str:
    """A short keyed digest of a visitor id (user id or client address): what the seen-sets hold."""
    return hashlib.blake2b(visitor.encode(), key=settings.SECRET_KEY.encode()[:64], digest_size=8).hexdigest()


def record_view(*, workbook_id: int, visitor: str | None = None) -> None:
    """Count one view of ``workbook_id`` now (the one entry point for view counting, unless
    VIEW_COUNTING_ENABLED is off); with ``visitor`` (a user id or client address), at most once per visitor
    per workbook per VIEW_DEDUP_SECONDS window (the seen-sets in Redis decide when the batch is delivered)."""
    if not settings.VIEW_COUNTING_ENABLED:
        return
    if settings.VIEW_DEDUP_SECONDS <= 0:
        visitor = None  # 0 turns the once-per-visitor rule off: every counted request is a view
    now = timezone.now()
    window = int(now.timestamp() // settings.VIEW_DEDUP_SECONDS) if visitor else 0
    key: ViewKey = (int(workbook_id), now.date(), window, visitor_digest(visitor) if visitor else "")
    if _redis() is not None and settings.VIEW_PROCESS_FLUSH_SECONDS > 0:
        _process_views.add(key)  # counted in VIEWS when the batch is delivered
        return
    counts = first_views(Counter({key: 1}))
    if counts:
        _deliver(counts)


def first_views(state: Counter[ViewKey]) -> Counts:
    """The views of ``state`` that count: all of those without a visitor, and one per visitor, workbook and
    window not seen before (``SADD`` to the window's seen-set answers 1), in one pipelined round trip.
    Without Redis (the embedded default) the local cache remembers the visitors instead; with Redis failing,
    each visitor counts once per batch."""
    counts: Counter[tuple[int, dt.date]] = Counter()
    visits = []
    for (workbook_id, day, window, visitor), n in state.items():
        if visitor:
            visits.append((workbook_id, day, window, visitor))
        else:
            counts[(workbook_id, day)] += n
    if not visits:
        return dict(counts)
    ttl = settings.VIEW_DEDUP_SECONDS + 60
    client = _redis()
    fresh: list[bool]
    if client is not None:
        try:
            pipe = client.pipeline(transaction=False)
            for workbook_id, _day, window, visitor in visits:
                pipe.sadd(keys.views_seen(window, workbook_id), visitor)
            for window, workbook_id in sorted({(v[2], v[0]) for v in visits}):
                pipe.expire(keys.views_seen(window, workbook_id), ttl)
            fresh = [bool(added) for added in pipe.execute()[: len(visits)]]
        except Exception as exc:
            service._failed("incr", exc, service.durable())
            fresh = [True] * len(visits)
    else:
        fresh = [
            django_cache.add(keys.views_seen_visitor(window, wid, visitor), 1, ttl) is not False
            for wid, _day, window, visitor in visits
        ]
    for (workbook_id, day, _window, _visitor), new in zip(visits, fresh, strict=True):
        if new:
            counts[(workbook_id, day)] += 1
    return dict(counts)


# KEYS: the batch's marker, the set of live days, each day's buffer; ARGV: marker TTL (ms), buffer TTL (s),
# the number of days, the days, then (day index, workbook id, views) triples. Applied at most once per batch id.
_DELIVER = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 0 end
local days = tonumber(ARGV[3])
for i = 4 + days, #ARGV, 3 do
  redis.call('HINCRBY', KEYS[2 + tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2])
end
for d = 1, days do
  redis.call('EXPIRE', KEYS[2 + d], ARGV[2])
  redis.call('SADD', KEYS[2], ARGV[3 + d])
end
return 1
"""


class SendFailed(Exception):
    def __init__(self, *, maybe_applied: bool) -> None:
        super().__init__("maybe applied" if maybe_applied else "not applied")
        self.maybe_applied = maybe_applied


def _maybe_applied(exc: BaseException) -> bool:
    """Could Redis have applied the script although the call failed?"""
    if isinstance(exc, redis.ResponseError):
        return False  # Redis answered with an error: the marker, the script's first write, failed (OOM...)
    # Never connected ("Error 111 connecting to ...", "Timeout connecting to server"): not applied. Otherwise
    # (a read timeout, a connection lost mid-call) the command may run, or may have run.
    return not (
        isinstance(exc, redis.ConnectionError | redis.TimeoutError) and "connecting" in str(exc).lower()
    )


def _send(counts: Counts, batch_id: str | None = None) -> bool:
    """Add ``counts`` to the Redis buffers at most once for ``batch_id``, in one round trip. True when applied
    now or before; raises SendFailed (saying whether Redis may have applied it) when the call failed."""
    backend = service.durable()
    client = _redis()
    if client is None:
        raise SendFailed(maybe_applied=False)
    batch_id = batch_id or uuid.uuid4().hex
    days = sorted({day.isoformat() for _, day in counts})
    index = {day: i for i, day in enumerate(days, start=1)}
    args: list[object] = [SENT_MARKER_SECONDS * 1000, BUFFER_TTL, len(days), *days]
    for (workbook_id, day), n in sorted(counts.items()):
        args += [index[day.isoformat()], workbook_id, n]
    script_keys = [keys.views_sent(batch_id), keys.views_days(), *(keys.views_buffer(d) for d in days)]
    try:
        client.register_script(_DELIVER)(keys=script_keys, args=args)
    except Exception as exc:
        service._failed("incr", exc, backend)
        raise SendFailed(maybe_applied=_maybe_applied(exc)) from exc
    backend.breaker.succeeded()
    return True


@dataclass
class _Batch:
    counts: Counts
    id: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex)
    maybe_applied: bool = False  # a send timed out: only Redis can say whether it was applied
    since: float = dataclasses.field(default_factory=time.monotonic)


_delivery_lock = threading.Lock()  # one delivery at a time per process: pending batches keep their order
_pending: list[_Batch] = []  # batches not delivered yet (Redis timed out, or both stores failed)


def _deliver(new: Counts) -> None:
    """Deliver ``new`` and any batch left pending: to Redis, or to the database when it certainly did not
    reach Redis. A batch Redis may have applied is only ever sent again to Redis, with its id."""
    with _delivery_lock:
        batches = [*_pending, *([_Batch(counts=dict(new))] if new else [])]
        _pending.clear()
        for batch in batches:
            views = sum(batch.counts.values())
            try:
                _send(batch.counts, batch.id)
                VIEWS.inc(views, path="buffered")
                continue
            except SendFailed as failed:
                if failed.maybe_applied and not batch.maybe_applied:
                    UNKNOWN.inc()
                batch.maybe_applied = batch.maybe_applied or failed.maybe_applied
            if batch.maybe_applied:
                if time.monotonic() - batch.since > MAYBE_SENT_GIVE_UP_SECONDS:
                    logger.error(
                        "view batch %s: outcome unknown for too long, dropped (%d views)", batch.id, views
                    )
                else:
                    _pending.append(batch)
                continue
            try:
                services.workbook_views_apply(counts=batch.counts)
                VIEWS.inc(views, path="direct")
            except Exception:
                logger.exception(
                    "view batch %s: Redis and the database both failed; kept (%d views)", batch.id, views
                )
                _pending.append(batch)


def pending_batches() -> int:
    """Batches this process has not delivered yet (tests, health)."""
    return len(_pending)


class _ProcessViews(ProcessBuffer[Counter[ViewKey]]):
    """Views counted in this process and not yet sent to Redis."""

    thread_name = "view-counter-flush"

    def empty(self) -> Counter[ViewKey]:
        return Counter()

    def interval(self) -> float:
        return settings.VIEW_PROCESS_FLUSH_SECONDS

    def add(self, key: ViewKey) -> None:
        with self._lock:
            self._claim()[key] += 1

    def deliver(self, state: Counter[ViewKey]) -> None:
        counts = {key: n for key, n in first_views(state).items() if n > 0}
        if counts or _pending:
            _deliver(counts)

    def after_delivery(self) -> None:
        connections.close_all()  # this thread's connection, if the database fallback opened one


_process_views = _ProcessViews()


def send_process_views() -> int:
    """Send this process's batched views to Redis now (or, with Redis down, to the database); returns how
    many were recorded (before the once-per-visitor filter)."""
    counts = _process_views.drain()
    _process_views.deliver(counts)
    return sum(counts.values())


def discard_process_views() -> None:
    """Forget this process's unsent views and pending batches (tests)."""
    _process_views.drain()
    with _delivery_lock:
        _pending.clear()


def _parse(raw: dict[bytes, bytes], day: dt.date) -> dict[tuple[int, dt.date], int]:
    out: dict[tuple[int, dt.date], int] = {}
    for field, value in raw.items():
        try:
            out[(int(field), day)] = int(value)
        except ValueError:
            logger.warning("view buffer: ignoring malformed field %r", field)
    return out


# RENAME the day's buffer to the batch key and record the batch, or, when nothing was buffered since the
# last flush, forget the day: atomically, so two flushes cannot both claim one buffer.
_CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('RENAME', KEYS[1], KEYS[2])
  redis.call('SADD', KEYS[3], ARGV[1])
  return 1
end
redis.call('SREM', KEYS[4], ARGV[2])
return 0
"""


def claim_batches() -> list[tuple[str, str]]:
    """Step 1 for every live day: rename its buffer to a new batch. Returns (day, batch id) pairs."""
    client = _redis()
    if client is None:
        return []
    claim = client.register_script(_CLAIM)
    claimed = []
    for raw_day in client.smembers(keys.views_days()):
        day = raw_day.decode()
        batch_id = uuid.uuid4().hex
        script_keys = [
            keys.views_buffer(day), keys.views_claimed(day, batch_id), keys.views_batches(), keys.views_days()
        ]  # fmt: skip
        if claim(keys=script_keys, args=[f"{day}|{batch_id}", day]):
            claimed.append((day, batch_id))
    return claimed


def finish_batch(client, day: str, batch_id: str) -> int:
    """Steps 2 and 3 for one claimed batch; returns the views it applied (0 if applied before)."""
    key = keys.views_claimed(day, batch_id)
    counts = _parse(client.hgetall(key), dt.date.fromisoformat(day))
    applied = services.workbook_views_apply(counts=counts, batch_id=batch_id)
    pipe = client.pipeline(transaction=True)
    pipe.delete(key)
    pipe.srem(keys.views_batches(), f"{day}|{batch_id}")
    pipe.execute()
    total = sum(counts.values()) if applied else 0
    FLUSHED.inc(total)
    return total


def flush_views() -> int:
    """Write buffered views to the database; returns how many views were applied."""
    send_process_views()  # this process's own batch first (the beat task usually runs in a worker with none)
    client = _redis()
    if client is None:
        return 0
    claim_batches()
    total = 0
    for member in sorted(client.smembers(keys.views_batches())):
        day, _, batch_id = member.decode().partition("|")
        total += finish_batch(client, day, batch_id)
    return total


def pending_views() -> int:
    """Views buffered and not yet flushed (for tests and the health page)."""
    send_process_views()
    client = _redis()
    if client is None:
        return 0
    total = 0
    for raw_day in client.smembers(keys.views_days()):
        total += sum(int(v) for v in client.hvals(keys.views_buffer(raw_day.decode())))
    return total
