"""The issue's goals on this machine (issue 15, section 6, and section 3's acceptance), judged from samples.

Pure functions over what a run recorded (loadtest/samples.py, the report's per-phase figures, wrk's totals,
a histogram read from the site's /metrics): each returns a :class:`Goal` with its figure and PASS/FAIL.
``loadtest/goals_run.py`` measures (it needs the servers and gevent); this module only judges, so every
criterion is unit-tested with passing and failing samples (tests/loadtest/test_goals.py). The numbers the
criteria use (rates, window, factors) are data: ``settings.LOAD_TEST["goals"]``.

Definitions (docs/performance.md, "The goals run"):

- **sustained**: a phase at the goal's rate, after a warm-up phase, whose p95 and error rate meet the goal
  and whose achieved arrival rate equals the offered one (within the SLA's ``ACHIEVED_TOLERANCE``).
- **rebuild wave**: a window (10 s) whose p95 exceeds ``factor`` (3) times the median of the run's window
  p95s *and* ``floor_ms`` (the SLA's p50, 200 ms): a wave is a rise users feel, not a 4 ms window among
  1 ms ones.
- **ceiling**: the highest request rate of a ramp's steps that held the SLA (``load_test_verdict`` per step)
  with the generator not saturated. It says what bounded it: the server (a step failed the SLA), the
  generator (it saturated first: then the ceiling is the generator's, a lower bound of the server's), or the
  ramp (every step held: the ramp's top is a lower bound).
- **site p95**: ``histogram_quantile`` as Prometheus computes it (linear within the bucket) over the
  difference of the request-latency histogram between two scrapes.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from loadtest.report import FAST_503_MS, PhaseFigures, generator_saturated, percentile
from loadtest.samples import Sample
from monitoring.sla import ACHIEVED_TOLERANCE


@dataclass(frozen=True)
class Goal:
    name: str
    figure: str  # what was measured, in words and numbers
    target: str
    passed: bool | None  # None: not measured
    note: str = ""

    @property
    def status(self) -> str:
        return "not measured" if self.passed is None else ("PASS" if self.passed else "FAIL")


def not_measured(name: str, target: str, why: str) -> Goal:
    return Goal(name, "-", target, None, why)


# --- Generator saturation, sustained rate --------------------------------------------------------------------


def sustained(
    phase: PhaseFigures, *, min_rate: float, p95_ms: float, max_error_percent: float, name: str
) -> Goal:
    """The design flow's goal: ``min_rate`` arrivals/s offered and achieved, p95 and errors within the goal."""
    failures = []
    if phase.nominal_per_s < min_rate:
        failures.append(f"phase rate {phase.nominal_per_s:g}/s < {min_rate:g}/s")
    if phase.achieved_per_s < phase.offered_per_s * (1 - ACHIEVED_TOLERANCE):
        failures.append(f"achieved {phase.achieved_per_s:.1f}/s < offered {phase.offered_per_s:.1f}/s")
    if phase.latency.p95 > p95_ms:
        failures.append(f"p95 {phase.latency.p95:.0f} ms > {p95_ms:.0f} ms")
    if phase.latency.error_percent > max_error_percent:
        failures.append(f"errors {phase.latency.error_percent:.2f}% > {max_error_percent:g}%")
    notes = [*failures]
    if generator_saturated(phase):
        notes.append("the generator was saturated")
    return Goal(
        name,
        f"{phase.seconds:.0f} s at {phase.nominal_per_s:g}/s: offered {phase.offered_per_s:.1f}/s, achieved "
        f"{phase.achieved_per_s:.1f}/s, p95 {phase.latency.p95:.0f} ms, errors {phase.latency.errors} "
        f"({phase.latency.error_percent:.2f}%), server {phase.cpu.get('server', 0):.2f} cores",
        f">= {min_rate:g} arrivals/s, p95 <= {p95_ms:.0f} ms, errors <= {max_error_percent:g}%",
        not failures,
        "; ".join(notes),
    )


# --- Rebuild waves -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    start: float  # seconds from the first sample
    requests: int
    p95_ms: float


def windows(samples: Sequence[Sample], window_s: float) -> list[Window]:
    """p95 of the requests started in each window of ``window_s`` seconds (partial last window included
    only when it holds at least half a window's worth of time: a 2-s tail says little)."""
    if not samples:
        return []
    t0 = min(s.at for s in samples)
    t1 = max(s.at for s in samples)
    buckets: dict[int, list[float]] = defaultdict(list)
    for s in samples:
        buckets[int((s.at - t0) // window_s)].append(s.ms)
    last = int((t1 - t0) // window_s)
    tail_s = (t1 - t0) - last * window_s
    out = []
    for index in range(last + 1):
        if index == last and last > 0 and tail_s < window_s / 2:
            break
        ms = buckets.get(index, [])
        out.append(Window(index * window_s, len(ms), percentile(ms, 95)))
    return out


def waves(
    samples: Sequence[Sample], *, window_s: float, factor: float, floor_ms: float
) -> tuple[float, float, list[Window]]:
    """(median window p95, threshold, the windows above it)."""
    rows = [w for w in windows(samples, window_s) if w.requests]
    if not rows:
        return 0.0, floor_ms, []
    median = statistics.median(w.p95_ms for w in rows)
    threshold = max(factor * median, floor_ms)
    return median, threshold, [w for w in rows if w.p95_ms > threshold]


def no_waves(
    samples: Sequence[Sample], *, seconds: float, window_s: float, factor: float, floor_ms: float, name: str
) -> Goal:
    median, threshold, above = waves(samples, window_s=window_s, factor=factor, floor_ms=floor_ms)
    worst = max((w.p95_ms for w in windows(samples, window_s)), default=0.0)
    where = ", ".join(f"{w.start:.0f}-{w.start + window_s:.0f} s: {w.p95_ms:.0f} ms" for w in above[:5])
    return Goal(
        name,
        f"{seconds:.0f} s, {len(samples)} requests; median {window_s:g}-s p95 {median:.0f} ms, worst "
        f"{worst:.0f} ms; {len(above)} windows above {threshold:.0f} ms",
        f"no {window_s:g}-s window with p95 > max({factor:g}x median, {floor_ms:.0f} ms)",
        bool(samples) and not above,
        where,
    )


# --- Ceilings and ratios -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ceiling:
    requests_per_s: float
    arrivals_per_s: float
    step: str  # the step that reached it ("" when none held)
    bound: str  # "server", "generator" or "ramp"


def ceiling(steps: Sequence[PhaseFigures], held: Sequence[bool]) -> Ceiling:
    """The highest request rate among the steps, in order, until the first that failed the SLA or saturated
    the generator (``held[i]`` is step i's SLA verdict)."""
    best = Ceiling(0.0, 0.0, "", "ramp")
    for phase, ok in zip(steps, held, strict=True):
        if generator_saturated(phase):
            return Ceiling(best.requests_per_s, best.arrivals_per_s, best.step, "generator")
        if not ok:
            return Ceiling(best.requests_per_s, best.arrivals_per_s, best.step, "server")
        if phase.requests_per_s > best.requests_per_s:
            best = Ceiling(phase.requests_per_s, phase.achieved_per_s, phase.name, "ramp")
    return best


def describe_ceiling(c: Ceiling) -> str:
    bound = {
        "server": "the next step failed the SLA",
        "generator": "bounded by the generator (it saturated at the next step)",
        "ramp": "every step held (a lower bound)",
    }[c.bound]
    return (
        f"{c.requests_per_s:.0f} req/s ({c.arrivals_per_s:.0f} arrivals/s at step {c.step or '-'}; {bound})"
    )


def ratio_to_ceiling(site: Ceiling, hello: Ceiling, *, minimum: float, name: str) -> Goal:
    ratio = site.requests_per_s / hello.requests_per_s if hello.requests_per_s else 0.0
    notes = []
    if hello.bound == "generator":
        notes.append(
            "the hello-world ceiling is the generator's, not gunicorn's: the ratio overstates the site"
        )
    if site.bound == "generator":
        notes.append("the site's ceiling is the generator's: the ratio is a lower bound")
    if site.bound == "ramp" or hello.bound == "ramp":
        notes.append("a ramp ended with every step holding: raise its top rates")
    return Goal(
        name,
        f"site {describe_ceiling(site)} / hello-world {describe_ceiling(hello)} = {ratio:.2f}x",
        f">= {minimum:g}x the hello-world ceiling (same tool, same run)",
        hello.requests_per_s > 0 and ratio >= minimum,
        "; ".join(notes),
    )


# --- Throughput with a closed-loop tool (wrk) ----------------------------------------------------------------


def throughput(
    *, requests_per_s: float, p95_ms: float, errors: int, min_rps: float, p95_limit_ms: float, name: str
) -> Goal:
    failures = []
    if requests_per_s < min_rps:
        failures.append(f"{requests_per_s:.0f} req/s < {min_rps:.0f}")
    if p95_ms > p95_limit_ms:
        failures.append(f"p95 {p95_ms:.0f} ms > {p95_limit_ms:.0f} ms")
    if errors:
        failures.append(f"{errors} errors")
    return Goal(
        name,
        f"{requests_per_s:,.0f} req/s, p95 {p95_ms:.1f} ms, {errors} errors",
        f">= {min_rps:,.0f} req/s with p95 <= {p95_limit_ms:.0f} ms",
        not failures,
        "; ".join(failures),
    )


def cores(used: float, *, minimum: float, name: str, figure: str = "") -> Goal:
    return Goal(
        name,
        figure or f"gunicorn used {used:.2f} cores",
        f">= {minimum:g} of the 2 cores",
        used >= minimum,
    )


# --- Overload ------------------------------------------------------------------------------------------------


def honest_share(samples: Iterable[Sample], *, sla_p95_ms: float, fast_503_ms: float = FAST_503_MS) -> float:
    """Share of responses within the SLA's p95 or a 503 in under ``fast_503_ms``."""
    rows = list(samples)
    good = sum((s.ok and s.ms <= sla_p95_ms) or (s.status == 503 and s.ms < fast_503_ms) for s in rows)
    return good / len(rows) if rows else 0.0


def overload(
    samples: Sequence[Sample], *, rate: float, sla_p95_ms: float, min_share: float, name: str
) -> Goal:
    share = honest_share(samples, sla_p95_ms=sla_p95_ms)
    timeouts = sum(s.status == 0 and not s.ok for s in samples)
    shed = sum(s.status == 503 for s in samples)
    fast = sum(s.status == 503 and s.ms < FAST_503_MS for s in samples)
    slow_ok = sum(s.ok and s.ms > sla_p95_ms for s in samples)
    other_errors = sum(not s.ok and s.status not in (0, 503) for s in samples)
    return Goal(
        name,
        f"{rate:g} arrivals/s, {len(samples)} responses: {100 * share:.1f}% within {sla_p95_ms:.0f} ms or a "
        f"503 under {FAST_503_MS:.0f} ms; {shed} 503s ({fast} fast), {slow_ok} slow successes, "
        f"{other_errors} other errors, {timeouts} client timeouts",
        f">= {100 * min_share:g}% within the SLA or a fast 503; no client timeouts",
        bool(samples) and share >= min_share and timeouts == 0,
    )


# --- The site's own p95 (its histogram) against the generator's ----------------------------------------------

Buckets = list[tuple[float, float]]  # (upper bound in seconds, cumulative count), +Inf included


def bucket_difference(before: dict[float, float], after: dict[float, float]) -> Buckets:
    """Cumulative counts observed between two scrapes (a counter reset, e.g. a restarted worker, clamps at 0)."""
    return sorted((le, max(0.0, after[le] - before.get(le, 0.0))) for le in after)


def histogram_quantile(q: float, buckets: Buckets) -> float:
    """Prometheus's ``histogram_quantile``: the bucket holding rank q x total, linear within it; the +Inf
    bucket answers the highest finite bound. NaN without observations."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return math.nan
    total = buckets[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return lower
            if count == below:
                return le
            return lower + (le - lower) * (rank - below) / (count - below)
        lower, below = le, count
    return lower


def site_matches_generator(
    *, site_p95_ms: float, generator_p95_ms: float, tolerance: float, name: str, observed: float
) -> Goal:
    if math.isnan(site_p95_ms) or generator_p95_ms <= 0:
        return Goal(name, "no requests in the site's histogram", f"within {100 * tolerance:.0f}%", False)
    gap = abs(site_p95_ms - generator_p95_ms) / generator_p95_ms
    return Goal(
        name,
        f"site p95 {site_p95_ms:.0f} ms ({observed:.0f} requests in its histogram) against the generator's "
        f"{generator_p95_ms:.0f} ms: {100 * gap:.0f}% apart",
        f"within {100 * tolerance:.0f}% of the generator's p95",
        gap <= tolerance,
    )


# --- Text ----------------------------------------------------------------------------------------------------


def render(goals: Sequence[Goal]) -> str:
    lines = ["| goal | measured | target | result |", "|---|---|---|---|"]
    for g in goals:
        figure = g.figure + (f" ({g.note})" if g.note else "")
        lines.append(f"| {g.name} | {figure} | {g.target} | {g.status} |")
    passed = sum(g.passed is True for g in goals)
    lines += ["", f"{passed} of {len(goals)} goals pass."]
    return "\n".join(lines)
