"""This process's requests over the last few minutes: latency quantiles and the 5xx ratio.

Prometheus counters only grow; a rate over "the last 5 minutes" needs an earlier sample. Without a Prometheus
server (``PROMETHEUS_URL``) the health diagnosis uses this window instead: ten-second slots of histogram
counts, fed by the request metrics middleware, so memory stays constant whatever the traffic.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from dataclasses import dataclass

# Upper bounds in milliseconds; the quantile is interpolated inside a bucket as histogram_quantile does.
BOUNDS_MS = (5, 10, 25, 50, 75, 100, 150, 200, 300, 400, 500, 600, 750, 1000, 1500, 2000, 3000, 5000, 10000)


@dataclass(frozen=True)
class WindowStats:
    requests: int
    errors: int
    seconds: int

    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None

    @property
    def error_ratio(self) -> float | None:
        return self.errors / self.requests if self.requests else None


class RequestWindow:
    def __init__(self, seconds: int = 300, slot_seconds: int = 10, bounds_ms: tuple[float, ...] = BOUNDS_MS):
        self.seconds = seconds
        self.slot_seconds = slot_seconds
        self.bounds = tuple(bounds_ms)
        self._slots = seconds // slot_seconds
        self._lock = threading.Lock()
        self._stamp = [-1] * self._slots
        self._counts = [[0] * (len(self.bounds) + 1) for _ in range(self._slots)]
        self._errors = [0] * self._slots

    def _slot(self, now: float) -> int:
        """The slot for ``now``, cleared first when it still holds counts from a previous lap."""
        tick = int(now // self.slot_seconds)
        index = tick % self._slots
        if self._stamp[index] != tick:
            self._stamp[index] = tick
            self._counts[index] = [0] * (len(self.bounds) + 1)
            self._errors[index] = 0
        return index

    def record(self, duration_s: float, status: int, now: float | None = None) -> None:
        now = time.time() if now is None else now
        bucket = bisect.bisect_left(self.bounds, duration_s * 1000)
        with self._lock:
            index = self._slot(now)
            self._counts[index][bucket] += 1
            if status >= 500:
                self._errors[index] += 1

    def stats(self, now: float | None = None) -> WindowStats:
        now = time.time() if now is None else now
        oldest = int(now // self.slot_seconds) - self._slots + 1
        totals = [0] * (len(self.bounds) + 1)
        errors = 0
        with self._lock:
            for index in range(self._slots):
                if self._stamp[index] >= oldest:
                    totals = [a + b for a, b in zip(totals, self._counts[index], strict=True)]
                    errors += self._errors[index]
        requests = sum(totals)
        return WindowStats(
            requests=requests,
            errors=errors,
            seconds=self.seconds,
            p50_ms=self._quantile(0.50, totals),
            p95_ms=self._quantile(0.95, totals),
            p99_ms=self._quantile(0.99, totals),
        )

    def _quantile(self, q: float, counts: list[int]) -> float | None:
        total = sum(counts)
        if not total:
            return None
        rank = q * total
        seen = 0
        for i, count in enumerate(counts):
            if count and seen + count >= rank:
                if i == len(self.bounds):
                    return float(self.bounds[-1])  # the +Inf bucket: as histogram_quantile, the highest bound
                lower = self.bounds[i - 1] if i else 0.0
                upper = self.bounds[i]
                return lower + (upper - lower) * (rank - seen) / count
            seen += count
        return math.nan

    def clear(self) -> None:
        with self._lock:
            self._stamp = [-1] * self._slots


REQUESTS = RequestWindow()
