"""Issue 15's goals judged from samples (loadtest/goals.py): each criterion passes and fails where it should."""

import math

import pytest

from loadtest import goals, report
from loadtest.samples import Arrival, CpuSample, Phase, Run, Sample


def phase_figures(
    *,
    rate: float = 20.0,
    seconds: float = 60.0,
    ms: float = 100.0,
    errors: int = 0,
    completed_share: float = 1.0,
    generator_cores: float = 0.2,
    lag_s: float = 0.0,
    requests_per_arrival: int = 5,
    name: str = "p",
) -> report.PhaseFigures:
    """One phase's figures from a synthetic run: ``rate`` arrivals/s for ``seconds``, every request ``ms``."""
    run = Run(base_url="http://127.0.0.1:1", scenario="design", started=0.0, ended=seconds)
    run.phases = [(Phase(name, seconds, rate), 0.0, seconds)]
    n = int(rate * seconds)
    for i in range(n):
        at = i / rate
        run.arrivals.append(Arrival(name, at, at + lag_s, at + 1, i < n * completed_share))
        for _ in range(requests_per_arrival):
            run.samples.append(Sample(at, name, "r", ms, 200, True, ""))
    for i in range(errors):
        run.samples[i] = Sample(run.samples[i].at, name, "r", ms, 500, False, "status 500")
    run.cpu = [CpuSample(float(s), 1.0, 1.5, 0.2, generator_cores, 0.1) for s in range(1, int(seconds) + 1)]
    return report.summarize(run).phases[0]


# --- Design flow: sustained ---------------------------------------------------------------------------------


def test_sustained_passes_at_the_rate_within_p95_and_errors():
    goal = goals.sustained(phase_figures(), min_rate=20, p95_ms=500, max_error_percent=0.1, name="design")
    assert goal.passed and goal.status == "PASS"
    assert "achieved 20.0/s" in goal.figure and "p95 100 ms" in goal.figure


@pytest.mark.parametrize(
    ("figures", "why"),
    [
        ({"rate": 10}, "phase rate 10/s < 20/s"),
        ({"ms": 600}, "p95 600 ms > 500 ms"),
        ({"errors": 7}, "errors 0.12% > 0.1%"),  # 7 of 6,000 requests
        ({"completed_share": 0.9}, "achieved 18.0/s < offered 20.0/s"),
    ],
)
def test_sustained_fails_on_each_criterion(figures, why):
    goal = goals.sustained(phase_figures(**figures), min_rate=20, p95_ms=500, max_error_percent=0.1, name="d")
    assert goal.passed is False
    assert why in goal.note


def test_sustained_allows_errors_up_to_the_budget():
    goal = goals.sustained(phase_figures(errors=6), min_rate=20, p95_ms=500, max_error_percent=0.1, name="d")
    assert goal.passed and "errors 6 (0.10%)" in goal.figure  # 6 of 6,000 requests


def test_a_saturated_generator_is_noted():
    goal = goals.sustained(phase_figures(lag_s=0.5), min_rate=20, p95_ms=500, max_error_percent=0.1, name="d")
    assert "the generator was saturated" in goal.note


# --- Rebuild waves ------------------------------------------------------------------------------------------


def steady_samples(seconds: int = 300, per_second: int = 20, ms: float = 5.0) -> list[Sample]:
    return [
        Sample(1000.0 + s + i / per_second, "run", "r", ms, 200, True, "")
        for s in range(seconds)
        for i in range(per_second)
    ]


def test_no_waves_in_a_steady_run():
    samples = steady_samples()
    goal = goals.no_waves(samples, seconds=300, window_s=10, factor=3, floor_ms=200, name="waves")
    assert goal.passed
    assert "30 windows" not in goal.figure and "0 windows above 200 ms" in goal.figure


def test_a_wave_is_a_window_far_above_the_median_and_above_the_floor():
    samples = steady_samples()
    # 60-70 s: every request of the window takes 2 s (pages rebuilt in request threads)
    samples = [
        Sample(s.at, s.phase, s.name, 2000.0 if 60 <= s.at - 1000 < 70 else s.ms, 200, True, "")
        for s in samples
    ]
    median, threshold, above = goals.waves(samples, window_s=10, factor=3, floor_ms=200)
    assert median == 5 and threshold == 200
    assert [w.start for w in above] == [60]
    goal = goals.no_waves(samples, seconds=300, window_s=10, factor=3, floor_ms=200, name="waves")
    assert goal.passed is False and "60-70 s: 2000 ms" in goal.note


def test_a_small_rise_under_the_floor_is_no_wave():
    samples = [
        Sample(s.at, s.phase, s.name, 40.0 if 60 <= s.at - 1000 < 70 else s.ms, 200, True, "")
        for s in steady_samples()
    ]
    assert goals.waves(samples, window_s=10, factor=3, floor_ms=200)[2] == []


def test_windows_drop_a_short_tail_and_keep_empty_windows():
    samples = [Sample(0.0, "p", "r", 1.0, 200, True, ""), Sample(25.0, "p", "r", 3.0, 200, True, "")]
    assert [(w.start, w.requests) for w in goals.windows(samples, 10)] == [(0, 1), (10, 0), (20, 1)]
    samples.append(Sample(31.0, "p", "r", 9.0, 200, True, ""))  # 1 s into the 4th window: dropped
    assert len(goals.windows(samples, 10)) == 3


# --- Ceilings -----------------------------------------------------------------------------------------------


def test_ceiling_is_the_best_step_before_the_first_failure():
    steps = [
        phase_figures(rate=r, seconds=10, requests_per_arrival=1, name=f"{r}/s") for r in (100, 200, 300)
    ]
    c = goals.ceiling(steps, [True, True, False])
    assert c.requests_per_s == pytest.approx(200) and c.step == "200/s" and c.bound == "server"


def test_ceiling_bounded_by_the_generator():
    steps = [
        phase_figures(rate=100, seconds=10, requests_per_arrival=1, name="100/s"),
        phase_figures(rate=200, seconds=10, requests_per_arrival=1, name="200/s", generator_cores=0.95),
    ]
    c = goals.ceiling(steps, [True, True])
    assert c.requests_per_s == pytest.approx(100) and c.bound == "generator"


def test_ceiling_when_every_step_held():
    steps = [phase_figures(rate=r, seconds=10, requests_per_arrival=1, name=f"{r}/s") for r in (100, 200)]
    assert goals.ceiling(steps, [True, True]).bound == "ramp"
    assert goals.ceiling([], []).requests_per_s == 0


def test_ratio_to_the_hello_world_ceiling():
    hello = goals.Ceiling(1000, 1000, "1000/s", "server")
    ok = goals.ratio_to_ceiling(goals.Ceiling(650, 200, "200/s", "server"), hello, minimum=0.6, name="r")
    assert ok.passed and "= 0.65x" in ok.figure and ok.note == ""
    low = goals.ratio_to_ceiling(goals.Ceiling(310, 100, "100/s", "server"), hello, minimum=0.6, name="r")
    assert low.passed is False
    bound = goals.ratio_to_ceiling(
        goals.Ceiling(700, 230, "230/s", "server"),
        goals.Ceiling(1000, 1000, "x", "generator"),
        minimum=0.6,
        name="r",
    )
    assert bound.passed and "the generator's" in bound.note
    assert goals.ratio_to_ceiling(goals.Ceiling(5, 1, "", "server"), goals.Ceiling(0, 0, "", "generator"),
                                  minimum=0.6, name="r").passed is False  # fmt: skip


# --- CDN tier, cores ----------------------------------------------------------------------------------------


def test_throughput_goal():
    kwargs = {"min_rps": 1000, "p95_limit_ms": 500, "name": "cdn"}
    assert goals.throughput(requests_per_s=4200, p95_ms=12, errors=0, **kwargs).passed
    assert not goals.throughput(requests_per_s=900, p95_ms=12, errors=0, **kwargs).passed
    assert not goals.throughput(requests_per_s=4200, p95_ms=501, errors=0, **kwargs).passed
    assert not goals.throughput(requests_per_s=4200, p95_ms=12, errors=1, **kwargs).passed


def test_cores_goal():
    assert goals.cores(1.82, minimum=1.7, name="uncached").passed
    assert goals.cores(1.00, minimum=1.7, name="uncached").passed is False


# --- Overload -----------------------------------------------------------------------------------------------


def overload_samples(*, fast: int, slow_503: int, slow_ok: int, timeouts: int, ok: int) -> list[Sample]:
    rows = [Sample(0.0, "o", "r", 120.0, 200, True, "")] * ok
    rows += [Sample(0.0, "o", "r", 8.0, 503, False, "status 503")] * fast
    rows += [Sample(0.0, "o", "r", 260.0, 503, False, "status 503")] * slow_503
    rows += [Sample(0.0, "o", "r", 900.0, 200, True, "")] * slow_ok
    rows += [Sample(0.0, "o", "r", 10000.0, 0, False, "ConnectionTimeout")] * timeouts
    return rows


def test_overload_passes_with_fast_503s_and_no_timeouts():
    samples = overload_samples(ok=600, fast=395, slow_503=3, slow_ok=2, timeouts=0)
    goal = goals.overload(samples, rate=40, sla_p95_ms=500, min_share=0.99, name="overload")
    assert goal.passed and "99.5%" in goal.figure and "398 503s (395 fast)" in goal.figure


def test_overload_fails_on_slow_answers_or_any_timeout():
    slow = overload_samples(ok=600, fast=300, slow_503=100, slow_ok=0, timeouts=0)
    assert not goals.overload(slow, rate=40, sla_p95_ms=500, min_share=0.99, name="o").passed
    one_timeout = overload_samples(ok=999, fast=0, slow_503=0, slow_ok=0, timeouts=1)
    goal = goals.overload(one_timeout, rate=40, sla_p95_ms=500, min_share=0.99, name="o")
    assert goals.honest_share(one_timeout, sla_p95_ms=500) == pytest.approx(0.999)
    assert goal.passed is False and "1 client timeouts" in goal.figure
    assert not goals.overload([], rate=40, sla_p95_ms=500, min_share=0.99, name="o").passed


# --- The site's p95 from its histogram ----------------------------------------------------------------------


def test_histogram_quantile_as_prometheus():
    buckets = [(0.1, 50.0), (0.5, 90.0), (1.0, 100.0), (math.inf, 100.0)]
    assert goals.histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert goals.histogram_quantile(0.95, buckets) == pytest.approx(0.75)  # halfway through 0.5..1
    assert goals.histogram_quantile(0.25, buckets) == pytest.approx(0.05)  # first bucket from 0
    overflow = [(0.1, 10.0), (1.0, 20.0), (math.inf, 100.0)]
    assert goals.histogram_quantile(0.95, overflow) == 1.0  # +Inf: the highest finite bound
    assert math.isnan(goals.histogram_quantile(0.95, [(0.1, 0.0), (math.inf, 0.0)]))


def test_bucket_difference_between_scrapes():
    before = {0.1: 10.0, 1.0: 20.0, math.inf: 25.0}
    after = {0.1: 30.0, 1.0: 60.0, 2.0: 5.0, math.inf: 70.0}
    assert goals.bucket_difference(before, after) == [(0.1, 20.0), (1.0, 40.0), (2.0, 5.0), (math.inf, 45.0)]


def test_site_p95_within_tolerance_of_the_generator():
    ok = goals.site_matches_generator(
        site_p95_ms=1100, generator_p95_ms=1000, tolerance=0.2, name="s", observed=9
    )
    assert ok.passed and "10% apart" in ok.figure
    far = goals.site_matches_generator(
        site_p95_ms=19, generator_p95_ms=12700, tolerance=0.2, name="s", observed=9
    )
    assert far.passed is False
    empty = goals.site_matches_generator(
        site_p95_ms=math.nan, generator_p95_ms=900, tolerance=0.2, name="s", observed=0
    )
    assert empty.passed is False


def test_render_prints_each_goal_with_its_figure_and_status():
    text = goals.render(
        [
            goals.Goal("a", "1 req/s", ">= 1", True),
            goals.Goal("b", "2 ms", "<= 1 ms", False, "why"),
            goals.not_measured("c", ">= 1.7 cores", "no database"),
        ]
    )
    assert "| a | 1 req/s | >= 1 | PASS |" in text
    assert "| b | 2 ms (why) | <= 1 ms | FAIL |" in text
    assert "| c | - (no database) | >= 1.7 cores | not measured |" in text
    assert text.endswith("1 of 3 goals pass.")
