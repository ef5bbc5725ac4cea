"""View counting: buffered in Redis, flushed to PostgreSQL in batches, exactly once.

A page view costs one pipelined round trip: ``HINCRBY views:<day> <workbook id> 1`` plus ``SADD`` of the day
to a small set of live days (so a flush never needs KEYS or SCAN). A beat task (``flush_views``, every
VIEW_FLUSH_SECONDS) then, for each live day:

1. claims the day's buffer atomically: ``RENAME views:<day> views:<day>:batch:<id>`` and ``SADD`` the batch to
   the set of open batches, in one MULTI. New views go to a fresh ``views:<day>`` from then on;
2. applies the batch in one transaction: one ``UPDATE … FROM (VALUES …)`` for the totals, one
   ``INSERT … ON CONFLICT DO UPDATE`` for the day's statistics, and a row in AppliedViewBatch with the batch
   id (unique), all or nothing;
3. deletes the batch key and removes it from the open set.

A flush that dies after 1 leaves its batch in the open set: the next flush applies it first. One that dies
after 2 leaves an applied batch in the open set: the next flush finds its id in AppliedViewBatch, skips the
apply and finishes 3. Nothing is lost and nothing counts twice. Counts only ever grow.

With Redis unreachable (or the embedded local-memory cache), a view is written straight to the database.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from monitoring import metrics
from sigma_playground.caching import keys, service
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


def record_view(*, workbook_id: int) -> None:
    """Count one view of ``workbook_id`` now."""
    day = timezone.now().date().isoformat()
    client = _redis()
    if client is not None:
        try:
            pipe = client.pipeline(transaction=False)
            pipe.hincrby(keys.views_buffer(day), str(int(workbook_id)), 1)
            pipe.expire(keys.views_buffer(day), BUFFER_TTL)
            pipe.sadd(keys.views_days(), day)
            pipe.execute()
            VIEWS.inc(path="buffered")
            return
        except Exception as exc:
            service._failed("incr", exc)
    apply_views({(workbook_id, dt.date.fromisoformat(day)): 1})
    VIEWS.inc(path="direct")


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
    client = _redis()
    if client is None:
        return 0
    total = 0
    for raw_day in client.smembers(keys.views_days()):
        total += sum(int(v) for v in client.hvals(keys.views_buffer(raw_day.decode())))
    return total
