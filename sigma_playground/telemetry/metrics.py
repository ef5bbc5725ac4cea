"""The metrics API: Prometheus metrics declared once, with bounded label sets.

This is the design's ``PerformanceMetrics`` (record a value, a timing, a counter, with tags) made safe for
Prometheus: every metric is declared once, at import time, with the values each label may take. A tag value
outside its declared set is folded into ``other`` (and counted in ``sigma_metrics_label_folded_total``), so
no caller can create unbounded series from user ids, raw paths or search terms. A tag *name* that was not
declared is a programming error and raises.

Declaring::

    from sigma_playground.telemetry import metrics

    QUERY_SECONDS = metrics.histogram(
        "sigma_db_query_duration_seconds",
        "Time spent in database queries.",
        labels={"statement": {"select", "insert", "update", "delete"}, "table": metrics.model_tables},
        buckets=metrics.DB_BUCKETS,
    )

Recording::

    QUERY_SECONDS.observe(0.012, statement="select", table="workbooks_workbook")
    with QUERY_SECONDS.time(statement="select", table="workbooks_workbook"):
        ...
    metrics.record_counter("sigma_cache_requests_total", tags={"kind": "page", "result": "hit"})

Label values may be a fixed set, a callable returning the set (evaluated on first use, e.g. the URL names
known to the resolver), or :class:`Capped` for names chosen in code rather than listed up front.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Literal

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

from sigma_playground.telemetry.batched import BATCH

logger = logging.getLogger(__name__)

# The *_created series double the series count and Prometheus doesn't need them.
disable_created_metrics()

OTHER = "other"
Kind = Literal["counter", "gauge", "histogram"]
GaugeMode = Literal["all", "liveall", "min", "livemin", "max", "livemax", "sum", "livesum", "mostrecent"]

_NAME_RE = re.compile(r"^sigma_[a-z][a-z0-9_]*[a-z0-9]$")
_LABEL_RE = re.compile(r"^[a-z][a-z0-9_]*$")

# Seconds. Include the SLA's boundaries (0.2, 0.5, 1, 2, 3 s) so quantiles near them are interpolated well.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0)
DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Capped:
    """A label set that is open until it holds ``limit`` distinct values, then closed.

    For names chosen in code (profiled sections, cache kinds) rather than listed up front: the set stays
    bounded even if a bug feeds it data. Values that don't match ``pattern`` never get in.
    """

    def __init__(
        self, limit: int, pattern: str = r"^[a-z0-9][a-z0-9_.:-]{0,63}$", initial: Iterable[str] = ()
    ):
        self.limit = limit
        self.pattern = re.compile(pattern)
        self._values: set[str] = set()
        self._lock = threading.Lock()
        for value in initial:
            self.admit(value)

    def admit(self, value: str) -> bool:
        if value in self._values:
            return True
        if not self.pattern.match(value):
            return False
        with self._lock:
            if len(self._values) >= self.limit:
                return value in self._values
            self._values.add(value)
            return True

    @property
    def values(self) -> frozenset[str]:
        return frozenset(self._values)


LabelValues = Iterable[str] | Callable[[], Iterable[str]] | Capped


class _Label:
    def __init__(self, name: str, values: LabelValues):
        if not _LABEL_RE.match(name):
            raise ValueError(f"bad label name {name!r}")
        self.name = name
        self._source = values
        self._resolved: frozenset[str] | None = None
        if not isinstance(values, Capped) and not callable(values):
            self._resolved = frozenset(values) | {OTHER}

    def allowed(self) -> frozenset[str]:
        if isinstance(self._source, Capped):
            return self._source.values | {OTHER}
        if self._resolved is None:
            self._resolved = frozenset(self._source()) | {OTHER}  # type: ignore[operator]
        return self._resolved

    def fold(self, value: object) -> str:
        text = value if isinstance(value, str) else str(value)
        if isinstance(self._source, Capped):
            return text if self._source.admit(text) else OTHER
        return text if text in self.allowed() else OTHER

    def reset(self) -> None:
        """Forget a computed set (tests that change the URLconf)."""
        if callable(self._source) and not isinstance(self._source, Capped):
            self._resolved = None


_BATCHED_LABELS_KEPT = 256  # folded label tuples a batched counter remembers


class Metric:
    """One declared metric. Tags are keyword arguments (or a ``tags`` mapping) naming every label."""

    def __init__(
        self,
        name: str,
        kind: Kind,
        documentation: str,
        labels: Mapping[str, LabelValues],
        prom: Counter | Gauge | Histogram,
        batched: bool = False,
    ):
        self.name = name
        self.kind = kind
        self.documentation = documentation
        self._labels = tuple(_Label(k, v) for k, v in labels.items())
        self.labelnames = tuple(label.name for label in self._labels)
        self.prom = prom
        # A batched counter's increments go to this process's metric batch, published every
        # METRICS_BATCH_SECONDS (telemetry/batched.py): for counters bumped on every cache hit.
        self.batched = batched
        self._batched_labels: dict[tuple, tuple[str, ...]] = {}  # tags as given -> folded label values

    def __repr__(self) -> str:
        return f"<Metric {self.kind} {self.name} {self.labelnames}>"

    @property
    def counter(self) -> Counter:
        """The prometheus_client counter, for telemetry.batched (a TypeError for another kind)."""
        if not isinstance(self.prom, Counter):
            raise TypeError(f"{self.name} is a {self.kind}, not a counter")
        return self.prom

    @property
    def histogram(self) -> Histogram:
        """The prometheus_client histogram, for telemetry.batched (a TypeError for another kind)."""
        if not isinstance(self.prom, Histogram):
            raise TypeError(f"{self.name} is a {self.kind}, not a histogram")
        return self.prom

    def allowed_values(self, label: str) -> frozenset[str]:
        for item in self._labels:
            if item.name == label:
                return item.allowed()
        raise KeyError(label)

    def label_values(self, tags: Mapping[str, object]) -> dict[str, str]:
        """Validate tag names and fold tag values into their declared sets."""
        names = set(tags)
        if names != set(self.labelnames):
            raise ValueError(f"{self.name} takes tags {sorted(self.labelnames)}, got {sorted(names)}")
        values = {}
        for label in self._labels:
            raw = tags[label.name]
            folded = label.fold(raw)
            if folded == OTHER and raw != OTHER:
                _count_fold(self.name)
            values[label.name] = folded
        return values

    def child(self, tags: Mapping[str, object] | None = None, **kw: object):
        merged = {**(tags or {}), **kw}
        if not self.labelnames:
            if merged:
                raise ValueError(f"{self.name} takes no tags, got {sorted(merged)}")
            return self.prom
        return self.prom.labels(**self.label_values(merged))

    def observe(self, value: float, tags: Mapping[str, object] | None = None, **kw: object) -> None:
        if self.kind != "histogram":
            raise TypeError(f"{self.name} is a {self.kind}, not a histogram")
        self.child(tags, **kw).observe(value)

    def inc(self, amount: float = 1, tags: Mapping[str, object] | None = None, **kw: object) -> None:
        if self.kind == "histogram":
            raise TypeError(f"{self.name} is a histogram")
        if self.batched:
            self._inc_batched(amount, {**(tags or {}), **kw})
        else:
            self.child(tags, **kw).inc(amount)

    def _inc_batched(self, amount: float, tags: dict[str, object]) -> None:
        key = tuple(tags.items())
        labels = self._batched_labels.get(key)
        if labels is None:
            labels = tuple(self.label_values(tags).values()) if self.labelnames else ()
            # Only tags that passed unchanged are remembered: a folded one is counted as folded every time.
            if len(self._batched_labels) < _BATCHED_LABELS_KEPT and labels == tuple(v for _, v in key):
                self._batched_labels[key] = labels
        BATCH.inc(self.counter, labels, amount)

    def set(self, value: float, tags: Mapping[str, object] | None = None, **kw: object) -> None:
        if self.kind != "gauge":
            raise TypeError(f"{self.name} is a {self.kind}, not a gauge")
        self.child(tags, **kw).set(value)

    def record(self, value: float, tags: Mapping[str, object] | None = None, **kw: object) -> None:
        """A value: observed by a histogram, set on a gauge, added to a counter."""
        if self.kind == "histogram":
            self.observe(value, tags, **kw)
        elif self.kind == "gauge":
            self.set(value, tags, **kw)
        else:
            self.inc(value, tags, **kw)

    @contextmanager
    def time(self, tags: Mapping[str, object] | None = None, **kw: object) -> Iterator[None]:
        """Observe the wall time of the block (also when it raises), in seconds."""
        child = self.child(tags, **kw)
        started = time.perf_counter()
        try:
            yield
        finally:
            child.observe(time.perf_counter() - started)

    def initialize(self) -> None:
        """Create every label combination now, so the series exist (at zero) before the first event."""
        sets = [sorted(label.allowed()) for label in self._labels]
        for combo in itertools.product(*sets):
            self.prom.labels(*combo)

    def reset_label_sets(self) -> None:
        for label in self._labels:
            label.reset()
        self._batched_labels.clear()


_registry: dict[str, Metric] = {}
_lock = threading.RLock()


def _declare(
    kind: Kind,
    name: str,
    documentation: str,
    labels: Mapping[str, LabelValues] | None,
    *,
    buckets: Iterable[float] | None = None,
    multiprocess_mode: GaugeMode = "livesum",
    initialize: bool = False,
    batched: bool = False,
) -> Metric:
    labels = dict(labels or {})
    if not _NAME_RE.match(name):
        raise ValueError(f"metric names start with sigma_ and are snake_case: {name!r}")
    if kind == "counter" and not name.endswith("_total"):
        raise ValueError(f"counter names end in _total: {name!r}")
    with _lock:
        existing = _registry.get(name)
        if existing is not None:
            if existing.kind != kind or existing.labelnames != tuple(labels):
                raise ValueError(f"{name} is already declared as {existing!r}")
            return existing
        labelnames = tuple(labels)
        prom: Counter | Gauge | Histogram
        if kind == "counter":
            prom = Counter(name, documentation, labelnames)
        elif kind == "gauge":
            prom = Gauge(name, documentation, labelnames, multiprocess_mode=multiprocess_mode)
        else:
            prom = Histogram(name, documentation, labelnames, buckets=tuple(buckets or LATENCY_BUCKETS))
        metric = Metric(name, kind, documentation, labels, prom, batched=batched)
        _registry[name] = metric
    if initialize:
        metric.initialize()
    return metric


def counter(
    name: str,
    documentation: str,
    labels: Mapping[str, LabelValues] | None = None,
    *,
    initialize: bool = False,
    batched: bool = False,
) -> Metric:
    """``batched``: increments are summed in the process and published every METRICS_BATCH_SECONDS
    (telemetry/batched.py), for counters bumped on every cache hit; a SIGKILLed process loses its last
    interval of them."""
    return _declare("counter", name, documentation, labels, initialize=initialize, batched=batched)


def gauge(
    name: str,
    documentation: str,
    labels: Mapping[str, LabelValues] | None = None,
    *,
    multiprocess_mode: GaugeMode = "livesum",
    initialize: bool = False,
) -> Metric:
    """``multiprocess_mode`` says how gunicorn/Celery worker values combine: ``livesum`` for amounts held
    by live processes (connections in use), ``max`` for timestamps, ``mostrecent`` for a last reading."""
    return _declare(
        "gauge", name, documentation, labels, multiprocess_mode=multiprocess_mode, initialize=initialize
    )


def histogram(
    name: str,
    documentation: str,
    labels: Mapping[str, LabelValues] | None = None,
    *,
    buckets: Iterable[float] | None = None,
) -> Metric:
    return _declare("histogram", name, documentation, labels, buckets=buckets)


def get(name: str) -> Metric:
    try:
        return _registry[name]
    except KeyError:
        raise KeyError(
            f"metric {name!r} is not declared (see sigma_playground/telemetry/metrics.py)"
        ) from None


def declared() -> dict[str, Metric]:
    return dict(_registry)


# --- The design's PerformanceMetrics, by name ---------------------------------------------------------------


def record_value(name: str, value: float, tags: Mapping[str, object] | None = None) -> None:
    get(name).record(value, tags)


def record_timing(name: str, start: float, end: float, tags: Mapping[str, object] | None = None) -> None:
    """``start`` and ``end`` from ``time.perf_counter()``; observed in seconds."""
    get(name).observe(max(0.0, end - start), tags)


def record_counter(name: str, increment: float = 1, tags: Mapping[str, object] | None = None) -> None:
    get(name).inc(increment, tags)


@contextmanager
def timer(name: str, tags: Mapping[str, object] | None = None) -> Iterator[None]:
    with get(name).time(tags):
        yield


# --- Label sets shared by several metrics -------------------------------------------------------------------


def model_tables() -> set[str]:
    """Database table names of installed models (for the database issue's query metrics)."""
    from django.apps import apps

    return {model._meta.db_table for model in apps.get_models(include_auto_created=True)}


_FOLDED: Metric | None = None


def _count_fold(metric_name: str) -> None:
    if _FOLDED is not None and metric_name != _FOLDED.name:
        _FOLDED.inc(metric=metric_name)
    logger.debug("metrics: a tag value of %s was outside its declared set and became 'other'", metric_name)


_FOLDED = counter(
    "sigma_metrics_label_folded_total",
    "Tag values folded into 'other' because they were outside the declared label set.",
    {"metric": Capped(limit=1000, pattern=_NAME_RE.pattern)},
)
