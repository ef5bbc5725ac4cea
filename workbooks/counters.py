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
2. applies the batch in one transaction: one ``UPDATE … FROM (VALUES …)`` for the totals, one
   ``INSERT … ON CONFLICT DO UPDATE`` for the day's statistics, and a row in AppliedViewBatch with the batch
   id (unique), all or nothing;
3. deletes the batch key and removes it from the open set.

A flush that dies after 1 leaves its batch in the open set: the next flush applies it first. One that dies
after 2 leaves an applied batch in the open set: the next flush finds its id in AppliedViewBatch, skips the
apply and finishes 3. Nothing is lost and nothing counts twice. Counts only ever grow. A view reaches the
database within VIEW_PROCESS_FLUSH_SECONDS + VIEW_FLUSH_SECONDS (plus the flush's own time).

With Redis unreachable (or the embedded local-memory cache), a view is written straight to the database, and
so is a process batch that could not be sent.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import Counter

from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import F
from django.utils import timezone

from monitoring import metrics
from sigma_playground.caching import keys, service
from sigma_playground.process_buffer import ProcessBuffer
from workbooks.models import AppliedViewBatch, Workbook, WorkbookDailyStat

logger = logging.getLogger(__name__)

VIEWS = metrics.counter(
    "sigma_views_total",
    "Workbook page views counted, by where they went first.",
    labels={"path": ("buffered", "direct")},
)
FLUSHED = metrics.counter("sigma_views_flushed_total", "Views written to the database by flushes.")
BUFFER_TTL = 7 * 24 * 3600  # a buffer nobody flushes for a week is dropped rather than kept forever


def _redis():
    backend = service.backend()
    return backend.client if backend.is_redis and not service.is_degraded() else None


Counts = dict[tuple[int, dt.date], int]


def record_view(*, workbook_id: int) -> None:
    """Count one view of ``workbook_id`` now."""
    key = (int(workbook_id), timezone.now().date())
    if _redis() is not None:
        if settings.VIEW_PROCESS_FLUSH_SECONDS > 0:
            _process_views.add(key)  # counted in VIEWS when the batch is delivered
            return
        if _send({key: 1}):
            VIEWS.inc(path="buffered")
            return
    apply_views({key: 1})
    VIEWS.inc(path="direct")


def _send(counts: Counts) -> bool:
    """Add ``counts`` to the Redis buffers in one pipelined round trip; False when Redis failed."""
    client = _redis()
    if client is None:
        return False
    try:
        pipe = client.pipeline(transaction=False)
        days = set()
        for (workbook_id, day), n in counts.items():
            pipe.hincrby(keys.views_buffer(day.isoformat()), str(workbook_id), n)
            days.add(day.isoformat())
        for day in sorted(days):
            pipe.expire(keys.views_buffer(day), BUFFER_TTL)
            pipe.sadd(keys.views_days(), day)
        pipe.execute()
        return True
    except Exception as exc:
        service._failed("incr", exc)
        return False


class _ProcessViews(ProcessBuffer[Counter[tuple[int, dt.date]]]):
    """Views counted in this process and not yet sent to Redis."""

    thread_name = "view-counter-flush"

    def empty(self) -> Counter[tuple[int, dt.date]]:
        return Counter()

    def interval(self) -> float:
        return settings.VIEW_PROCESS_FLUSH_SECONDS

    def add(self, key: tuple[int, dt.date]) -> None:
        with self._lock:
            self._claim()[key] += 1

    def deliver(self, state: Counter[tuple[int, dt.date]]) -> None:
        counts = dict(state)
        if not counts:
            return
        if _send(counts):
            VIEWS.inc(sum(counts.values()), path="buffered")
        else:
            apply_views(counts)
            VIEWS.inc(sum(counts.values()), path="direct")

    def after_delivery(self) -> None:
        connections.close_all()  # this thread's connection, if the database fallback opened one


_process_views = _ProcessViews()


def send_process_views() -> int:
    """Send this process's batched views to Redis now (or, with Redis down, to the database)."""
    counts = _process_views.drain()
    _process_views.deliver(counts)
    return sum(counts.values())


def discard_process_views() -> None:
    """Forget this process's unsent views (tests)."""
    _process_views.drain()


def apply_views(counts: dict[tuple[int, dt.date], int], *, batch_id: str | None = None) -> bool:
    """Add ``counts`` ((workbook id, day) -> views) to totals and daily statistics in one transaction.

    With ``batch_id``, at most once: returns False (and writes nothing) when that batch was applied before.
    """
    counts = {k: v for k, v in counts.items() if v > 0}
    with transaction.atomic():
        if batch_id is not None:
            _, created = AppliedViewBatch.objects.get_or_create(batch_id=batch_id)
            if not created:
                return False
        if not counts:
            return True
        totals: dict[int, int] = {}
        for (workbook_id, _day), n in counts.items():
            totals[workbook_id] = totals.get(workbook_id, 0) + n
        existing = set(Workbook.objects.filter(pk__in=list(totals)).values_list("pk", flat=True))
        rows = [(pk, n) for pk, n in sorted(totals.items()) if pk in existing]  # deleted workbooks drop out
        if not rows:
            return True
        table, stats = Workbook._meta.db_table, WorkbookDailyStat._meta.db_table
        with connection.cursor() as cursor:
            # Sorted ids: concurrent flushes lock rows in the same order and cannot deadlock.
            if connection.vendor == "postgresql":
                cursor.execute(
                    f"UPDATE {table} SET view_count = {table}.view_count + v.n "  # noqa: S608 (our table names)
                    f"FROM unnest(%s::bigint[], %s::bigint[]) AS v(id, n) WHERE {table}.id = v.id",
                    [[pk for pk, _ in rows], [n for _, n in rows]],
                )
            else:  # the embedded SQLite default counts directly, a view at a time
                for pk, n in rows:
                    Workbook.objects.filter(pk=pk).update(view_count=F("view_count") + n)
            stat_rows = [(pk, day, n) for (pk, day), n in sorted(counts.items()) if pk in existing]
            cursor.execute(
                f"INSERT INTO {stats} (workbook_id, date, views, favorites) VALUES "  # noqa: S608
                + ", ".join(["(%s, %s, %s, 0)"] * len(stat_rows))
                + f" ON CONFLICT (workbook_id, date) DO UPDATE SET views = {stats}.views + excluded.views",
                [x for row in stat_rows for x in row],
            )
    return True


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
    applied = apply_views(counts, batch_id=batch_id)
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
