"""The SLA as data: the design's numbers, consistency, derived thresholds, load-test verdicts."""

from __future__ import annotations

import copy

import pytest
from django.core.exceptions import ImproperlyConfigured

from monitoring import sla


def test_the_settings_hold_the_designs_sla(settings):
    assert settings.SLA["response_time_ms"] == {
        "api": {"p50": 200, "p95": 500, "p99": 1000},
        "page_load": {"p50": 1000, "p95": 2000, "p99": 3000},
    }
    assert settings.SLA["throughput"] == {
        "requests_per_second": 1000,
        "concurrent_users": 5000,
        "database_connections": 100,
    }
    assert settings.SLA["availability"] == {
        "uptime_percent": 99.9,
        "max_downtime_hours_per_year": 8.76,
        "error_rate_percent": 0.1,
    }
    assert settings.SLA["resource_utilization_percent"] == {"cpu": 70, "memory": 80, "disk": 85}
    current = sla.current()
    assert current.allowed_downtime_hours_per_year == pytest.approx(8.76)


@pytest.mark.parametrize(
    "path,value,message",
    [
        (("availability", "max_downtime_hours_per_year"), 4.0, "allows 8.76 h"),
        (("response_time_ms", "api", "p95"), 100, "percentiles must grow"),
        (("resource_utilization_percent", "cpu"), 170, "percentage"),
    ],
)
def test_an_inconsistent_sla_is_refused(settings, path, value, message):
    data = copy.deepcopy(settings.SLA)
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    settings.SLA = data
    with pytest.raises(ImproperlyConfigured, match=message):
        sla.current()


def test_an_incomplete_sla_is_refused(settings):
    settings.SLA = {"response_time_ms": {}}
    with pytest.raises(ImproperlyConfigured, match="incomplete"):
        sla.current()


def test_alert_thresholds_reproduce_the_designs_alert_numbers():
    assert sla.alert_thresholds() == {
        "HighResponseTime": 0.5,
        "HighErrorRate": 0.01,
        "HighCPUUsage": 80,
        "HighMemoryUsage": 85,
        "DiskSpaceHigh": 85,
        "DatabaseConnectionsHigh": 80,
        "CacheHitRatioCollapsed": 0.5,
        "CeleryBeatHeartbeatMissing": 180,
        "CeleryQueueBacklogGrowing": 100,
        "CeleryQueueUnconsumed": 0,
        "WebVitalsLCPHigh": 2.5,
        "CDNPurgeFailing": 0,
        "ReplicaLagHigh": 5.0,  # REPLICA_MAX_LAG_SECONDS
        "ReplicaUnavailable": 1,
    }


def test_thresholds_follow_the_sla_when_it_changes(settings):
    data = copy.deepcopy(settings.SLA)
    data["response_time_ms"]["api"] = {"p50": 100, "p95": 300, "p99": 800}
    data["availability"]["error_rate_percent"] = 0.5
    data["throughput"]["database_connections"] = 200
    settings.SLA = data
    t = sla.thresholds()
    assert (t["latency_p95_ms"].warning, t["latency_p95_ms"].critical) == (300, 800)
    assert (t["error_rate_percent"].warning, t["error_rate_percent"].critical) == (0.5, 5.0)
    assert (t["db_connections"].warning, t["db_connections"].critical) == (160, 200)
    assert sla.alert_thresholds()["HighErrorRate"] == 0.05


@pytest.mark.parametrize(
    "value,expected",
    [(499.9, "ok"), (500, "ok"), (500.1, "warning"), (1000, "warning"), (1000.1, "critical")],
)
def test_a_threshold_grades_at_below_and_above(value, expected):
    assert sla.Threshold(500, 1000).grade(value) == expected


@pytest.mark.parametrize("value,expected", [(0.51, "ok"), (0.5, "ok"), (0.49, "warning")])
def test_a_lower_is_worse_threshold(value, expected):
    assert sla.Threshold(0.5, higher_is_worse=False).grade(value) == expected


def test_load_test_verdicts():
    good = sla.load_test_verdict(
        p50_ms=150, p95_ms=480, p99_ms=900, error_rate_percent=0.05, requests_per_second=1200
    )
    assert good.passed and good.failures == []
    bad = sla.load_test_verdict(
        p50_ms=250, p95_ms=500, p99_ms=1500, error_rate_percent=0.2, requests_per_second=400
    )
    assert not bad.passed
    assert bad.failures == [
        "p50 250 ms > 200 ms",
        "p99 1500 ms > 1000 ms",
        "error rate 0.200% > 0.1%",
        "achieved throughput 400 req/s < 1000 req/s",
    ]
    page = sla.load_test_verdict(p50_ms=900, p95_ms=1900, p99_ms=2900, error_rate_percent=0, kind="page_load")
    assert page.passed


def test_load_test_verdict_per_phase_says_offered_against_achieved():
    phases = [
        sla.PhaseResult("Warm up", 40, 90, 150, 0.0, offered_per_second=10, achieved_per_second=9.8),
        sla.PhaseResult("Peak load", 150, 2400, 9000, 4.0, offered_per_second=200, achieved_per_second=31.0),
    ]
    verdict = sla.load_test_verdict(phases=phases)
    assert not verdict.passed
    assert verdict.phases["Warm up"].passed
    assert verdict.phases["Peak load"].failures == [
        "p95 2400 ms > 500 ms",
        "p99 9000 ms > 1000 ms",
        "error rate 4.000% > 0.1%",
        "achieved 31.0 arrivals/s < offered 200.0 arrivals/s",
    ]
    assert verdict.failures[0] == "Peak load: p95 2400 ms > 500 ms"
    assert sla.load_test_verdict(phases=phases[:1]).passed
    assert not sla.load_test_verdict(phases=[]).passed  # no phase measured is no pass
