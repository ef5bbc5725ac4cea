"""Real-user monitoring beacons: strict validation and recording.

The beacon ``static/js/rum.js`` sends (one per page view, when the page is hidden)::

    {"route": "workbooks:detail",
     "metrics": {"lcp": 812.4, "inp": 48, "cls": 0.02, "ttfb": 95.1, "dcl": 402.7, "load": 640.3},
     "clicks": {"favorite": 1}, "submits": {"search": 1}}

Times are milliseconds from the start of navigation; CLS is unitless. Anything else is refused whole: an
unknown key, route, metric or data-rum name, a value that is not a finite number in range, too many entries.
So a beacon can only ever add to series that already could exist.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache

from monitoring import instruments
from sigma_playground.caching import keys
from sigma_playground.telemetry.routes import page_route_names

TIMING_MAX_MS = 120_000.0  # two minutes: later than that is a backgrounded tab, not a page load
CLS_MAX = 10.0
COUNT_MAX = 100
TOP_LEVEL_KEYS = frozenset({"route", "metrics", "clicks", "submits"})


class Malformed(ValueError):
    pass


@dataclass
class Report:
    route: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    cls: float | None = None
    clicks: dict[str, int] = field(default_factory=dict)
    submits: dict[str, int] = field(default_factory=dict)


def _number(value: object, low: float, high: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Malformed(f"{what} is not a number")
    try:
        number = float(value)
    except OverflowError:
        raise Malformed(f"{what} is out of range") from None
    if not math.isfinite(number) or not low <= number <= high:
        raise Malformed(f"{what} is out of range")
    return number


def _counts(value: object, what: str) -> dict[str, int]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > len(settings.RUM_INTERACTION_NAMES):
        raise Malformed(f"{what} must be an object of data-rum names")
    counts = {}
    for name, count in value.items():
        if name not in settings.RUM_INTERACTION_NAMES:
            raise Malformed(f"unknown data-rum name in {what}")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= COUNT_MAX:
            raise Malformed(f"{what} counts are integers from 1 to {COUNT_MAX}")
        counts[name] = count
    return counts


def parse(body: bytes) -> Report:
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Malformed("not JSON") from exc
    if not isinstance(data, dict) or not set(data) <= TOP_LEVEL_KEYS:
        raise Malformed("unexpected keys")
    route = data.get("route")
    if not isinstance(route, str) or route not in page_route_names():
        raise Malformed("unknown route")
    report = Report(route=route)
    metrics = data.get("metrics", {})
    if not isinstance(metrics, dict):
        raise Malformed("metrics must be an object")
    for name, value in metrics.items():
        if name == "cls":
            report.cls = _number(value, 0.0, CLS_MAX, "cls")
        elif name in instruments.RUM_TIMINGS:
            report.timings_ms[name] = _number(value, 0.0, TIMING_MAX_MS, name)
        else:
            raise Malformed("unknown metric")
    report.clicks = _counts(data.get("clicks"), "clicks")
    report.submits = _counts(data.get("submits"), "submits")
    return report


def _reject_constant(name: str) -> None:
    raise Malformed(f"{name} is not a number")


def record(report: Report) -> None:
    for name, value in report.timings_ms.items():
        instruments.RUM_TIMING.observe(value / 1000.0, route=report.route, metric=name)
    if report.cls is not None:
        instruments.RUM_CLS.observe(report.cls, route=report.route)
    for kind, counts in (("click", report.clicks), ("submit", report.submits)):
        for name, count in counts.items():
            instruments.RUM_INTERACTIONS.inc(count, route=report.route, type=kind, target=name)


def allow_beacon(client: str, now: float | None = None) -> bool:
    """At most RUM_RATE_LIMIT_PER_MINUTE beacons per client per clock minute, counted in the cache.

    Fails open: with the cache unreachable the beacon is accepted (the metrics stay bounded either way).
    """
    minute = int((time.time() if now is None else now) // 60)
    key = keys.rum_beacons(client, minute)
    try:
        if cache.add(key, 1, timeout=120):
            return True
        count = cache.incr(key)
    except Exception:
        return True
    return count is None or count <= settings.RUM_RATE_LIMIT_PER_MINUTE
