"""The capacity report: current values, projections at 1, 3, 6 and 12 months, threshold crossings and
recommendations; as text, as JSON, stored, and drawn.

What is fitted. Each resource becomes one point per complete UTC day of the last CAPACITY_HISTORY_DAYS:
the day's worst hour (the highest hourly mean; the lowest for the cache hit ratio, where lower is worse).
A day's mean hides the peak that crosses a threshold first; a one-minute maximum is a spike, not a trend;
the busiest hour is what a machine has to carry. The points are fitted as :mod:`.projection` describes.

With fewer than CAPACITY_MIN_HISTORY_DAYS days of data (overall, or for one resource) there are no
projections and the report says so; recommendations then come from current values alone.

"Current" is the mean of the samples in the :data:`CURRENT_WINDOW` up to the latest one, so that one busy
minute does not read as the new normal.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.utils import timezone

from monitoring.capacity import cost, projection, retention
from monitoring.capacity.resources import (
    BY_KEY,
    HORIZON_DAYS,
    PRIORITIES,
    RESOURCES,
    Limit,
    Resource,
    format_value,
    priority,
    thresholds,
)
from monitoring.models import CapacityHour, CapacityReport, CapacitySample

HORIZONS = ((1, 30), (3, 90), (6, 180), (12, 365))  # (months, days)
CURRENT_WINDOW = timedelta(minutes=15)
RECENT_SAMPLES = 120  # enough for CURRENT_WINDOW at one sample every 10 s
STALE_AFTER = timedelta(minutes=10)
DEMO_TEXT = "invented demo data written by seed_demo --capacity-history, not measurements"
METHOD = (
    "least squares on each day's worst hour (highest hourly mean; lowest for the cache hit ratio), "
    "linear or exponential by which fits better; band: 95% prediction interval of the fit"
)
OVER, DATE, NOT_WITHIN_YEAR, NO_THRESHOLD, NOT_MEANINGFUL, NO_DATA = (
    "over",
    "date",
    "not_within_year",
    "no_threshold",
    "not_meaningful",
    "no_data",
)


def _iso(value: date | datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _date(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


def _datetime(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


@dataclass(frozen=True)
class DayPoint:
    day: date
    value: float  # the day's worst hourly mean
    low: float  # the day's lowest sample
    high: float  # the day's highest sample

    def t(self, origin: datetime) -> float:
        """Days from ``origin`` to this day's noon."""
        noon = datetime.combine(self.day, time(12), tzinfo=UTC)
        return (noon - origin).total_seconds() / 86400


@dataclass(frozen=True)
class ProjectionPoint:
    months: int
    days: int
    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Crossing:
    status: str
    date: date | None = None  # the field shadows the type below: dt.date there
    days: float | None = None
    earliest: dt.date | None = None  # where the band's bad edge crosses
    latest: dt.date | None = None  # where its good edge crosses (None: not within a year)

    def describe(self) -> str:
        if self.status == OVER:
            return "over the threshold now"
        if self.status == DATE:
            band = f"{self.earliest or 'now'} to {self.latest or 'beyond a year'}"
            return f"around {self.date} (in {self.days:.0f} days; 95% band {band})"
        if self.status == NOT_WITHIN_YEAR:
            early = f" (95% band: as early as {self.earliest})" if self.earliest else ""
            return f"not within a year{early}"
        return {
            NO_THRESHOLD: "no threshold",
            NOT_MEANINGFUL: "projection not yet meaningful",
            NO_DATA: "no data",
        }[self.status]


@dataclass
class ResourceReport:
    key: str
    current: float | None
    threshold: float | None
    threshold_label: str
    series: list[DayPoint]
    fit: projection.Fit | None
    projections: list[ProjectionPoint]
    crossing: Crossing
    detail: str = ""  # what the current value is out of, or where it was read

    @property
    def resource(self) -> Resource:
        return BY_KEY[self.key]

    @property
    def title(self) -> str:
        return self.resource.title

    @property
    def over_now(self) -> bool:
        return self.crossing.status == OVER

    def format(self, value: float | None) -> str:
        return self.resource.format(value)

    @property
    def current_text(self) -> str:
        return self.format(self.current)

    @property
    def threshold_text(self) -> str:
        return self.threshold_label or "no threshold"

    @property
    def method_text(self) -> str:
        unit = {"%": " points", "ratio": ""}.get(self.resource.unit, f" {self.resource.unit}")
        return self.fit.describe(unit) if self.fit else ""

    @property
    def projection_rows(self) -> list[dict]:
        return [
            {
                "months": p.months,
                "value": self.format(p.value),
                "band": self.band_text(p),
            }
            for p in self.projections
        ]

    def band_text(self, p: ProjectionPoint) -> str:
        axis = self.resource.format_axis
        return f"{axis(p.low)} to {axis(p.high)}"

    def predict(self, t: float) -> projection.Prediction | None:
        if self.fit is None:
            return None
        return self.fit.predict(t).clamped(*self.resource.bounds)

    def as_dict(self) -> dict:
        return {
            "key": self.key,
            "title": self.title,
            "unit": self.resource.unit,
            "higher_is_worse": self.resource.higher_is_worse,
            "current": self.current,
            "threshold": self.threshold,
            "threshold_label": self.threshold_label,
            "series": [[p.day.isoformat(), p.value, p.low, p.high] for p in self.series],
            "fit": self.fit.as_dict() if self.fit else None,
            "projections": [p.__dict__ for p in self.projections],
            "crossing": {
                "status": self.crossing.status,
                "date": _iso(self.crossing.date),
                "days": self.crossing.days,
                "earliest": _iso(self.crossing.earliest),
                "latest": _iso(self.crossing.latest),
                "text": self.crossing.describe(),
            },
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ResourceReport:
        c = data["crossing"]
        return cls(
            key=data["key"],
            current=data["current"],
            threshold=data["threshold"],
            threshold_label=data["threshold_label"],
            series=[DayPoint(date.fromisoformat(d), v, lo, hi) for d, v, lo, hi in data["series"]],
            fit=projection.Fit.from_dict(data["fit"]) if data["fit"] else None,
            projections=[ProjectionPoint(**p) for p in data["projections"]],
            crossing=Crossing(
                c["status"], _date(c["date"]), c["days"], _date(c["earliest"]), _date(c["latest"])
            ),
            detail=data.get("detail", ""),
        )


@dataclass(frozen=True)
class Recommendation:
    resource: str
    type: str
    priority: str
    action: str
    message: str


@dataclass(frozen=True)
class TableGrowth:
    table: str
    rows: int | None
    per_day: float | None


@dataclass
class CapacityAnalysis:
    generated_at: datetime
    history_days: int
    min_days: int
    days_with_data: int
    current_at: datetime | None
    current_samples: int
    missing: dict[str, str]  # source -> why, in the latest sample
    resources: list[ResourceReport]
    recommendations: list[Recommendation]
    tables: list[TableGrowth] = field(default_factory=list)
    demo_days: int = (
        0  # days of the history written by seed_demo --capacity-history (monitoring.capacity.demo)
    )

    @property
    def meaningful(self) -> bool:
        return self.days_with_data >= self.min_days

    @property
    def top_priority(self) -> str:
        levels = [PRIORITIES.index(r.priority) for r in self.recommendations]
        return PRIORITIES[min(levels)] if levels else ""

    @property
    def stale(self) -> bool:
        return self.current_at is None or self.generated_at - self.current_at > STALE_AFTER

    @property
    def history_note(self) -> str:
        if self.meaningful:
            return (
                f"{self.days_with_data} of the last {self.history_days} days have data "
                f"(projections need {self.min_days})."
            )
        return (
            f"Projections are not yet meaningful: {self.days_with_data} day(s) of history, they need "
            f"{self.min_days}. Current values, and recommendations from them, follow."
        )

    def resource(self, key: str) -> ResourceReport:
        return next(r for r in self.resources if r.key == key)

    def as_dict(self) -> dict:
        return {
            "generated_at": self.generated_at.isoformat(timespec="seconds"),
            "history_days": self.history_days,
            "min_days": self.min_days,
            "days_with_data": self.days_with_data,
            "meaningful": self.meaningful,
            "method": METHOD,
            "current_at": _iso(self.current_at),
            "current_samples": self.current_samples,
            "missing": self.missing,
            "resources": [r.as_dict() for r in self.resources],
            "recommendations": [r.__dict__ for r in self.recommendations],
            "top_priority": self.top_priority,
            "tables": [t.__dict__ for t in self.tables],
            "demo_days": self.demo_days,
        }

    @classmethod
    def from_dict(cls, data: dict) -> CapacityAnalysis:
        return cls(
            generated_at=datetime.fromisoformat(data["generated_at"]),
            history_days=data["history_days"],
            min_days=data["min_days"],
            days_with_data=data["days_with_data"],
            current_at=_datetime(data["current_at"]),
            current_samples=data["current_samples"],
            missing=data["missing"],
            resources=[ResourceReport.from_dict(r) for r in data["resources"] if r["key"] in BY_KEY],
            recommendations=[Recommendation(**r) for r in data["recommendations"]],
            tables=[TableGrowth(**t) for t in data["tables"]],
            demo_days=data.get("demo_days", 0),
        )

    def as_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)

    def as_text(self) -> str:
        lines = [
            f"Capacity report, {self.generated_at:%Y-%m-%d %H:%M} UTC",
            "",
            f"History: {self.history_note}",
            f"Method: {METHOD}.",
        ]
        if self.demo_days:
            lines.append(f"DEMO: {self.demo_days} day(s) of this history are {DEMO_TEXT}.")
        if self.current_at is None:
            lines.append("Current: no samples yet (is the capacity-sample beat task running?).")
        else:
            lines.append(
                f"Current: mean of {self.current_samples} sample(s) up to {self.current_at:%Y-%m-%d %H:%M} UTC"
                + (" - STALE: is the capacity-sample beat task running?" if self.stale else ".")
            )
        lines.append("")
        for r in self.resources:
            lines.append(f"{r.title:<22} now {r.current_text:<14} threshold: {r.threshold_text}")
            if r.detail:
                lines.append(f"  {r.detail}")
            if r.projections:
                lines.append(f"  projection: {r.method_text}; [95% band]")
                lines.append(
                    "    "
                    + "   ".join(
                        f"{p.months:>2} mo {r.format(p.value)} [{r.band_text(p)}]" for p in r.projections
                    )
                )
            if r.crossing.status not in (NO_THRESHOLD, NO_DATA):
                lines.append(f"  crosses {r.threshold_label}: {r.crossing.describe()}")
            elif not r.series and r.current is None:
                lines.append("  no data")
        lines += ["", "Recommendations:"]
        if self.recommendations:
            lines += [f"  [{r.priority.upper():6}] {r.type}: {r.message}" for r in self.recommendations]
        else:
            lines.append("  none: every resource stays within its threshold for at least a year.")
        phases = cost.design_phases()
        if phases:
            lines += [
                "",
                "Cores the design's load-test phases need (measured CPU s per arrival, SLA CPU target):",
            ]
            lines += [
                f"  {p.phase:<16} {p.arrivals_per_s:>5g}/s {p.scenario:<10} {p.cpu_seconds_per_arrival:.4f} s each: "
                f"{p.busy_cores:.1f} cores busy, {p.cores_at_target:.1f} at the target"
                for p in phases
            ]
        if self.tables:
            lines += ["", "Tables (estimated rows):"]
            for t in self.tables:
                rows = "-" if t.rows is None else f"{t.rows:,}"
                growth = "" if t.per_day is None else f" ({t.per_day:+,.0f}/day)"
                lines.append(f"  {t.table:<32} {rows}{growth}")
        if self.missing:
            lines += ["", "Missing in the latest sample:"]
            lines += [f"  {source}: {why}" for source, why in self.missing.items()]
        return "\n".join(lines)


# --- Building ------------------------------------------------------------------------------------------------

HourRow = tuple[datetime, dict]


def daily_series(hours: Iterable[HourRow], key: str, higher_is_worse: bool = True) -> list[DayPoint]:
    by_day: dict[date, list[dict]] = {}
    for hour, stats in hours:
        item = stats.get(key)
        if item:
            by_day.setdefault(hour.astimezone(UTC).date(), []).append(item)
    points = []
    for day in sorted(by_day):
        items = by_day[day]
        means = [i["mean"] for i in items]
        points.append(
            DayPoint(
                day,
                max(means) if higher_is_worse else min(means),
                min(i["min"] for i in items),
                max(i["max"] for i in items),
            )
        )
    return points


def _beyond(value: float, threshold: float, higher_is_worse: bool) -> bool:
    return value > threshold if higher_is_worse else value < threshold


def analyse_resource(
    resource: Resource,
    series: list[DayPoint],
    current: float | None,
    limit: Limit | None,
    now: datetime,
    min_days: int | None,
) -> ResourceReport:
    """``min_days``: the days of data a fit needs (None: don't fit)."""
    fit = None
    if min_days is not None and len(series) >= min_days:
        fit = projection.fit([(p.t(now), p.value) for p in series])
    projections = []
    if fit is not None:
        for months, days in HORIZONS:
            p = fit.predict(days).clamped(*resource.bounds)
            projections.append(ProjectionPoint(months, days, p.value, p.low, p.high))
    hiw = resource.higher_is_worse
    if limit is None:
        crossing = Crossing(NO_THRESHOLD)
    elif current is not None and _beyond(current, limit.value, hiw):
        crossing = Crossing(OVER, days=0.0)
    elif fit is None:
        crossing = Crossing(NOT_MEANINGFUL if series or current is not None else NO_DATA)
    else:
        day = fit.crossing_day(limit.value, hiw)
        earliest = fit.band_crossing_day(limit.value, hiw, "early", HORIZON_DAYS)
        latest = fit.band_crossing_day(limit.value, hiw, "late", HORIZON_DAYS)

        def on(d: float | None) -> date | None:
            return None if d is None else (now + timedelta(days=d)).date()

        if day is None or day > HORIZON_DAYS:
            crossing = Crossing(NOT_WITHIN_YEAR, earliest=on(earliest))
        else:
            day = max(0.0, day)
            crossing = Crossing(DATE, on(day), round(day, 1), on(earliest), on(latest))
    return ResourceReport(
        key=resource.key,
        current=current,
        threshold=None if limit is None else limit.value,
        threshold_label="" if limit is None else limit.label,
        series=series,
        fit=fit,
        projections=projections,
        crossing=crossing,
    )


def recommend(reports: Sequence[ResourceReport]) -> list[Recommendation]:
    found = []
    for r in reports:
        days = r.crossing.days if r.crossing.status == DATE else None
        level = priority(r.resource, over_now=r.over_now, crossing_days=days)
        if level is None:
            continue
        if r.over_now:
            situation = f"at {r.current_text}, over the threshold ({r.threshold_label})"
        else:
            situation = (
                f"projected to reach {r.threshold_label} around {r.crossing.date} (in {days:.0f} days)"
            )
        found.append(
            Recommendation(
                resource=r.key,
                type=r.resource.kind,
                priority=level,
                action=r.resource.action,
                message=f"{r.title}: {situation}. {r.resource.advice}"
                + (cost.peak_advice() if r.resource.kind == "cpu" else ""),
            )
        )
    order = [r.key for r in RESOURCES]
    return sorted(found, key=lambda rec: (PRIORITIES.index(rec.priority), order.index(rec.resource)))


def _current(recent: Sequence[CapacitySample]) -> tuple[dict[str, float], datetime | None, int]:
    if not recent:
        return {}, None, 0
    latest = recent[0].taken_at
    window = [s for s in recent if latest - s.taken_at <= CURRENT_WINDOW]
    values: dict[str, float] = {}
    for name in CapacitySample.metric_fields():
        items = [getattr(s, name) for s in window if getattr(s, name) is not None]
        if items:
            values[name] = sum(items) / len(items)
    return values, latest, len(window)


def _details(current: dict[str, float], latest: CapacitySample | None) -> dict[str, str]:
    """What each current value is out of, and where request and cache numbers were read."""

    def size(value: float | None) -> str:
        return format_value(value, "bytes")

    found = {}
    if "memory_used_bytes" in current and "memory_total_bytes" in current:
        found["memory_percent"] = (
            f"{size(current['memory_used_bytes'])} of {size(current['memory_total_bytes'])}"
        )
    if "disk_used_bytes" in current and "disk_total_bytes" in current:
        found["disk_percent"] = f"{size(current['disk_used_bytes'])} of {size(current['disk_total_bytes'])}"
    if "redis_used_memory_bytes" in current and "redis_max_memory_bytes" in current:
        found["redis_memory_percent"] = (
            f"{size(current['redis_used_memory_bytes'])} of {size(current['redis_max_memory_bytes'])}"
        )
    parts = []
    if "db_max_connections" in current:
        parts.append(f"max_connections {current['db_max_connections']:.0f}")
    if "db_pool_max" in current:
        parts.append(
            f"the sampling process's pool: {current.get('db_pool_in_use', 0):.0f} in use of {current['db_pool_max']:.0f}"
        )
    if parts:
        found["db_connections"] = "; ".join(parts)
    notes = latest.notes if latest is not None else {}
    for key, source in (
        ("request_rate", "requests"),
        ("latency_p95_ms", "requests"),
        ("cache_hit_ratio", "cache_hit_ratio"),
        ("queue_length", "queue"),
    ):
        if notes.get(source):
            found[key] = f"source: {notes[source]}"
    return found


def _tables(
    hours: Sequence[HourRow], latest: CapacitySample | None, now: datetime, min_days: int | None
) -> list[TableGrowth]:
    """Each sampled table's latest estimated rows, and its growth per day (a linear fit)."""
    latest_rows = (latest.table_rows or {}) if latest else {}
    prefix = retention.ROWS_PREFIX
    names = {key.removeprefix(prefix) for _, stats in hours for key in stats if key.startswith(prefix)}
    found = []
    for name in sorted(names | set(latest_rows)):
        series = daily_series(hours, prefix + name)
        per_day = None
        if min_days is not None and len(series) >= min_days:
            per_day = projection.fit_linear([(p.t(now), p.value) for p in series]).slope
        rows = latest_rows.get(name)
        if rows is None and series:
            rows = int(series[-1].value)
        found.append(TableGrowth(name, rows, per_day))
    return found


def analyse(
    hours: Sequence[HourRow],
    recent: Sequence[CapacitySample],
    now: datetime,
    *,
    history_days: int | None = None,
    min_days: int | None = None,
) -> CapacityAnalysis:
    """The report from hourly aggregates (the last ``history_days`` complete days) and the most recent
    samples (newest first). Pure: reads nothing but settings."""
    history_days = history_days or settings.CAPACITY_HISTORY_DAYS
    min_days = min_days or settings.CAPACITY_MIN_HISTORY_DAYS
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=history_days)
    hours = [(h, s) for h, s in hours if first <= h.astimezone(UTC).date() < today]
    days_with_data = len({h.astimezone(UTC).date() for h, _ in hours})
    demo_days = len({h.astimezone(UTC).date() for h, s in hours if s.get("demo")})
    current, current_at, current_samples = _current(recent)
    latest = recent[0] if recent else None
    max_connections = next((s.db_max_connections for s in recent if s.db_max_connections), None)
    limits = thresholds(max_connections)
    details = _details(current, latest)
    # Without enough history overall, nothing is fitted; with it, a resource needs as many days itself.
    fit_min = max(min_days, projection.MIN_POINTS) if days_with_data >= min_days else None
    reports = []
    for resource in RESOURCES:
        analysed = analyse_resource(
            resource,
            daily_series(hours, resource.key, resource.higher_is_worse),
            current.get(resource.key),
            limits.get(resource.key),
            now,
            fit_min,
        )
        analysed.detail = details.get(resource.key, "")
        reports.append(analysed)
    missing = {}
    if latest is not None:
        missing = {source: latest.notes.get(source, "") for source in latest.missing}
    return CapacityAnalysis(
        generated_at=now,
        history_days=history_days,
        min_days=min_days,
        days_with_data=days_with_data,
        current_at=current_at,
        current_samples=current_samples,
        missing=missing,
        resources=reports,
        recommendations=recommend(reports),
        tables=_tables(hours, latest, now, fit_min),
        demo_days=demo_days,
    )


def load(now: datetime, history_days: int | None = None) -> tuple[list[HourRow], list[CapacitySample]]:
    """Two queries: the hourly aggregates of the history window, and the latest samples."""
    history_days = history_days or settings.CAPACITY_HISTORY_DAYS
    today = datetime.combine(now.astimezone(UTC).date(), time.min, tzinfo=UTC)
    hours = list(
        CapacityHour.objects.filter(hour__gte=today - timedelta(days=history_days), hour__lt=today)
        .order_by("hour")
        .values_list("hour", "stats")
    )
    recent = list(CapacitySample.objects.filter(taken_at__lte=now).order_by("-taken_at")[:RECENT_SAMPLES])
    return hours, recent


def build(now: datetime | None = None) -> CapacityAnalysis:
    now = now or timezone.now()
    hours, recent = load(now)
    return analyse(hours, recent, now)


def store(analysis: CapacityAnalysis, trigger: str = CapacityReport.Trigger.SCHEDULE) -> CapacityReport:
    return CapacityReport.objects.create(
        created_at=analysis.generated_at,
        trigger=trigger,
        meaningful=analysis.meaningful,
        days_with_data=analysis.days_with_data,
        top_priority=analysis.top_priority,
        recommendations=len(analysis.recommendations),
        data=analysis.as_dict(),
        text=analysis.as_text(),
    )


def generate(trigger: str = CapacityReport.Trigger.SCHEDULE, now: datetime | None = None) -> CapacityReport:
    """Roll up the hours not summarised yet, build the report and store it."""
    now = now or timezone.now()
    retention.rollup(now)
    return store(build(now), trigger)
