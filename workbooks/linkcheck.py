"""The embed link checker: a beat task looks at the gallery's embed links again, in bounded batches.

Every ``EMBED_CHECK_EVERY_SECONDS`` one run (a cache lock keeps runs from overlapping):

1. *discovers* up to ``EMBED_CHECK_DISCOVER`` workbooks without a check row, walking the primary key from
   where the last run stopped (rows written by the services get one at once; rows bulk-loaded by COPY are
   found this way), so no run scans the whole table;
2. takes the ``EMBED_CHECK_BATCH_SIZE`` rows due first (``workbooks_embedcheck_due_idx``); rows of drafts
   and private workbooks are pushed back a full interval without a request;
3. fetches the links with ``EMBED_CHECK_CONCURRENCY`` threads, at most ``EMBED_CHECK_HOST_RATE`` request
   starts per second per host, each with a ``EMBED_CHECK_TIMEOUT_SECONDS`` socket timeout and a
   ``User-Agent`` naming the site, reading at most a few kilobytes of the answer;
4. records each outcome through ``services.embed_check_record`` (every write of a run goes through the
   services: the discovered rows, the pushed-back ones, the outcomes): a 2xx answer is a success, anything
   else (4xx, 5xx, timeout, refused connection, DNS failure) a failure. ``EMBED_CHECK_FAILURES_TO_BREAK``
   consecutive failures mark the link broken (the workbook leaves the lists, its author is told); the next
   success repairs it.

A link is never checked more often than ``EMBED_CHECK_MIN_INTERVAL_SECONDS``: healthy links come back after
``EMBED_CHECK_INTERVAL_SECONDS``, failing ones after ``EMBED_CHECK_RETRY_SECONDS``, both at least the minimum.
Only hosts in ``SIGMA_EMBED_HOSTS`` are ever requested (a link stored before the list changed is skipped).

Throughput bound, written down: a run makes at most BATCH_SIZE requests and lasts at most about
BATCH_SIZE / HOST_RATE seconds for a single host (200 / 5 = 40 s by default, under the one-minute schedule),
so the checker covers up to ~288,000 links a day; for 1,000,000 workbooks checked daily raise the batch, the
rate Sigma tolerates, or the interval.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.client import HTTPMessage
from typing import IO
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from sigma_playground.caching import keys
from workbooks import services
from workbooks.embed import Outcome, allowed_hosts
from workbooks.models import EmbedCheck, Visibility

logger = logging.getLogger(__name__)

READ_LIMIT = 16 * 1024


class HostPacer:
    """At most ``rate`` request starts per second per host, shared by the threads of one run."""

    def __init__(self, rate: float) -> None:
        self.spacing = 1.0 / rate if rate > 0 else 0.0
        self.next_start: dict[str, float] = {}
        self.lock = threading.Lock()

    def wait(self, host: str) -> None:
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next_start.get(host, now))
            self.next_start[host] = start + self.spacing
        if start > now:
            time.sleep(start - now)


class _NoRedirectToOtherHosts(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        if (urlsplit(newurl).hostname or "").lower() not in allowed_hosts():
            raise urllib.error.HTTPError(newurl, code, f"redirect to another host ({code})", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_NoRedirectToOtherHosts)


def probe(url: str, *, timeout: float) -> Outcome:
    """One GET of ``url``: never raises."""
    started = time.monotonic()
    request = urllib.request.Request(  # noqa: S310 (the scheme and host are checked by the caller)
        url, headers={"User-Agent": settings.EMBED_CHECK_USER_AGENT, "Accept": "text/html,*/*;q=0.5"}
    )
    status: int | None = None
    error = ""
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status = response.status
            response.read(READ_LIMIT)
    except urllib.error.HTTPError as exc:
        status, error = exc.code, f"HTTP {exc.code}"
    except TimeoutError:
        error = f"timed out after {timeout:g} s"
    except urllib.error.URLError as exc:
        reason = exc.reason
        error = "timed out" if isinstance(reason, TimeoutError) else f"{type(reason).__name__}: {reason}"
    except (OSError, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    duration_ms = int((time.monotonic() - started) * 1000)
    ok = status is not None and 200 <= status < 300
    return Outcome(ok=ok, http_status=status, error=error[:200], duration_ms=duration_ms)


def due(*, limit: int, now: dt.datetime) -> list[EmbedCheck]:
    return list(
        EmbedCheck.objects.filter(next_check_at__lte=now)
        .select_related("workbook")
        .only(
            "workbook_id",
            "url",
            "status",
            "consecutive_failures",
            "next_check_at",
            "recent",
            "broken_since",
            "workbook__sigma_embed_url",
            "workbook__visibility",
            "workbook__published_at",
            "workbook__embed_broken",
            "workbook__author_id",
            "workbook__title",
        )
        .order_by("next_check_at")[:limit]
    )


@dataclass
class RunResult:
    discovered: int = 0
    checked: int = 0
    ok: int = 0
    failed: int = 0
    broken: int = 0
    recovered: int = 0
    skipped: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


def run(*, now: dt.datetime | None = None) -> RunResult:
    """One batch (see the module docstring). The caller holds the run lock."""
    started = time.monotonic()
    result = RunResult()
    result.discovered = services.embed_checks_discover(limit=settings.EMBED_CHECK_DISCOVER)
    now = now or timezone.now()
    rows = due(limit=settings.EMBED_CHECK_BATCH_SIZE, now=now)
    hosts = set(allowed_hosts())
    to_check: list[EmbedCheck] = []
    skip: list[int] = []
    for row in rows:
        workbook = row.workbook
        host = (urlsplit(workbook.sigma_embed_url).hostname or "").lower()
        shown = workbook.published_at is not None and workbook.visibility != Visibility.PRIVATE
        if shown and host in hosts:
            to_check.append(row)
        else:
            skip.append(row.workbook_id)
    if skip:
        services.embed_checks_postpone(workbook_ids=skip, now=now)
        result.skipped = len(skip)
    pacer = HostPacer(settings.EMBED_CHECK_HOST_RATE)
    timeout = settings.EMBED_CHECK_TIMEOUT_SECONDS

    def check(row: EmbedCheck) -> tuple[EmbedCheck, Outcome]:
        url = row.workbook.sigma_embed_url
        pacer.wait((urlsplit(url).hostname or "").lower())
        return row, probe(url, timeout=timeout)

    outcomes: Iterable[tuple[EmbedCheck, Outcome]] = []
    if to_check:
        with ThreadPoolExecutor(max_workers=max(1, settings.EMBED_CHECK_CONCURRENCY)) as pool:
            outcomes = list(pool.map(check, to_check))
    for row, outcome in outcomes:
        change = services.embed_check_record(check=row, outcome=outcome, at=timezone.now())
        result.checked += 1
        result.ok += outcome.ok
        result.failed += not outcome.ok
        result.broken += change == "broken"
        result.recovered += change == "recovered"
    result.seconds = round(time.monotonic() - started, 3)
    logger.info("embed link check: %s", result.as_dict())
    return result


def run_locked() -> RunResult | None:
    """``run`` unless another run holds the lock (then None)."""
    lock = keys.linkcheck_lock()
    ttl = int(settings.EMBED_CHECK_BATCH_SIZE / max(0.1, settings.EMBED_CHECK_HOST_RATE)) + 120
    if not cache.add(lock, "1", timeout=ttl):
        logger.info("embed link check: another run holds the lock")
        return None
    try:
        return run()
    finally:
        cache.delete(lock)
