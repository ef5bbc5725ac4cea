"""A small in-process cache: bounded, least-recently-used, with a TTL per entry, thread-safe.

For tiny hot objects that every request wants (the tag cloud, featured ids) where even a Redis round trip
is too much. Each process has its own copy, so TTLs are short (seconds): after a write, processes converge
within one TTL. Not for anything that must be fresh at once (pages use generations in Redis for that).

The design document's "LRU" evicted in insertion order (FIFO) and never expired anything; this one moves an
entry to the end on every hit and evicts from the front, and drops entries past their TTL on read.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from sigma_playground.telemetry import metrics

T = TypeVar("T")

LOCAL_REQUESTS = metrics.counter(
    "sigma_local_cache_requests_total",
    "In-process cache lookups by cache name and result.",
    labels={"cache": metrics.Capped(limit=20), "result": ("hit", "miss")},
    batched=True,  # counted on every cached page served (service.RECENT_PAGES)
)
LOCAL_EVICTIONS = metrics.counter(
    "sigma_local_cache_evictions_total",
    "Entries evicted from in-process caches because they were full.",
    labels={"cache": metrics.Capped(limit=20)},
)
_MISSING = object()


class LocalLRUCache:
    def __init__(self, name: str, *, max_entries: int = 256, ttl: float = 5.0) -> None:
        if max_entries < 1 or ttl <= 0:
            raise ValueError("max_entries must be >= 1 and ttl > 0")
        self.name = name
        self.max_entries = max_entries
        self.ttl = ttl
        self._data: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, default: Any = None) -> Any:
        now = time.monotonic()
        with self._lock:
            item = self._data.get(key)  # (expires, value): never None
            if item is not None and item[0] > now:
                self._data.move_to_end(key)
                LOCAL_REQUESTS.inc(cache=self.name, result="hit")
                return item[1]
            if item is not None:
                del self._data[key]  # expired
        LOCAL_REQUESTS.inc(cache=self.name, result="miss")
        return default

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        expires = time.monotonic() + (self.ttl if ttl is None else ttl)
        with self._lock:
            self._data[key] = (expires, value)
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)
                LOCAL_EVICTIONS.inc(cache=self.name)

    def get_or_set(self, key: str, build: Callable[[], T], ttl: float | None = None) -> T:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            value = build()
            self.set(key, value, ttl)
        return value

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)
