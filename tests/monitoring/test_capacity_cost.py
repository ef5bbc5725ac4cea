"""Cores for the design's phases from the measured CPU cost per arrival, and the CPU recommendation using it."""

import pytest

from monitoring.capacity import cost


def test_cores_needed_at_the_sla_cpu_target():
    assert cost.cores_needed(100, 0.014, 70) == pytest.approx(2.0)


def test_design_phases_and_peak_advice(settings):
    settings.LOAD_TEST = {
        **settings.LOAD_TEST,
        "phases": [
            {"name": "Warm up", "duration_s": 60, "arrivals_per_s": 10},
            {"name": "Peak load", "duration_s": 60, "arrivals_per_s": 200},
        ],
        "cpu_seconds_per_arrival": {"design": 0.07, "anonymous": 0.007},
    }
    rows = cost.design_phases()
    assert [(r.phase, r.scenario) for r in rows] == [
        ("Warm up", "design"),
        ("Warm up", "anonymous"),
        ("Peak load", "design"),
        ("Peak load", "anonymous"),
    ]
    peak = rows[2]
    assert peak.busy_cores == pytest.approx(14.0) and peak.cores_at_target == pytest.approx(20.0)
    advice = cost.peak_advice()
    assert "peak (200 arrivals/s)" in advice and "design 20.0" in advice and "anonymous 2.0" in advice


def test_no_measured_cost_no_advice(settings):
    settings.LOAD_TEST = {**settings.LOAD_TEST, "cpu_seconds_per_arrival": {}}
    assert cost.design_phases() == [] and cost.peak_advice() == ""
