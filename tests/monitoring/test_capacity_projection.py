"""Capacity projections and recommendations, on synthetic histories with known growth.

Tolerance. Each day is fitted at its worst hour (for a growing resource, the day's last hour), placed at the
day's noon, so against the smooth curve the history was drawn from, the fit runs half a day early: that is
what it is meant to estimate (:func:`worst_hour`). With ±1 % daily noise, projections at 1 and 3 months are
checked within 2 % of it, and crossing dates within 2 days of the curve's own.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from monitoring.capacity import projection, report
from monitoring.capacity.report import DATE, NO_THRESHOLD, NOT_MEANINGFUL, NOT_WITHIN_YEAR, OVER, Crossing
from monitoring.capacity.resources import BY_KEY, priority, thresholds
from monitoring.models import CapacitySample

NOW = datetime(2026, 3, 1, 4, 23, tzinfo=UTC)
DAYS_TOLERANCE = 2.0
RELATIVE_TOLERANCE = 0.02


def hourly_history(
    curves: dict[str, Callable[[float], float]], days: int = 30, now: datetime = NOW, noise: float = 0.0
) -> list[tuple[datetime, dict]]:
    """Hourly aggregates for the ``days`` complete days before ``now``: each metric's value is its curve at
    the middle of the hour (``t`` in days from ``now``), times 1 ± ``noise`` drawn once a day (seeded)."""
    rng = random.Random(7)
    today = datetime.combine(now.date(), datetime.min.time(), tzinfo=UTC)
    rows = []
    hour = today - timedelta(days=days)
    factor = 1.0
    while hour < today:
        if hour.hour == 0:
            factor = 1 + rng.uniform(-noise, noise)
        t = (hour + timedelta(minutes=30) - now).total_seconds() / 86400
        stats = {}
        for key, curve in curves.items():
            value = curve(t) * factor
            stats[key] = {"min": value * 0.95, "mean": value, "max": value * 1.05, "n": 60}
        rows.append((hour, stats))
        hour += timedelta(hours=1)
    return rows


def worst_hour(curve: Callable[[float], float], t: float) -> float:
    """What the fit estimates for a rising curve: the day's last hour, which each day's point (at noon)
    stands for, 11.5 hours later than the point."""
    return curve(t + 11.5 / 24)


def on_day(days: float) -> datetime:
    return NOW + timedelta(days=days)


def assert_close(actual: float, expected: float, what: str) -> None:
    assert abs(actual - expected) <= RELATIVE_TOLERANCE * abs(expected), f"{what}: {actual} vs {expected}"


def assert_crosses_around(crossing: Crossing, expected_days: float) -> None:
    assert crossing.status == DATE, crossing
    expected = on_day(expected_days).date()
    assert abs((crossing.date - expected).days) <= DAYS_TOLERANCE, f"{crossing.date} vs {expected}"
    assert crossing.earliest is None or crossing.earliest <= crossing.date
    assert crossing.latest is None or crossing.latest >= crossing.date


# --- Synthetic histories ---------------------------------------------------------------------------------------


def linear_cpu(t: float) -> float:
    return 30 + 0.5 * t  # 30 % now, +0.5 point a day: 70 % in 80 days


def exponential_disk(t: float) -> float:
    return 10 * math.exp(0.02 * t)  # 10 % now, +2 % a day: 85 % in ln(8.5)/0.02 = 107 days


def test_linear_growth_is_fitted_linearly_and_crosses_when_expected():
    analysis = report.analyse(hourly_history({"cpu_percent": linear_cpu}, noise=0.01), [], NOW)
    cpu = analysis.resource("cpu_percent")
    assert analysis.meaningful
    assert cpu.fit.model == "linear"
    assert abs(cpu.fit.slope - 0.5) < 0.02
    by_months = {p.months: p for p in cpu.projections}
    assert sorted(by_months) == [1, 3, 6, 12]
    assert_close(by_months[1].value, worst_hour(linear_cpu, 30), "1 month")
    assert_close(by_months[3].value, worst_hour(linear_cpu, 90), "3 months")
    assert by_months[12].value == 100.0  # a percentage is clamped at 100
    for p in by_months.values():
        assert p.low <= p.value <= p.high
    assert by_months[1].low <= worst_hour(linear_cpu, 30) <= by_months[1].high
    assert_crosses_around(cpu.crossing, 80)


def test_exponential_growth_is_fitted_exponentially_and_crosses_when_expected():
    analysis = report.analyse(hourly_history({"disk_percent": exponential_disk}, noise=0.01), [], NOW)
    disk = analysis.resource("disk_percent")
    assert disk.fit.model == "exponential"
    assert abs(disk.fit.daily_growth - (math.exp(0.02) - 1)) < 0.001
    by_months = {p.months: p for p in disk.projections}
    assert_close(by_months[1].value, worst_hour(exponential_disk, 30), "1 month")
    assert_close(by_months[3].value, worst_hour(exponential_disk, 90), "3 months")
    assert_crosses_around(disk.crossing, math.log(8.5) / 0.02)
    assert disk.method_text.startswith("exponential, +2.0") and "doubling in 3" in disk.method_text


def test_a_flat_history_is_not_within_a_year():
    analysis = report.analyse(hourly_history({"memory_percent": lambda t: 40.0}, noise=0.03), [], NOW)
    memory = analysis.resource("memory_percent")
    assert memory.fit is not None
    assert memory.crossing.status == NOT_WITHIN_YEAR
    assert memory.crossing.describe().startswith("not within a year")
    assert "not within a year" in analysis.as_text()
    assert analysis.recommendations == []


def test_too_little_history_says_so_instead_of_projecting():
    hours = hourly_history({"cpu_percent": linear_cpu, "disk_percent": exponential_disk}, days=3)
    analysis = report.analyse(hours, [], NOW, min_days=7)
    assert not analysis.meaningful and analysis.days_with_data == 3
    for r in analysis.resources:
        assert r.fit is None and r.projections == []
    assert analysis.resource("cpu_percent").crossing.status == NOT_MEANINGFUL
    assert analysis.resource("cpu_percent").series  # the history is still there to draw
    text = analysis.as_text()
    assert "Projections are not yet meaningful: 3 day(s) of history, they need 7" in text
    assert analysis.as_dict()["meaningful"] is False


def test_a_resource_with_too_few_days_of_its_own_is_not_projected():
    hours = hourly_history({"cpu_percent": linear_cpu}, days=30)
    for _hour, stats in hours[-48:]:
        stats["redis_memory_percent"] = {"min": 50, "mean": 50, "max": 50, "n": 60}
    analysis = report.analyse(hours, [], NOW)
    assert analysis.resource("cpu_percent").fit is not None
    redis = analysis.resource("redis_memory_percent")
    assert redis.fit is None and redis.crossing.status == NOT_MEANINGFUL and len(redis.series) == 2


def test_the_band_widens_with_the_horizon_and_holds_the_truth():
    growth = lambda t: 2e9 + 3e7 * t  # noqa: E731 (database size: 2 GB, +30 MB a day, no bounds)
    analysis = report.analyse(hourly_history({"db_size_bytes": growth}, noise=0.02), [], NOW)
    size = analysis.resource("db_size_bytes")
    widths = [p.high - p.low for p in size.projections]
    assert widths == sorted(widths) and widths[-1] > widths[0] * 2
    for p in size.projections:
        assert p.low <= worst_hour(growth, p.days) <= p.high
    assert size.crossing.status == NO_THRESHOLD


def test_a_falling_cache_hit_ratio_crosses_its_minimum_downwards():
    falling = lambda t: 0.8 - 0.004 * t  # noqa: E731 (80 % now, losing 0.4 point a day: 50 % in 75 days)
    ratio = report.analyse(hourly_history({"cache_hit_ratio": falling}), [], NOW).resource("cache_hit_ratio")
    assert ratio.fit.slope < 0
    assert_crosses_around(ratio.crossing, 75)
    rising = lambda t: 0.8 + 0.004 * t  # noqa: E731
    analysis = report.analyse(hourly_history({"cache_hit_ratio": rising}), [], NOW)
    assert analysis.resource("cache_hit_ratio").crossing.status == NOT_WITHIN_YEAR


# --- The arithmetic ---------------------------------------------------------------------------------------------


def test_least_squares_recovers_an_exact_line_and_an_exact_exponential():
    line = projection.fit([(t, 3 + 2 * t) for t in range(-10, 0)])
    assert line.model == "linear" and line.slope == pytest.approx(2) and line.intercept == pytest.approx(3)
    assert line.predict(5).value == pytest.approx(13)
    assert line.crossing_day(23) == pytest.approx(10)
    curve = projection.fit([(t, 5 * math.exp(0.1 * t)) for t in range(-10, 0)])
    assert curve.model == "exponential" and curve.slope == pytest.approx(0.1)
    assert curve.predict(10).value == pytest.approx(5 * math.e)
    assert curve.crossing_day(5 * math.e) == pytest.approx(10)


def test_the_fit_needs_three_points_and_a_trend_to_cross():
    assert projection.fit([(0, 1), (1, 2)]) is None
    falling = projection.fit([(t, 50 - t) for t in range(-10, 0)])
    assert falling.crossing_day(70) is None
    assert falling.crossing_day(20, higher_is_worse=False) == pytest.approx(30)
    flat = projection.fit([(t, 40.0) for t in range(-10, 0)])
    assert flat.model == "linear" and flat.crossing_day(70) is None


def test_the_prediction_interval_uses_students_t():
    assert projection.t_quantile_975(1) == 12.706
    assert projection.t_quantile_975(28) == 2.048
    assert 1.96 < projection.t_quantile_975(100) < 1.99
    points = [(t, 10 + t + (1 if t % 2 else -1)) for t in range(-30, 0)]
    fit = projection.fit_linear(points)
    p = fit.predict(0)
    s = fit.residual_se
    expected = 2.048 * s * math.sqrt(1 + 1 / 30 + (0 - fit.t_mean) ** 2 / fit.sxx)
    assert p.high - p.value == pytest.approx(expected)


def test_a_stored_report_round_trips_through_json():
    analysis = report.analyse(
        hourly_history({"cpu_percent": linear_cpu, "disk_percent": exponential_disk}), [], NOW
    )
    again = report.CapacityAnalysis.from_dict(json.loads(analysis.as_json()))
    assert again.as_dict() == analysis.as_dict()
    assert again.as_text() == analysis.as_text()


# --- Recommendations and priorities ------------------------------------------------------------------------------


def resource_report(key: str, status: str, days: float | None = None, current: float | None = None):
    limit = thresholds().get(key)
    crossing = Crossing(status, date=on_day(days).date() if days is not None else None, days=days)
    return report.ResourceReport(
        key=key,
        current=current,
        threshold=limit.value if limit else None,
        threshold_label=limit.label if limit else "",
        series=[],
        fit=None,
        projections=[],
        crossing=crossing,
    )


# (resource, crossing status, days to the crossing) -> (type, priority, action), or None for no recommendation.
RECOMMENDATIONS = [
    (("cpu_percent", OVER, None), ("cpu", "high", "scale_up")),
    (("memory_percent", OVER, None), ("memory", "high", "increase_memory")),
    (("db_connections", OVER, None), ("database", "medium", "optimize_connections")),
    (("disk_percent", OVER, None), ("disk", "high", "grow_disk")),
    (("redis_memory_percent", OVER, None), ("cache", "medium", "increase_cache_memory")),
    (("queue_length", OVER, None), ("queue", "medium", "add_workers")),
    (("cpu_percent", DATE, 20), ("cpu", "high", "scale_up")),
    (("cpu_percent", DATE, 60), ("cpu", "medium", "scale_up")),
    (("cpu_percent", DATE, 200), ("cpu", "low", "scale_up")),
    (("disk_percent", DATE, 25), ("disk", "high", "grow_disk")),
    (("disk_percent", DATE, 107), ("disk", "low", "grow_disk")),
    (("db_connections", DATE, 20), ("database", "medium", "optimize_connections")),
    (("db_connections", DATE, 60), ("database", "low", "optimize_connections")),
    (("memory_percent", DATE, 90), ("memory", "medium", "increase_memory")),
    (("cpu_percent", NOT_WITHIN_YEAR, None), None),
    (("cpu_percent", NOT_MEANINGFUL, None), None),
    (("latency_p95_ms", OVER, None), None),  # projected and shown, but no capacity action of its own
]


@pytest.mark.parametrize("case,expected", RECOMMENDATIONS)
def test_thresholds_give_the_expected_recommendation_and_priority(case, expected):
    key, status, days = case
    found = report.recommend([resource_report(key, status, days, current=99.0)])
    if expected is None:
        assert found == []
        return
    (rec,) = found
    assert (rec.type, rec.priority, rec.action) == expected
    assert rec.resource == key and BY_KEY[key].title in rec.message


def test_the_designs_three_recommendations_from_current_values():
    """The design: CPU over 70 % high (scale up), memory over 80 % high (more memory), database connections
    over 80 medium (connection pooling) - here from the samples of the last minutes, with no history."""
    samples = [
        CapacitySample(
            taken_at=NOW - timedelta(minutes=i), cpu_percent=75, memory_percent=85, db_connections=85
        )
        for i in range(5)
    ]
    analysis = report.analyse([], samples, NOW)
    got = [(r.type, r.priority, r.action) for r in analysis.recommendations]
    assert got == [
        ("cpu", "high", "scale_up"),
        ("memory", "high", "increase_memory"),
        ("database", "medium", "optimize_connections"),
    ]
    assert analysis.top_priority == "high" and analysis.current_samples == 5


def test_current_values_say_what_they_are_out_of_and_where_they_were_read():
    latest = CapacitySample(
        taken_at=NOW,
        memory_percent=50.0,
        memory_used_bytes=4 * 2**30,
        memory_total_bytes=8 * 2**30,
        db_connections=12,
        db_max_connections=100,
        db_pool_in_use=1,
        db_pool_max=3,
        request_rate=2.5,
        notes={"requests": "Prometheus at http://prom:9090, all web processes, last 5m"},
    )
    analysis = report.analyse([], [latest], NOW)
    assert analysis.resource("memory_percent").detail == "4.0 GiB of 8.0 GiB"
    assert analysis.resource("db_connections").detail == (
        "max_connections 100; the sampling process's pool: 1 in use of 3"
    )
    assert analysis.resource("request_rate").detail.startswith("source: Prometheus at http://prom:9090")
    assert "source: Prometheus at http://prom:9090" in analysis.as_text()


def test_at_the_threshold_is_within_it():
    samples = [CapacitySample(taken_at=NOW, cpu_percent=70.0, memory_percent=80.0, db_connections=80)]
    assert report.analyse([], samples, NOW).recommendations == []


def test_current_is_the_mean_of_the_last_minutes_not_one_spike():
    samples = [CapacitySample(taken_at=NOW, cpu_percent=100.0)] + [
        CapacitySample(taken_at=NOW - timedelta(minutes=i), cpu_percent=40.0) for i in range(1, 15)
    ]
    samples.append(CapacitySample(taken_at=NOW - timedelta(minutes=30), cpu_percent=100.0))
    analysis = report.analyse([], samples, NOW)
    assert analysis.resource("cpu_percent").current == pytest.approx((100 + 14 * 40) / 15)
    assert analysis.recommendations == []


def test_priority_rules():
    cpu, db, latency = BY_KEY["cpu_percent"], BY_KEY["db_connections"], BY_KEY["latency_p95_ms"]
    assert priority(cpu, over_now=True, crossing_days=None) == "high"
    assert priority(cpu, over_now=False, crossing_days=30) == "high"
    assert priority(cpu, over_now=False, crossing_days=31) == "medium"
    assert priority(cpu, over_now=False, crossing_days=365) == "low"
    assert priority(cpu, over_now=False, crossing_days=None) is None
    assert priority(db, over_now=False, crossing_days=91) == "low"
    assert priority(latency, over_now=True, crossing_days=None) is None


def test_thresholds_come_from_the_sla_and_the_servers_max_connections(settings):
    t = thresholds()
    assert (t["cpu_percent"].value, t["memory_percent"].value, t["disk_percent"].value) == (70, 80, 85)
    assert t["db_connections"].value == 80  # 80 % of the SLA's 100
    assert thresholds(max_connections=200)["db_connections"].value == 80
    assert thresholds(max_connections=50)["db_connections"].value == 40
    assert "max_connections 50" in thresholds(max_connections=50)["db_connections"].label
    settings.CAPACITY_REDIS_MEMORY_PERCENT = 75.0
    assert thresholds()["redis_memory_percent"].value == 75.0
    assert "latency_p95_ms" in t and "db_size_bytes" not in t
