"""Logging filters."""

from __future__ import annotations

import logging
import threading
import time


class RateLimitFilter(logging.Filter):
    """Let through at most one record per logger+message template every ``per_seconds``.

    During a Redis outage every request would otherwise log the same connection error; one line
    every few seconds says the same thing. The count of suppressed records is added to the next one.
    """

    def __init__(self, per_seconds: float = 10.0) -> None:
        super().__init__()
        self.per_seconds = float(per_seconds)
        self._last: dict[tuple[str, object], float] = {}
        self._suppressed: dict[tuple[str, object], int] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg)
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.per_seconds:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            self._last[key] = now
            suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            record.msg = f"{record.msg} ({suppressed} similar messages suppressed)"
        return True
