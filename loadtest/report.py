"""A load test's report: figures per phase and per route from the raw samples, the SLA verdict per phase, the
issue's overload checks, an HTML page with server-side SVG charts, and the text appended to
docs/performance.md.

Percentiles are nearest-rank over every sample (no histogram buckets, no averaging of percentiles). A
request that timed out or could not connect is an error with its elapsed time as its latency. "Offered" is
the arrival rate the generator actually produced in a phase (Poisson arrivals drift from the nominal rate,
which is printed beside it); "achieved" the rate of arrivals whose whole flow succeeded.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.utils.html import escape

from loadtest.samples import Run
from monitoring import sla
from sigma_playground import charts

FAST_503_MS = 50.0  # the issue: a 503 "in under 50 ms" is an honest answer under overload
# The generator is saturated (its figures understate the load) above this many cores or this start lag.
GENERATOR_MAX_CORES = 0.9
GENERATOR_MAX_LAG_MS = 250.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Latency:
    count: int
    errors: int
    p50: float
    p95: float
    p99: float

    @classmethod
    def of(cls, ms: list[float], errors: int) -> Latency:
        return cls(len(ms), errors, percentile(ms, 50), percentile(ms, 95), percentile(ms, 99))

    @property
    def error_percent(self) -> float:
        return 100.0 * self.errors / self.count if self.count else 0.0


@dataclass
class PhaseFigures:
    name: str
    seconds: float
    nominal_per_s: float
    offered_per_s: float
    achieved_per_s: float
    refused: int
    latency: Latency
    requests_per_s: float
    timeouts: int
    honest_share: float  # responses within the SLA's p95 target, or a 503 in under FAST_503_MS
    start_lag_p95_ms: float  # how late the generator started arrivals (its own saturation)
    cpu: dict[str, float]  # mean cores per group
    cpu_s_per_arrival: float  # the server's CPU seconds per completed arrival
    db_s_per_arrival: float  # PostgreSQL's and Redis's (every such process on the machine: shared ones too)
    routes: dict[str, Latency] = field(default_factory=dict)


@dataclass
class Report:
    scenario: str
    base_url: str
    started: datetime
    phases: list[PhaseFigures]
    verdict: sla.Verdict
    sla_p95_ms: float
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.verdict.passed


def generator_saturated(phase: PhaseFigures) -> bool:
    return (
        phase.cpu.get("generator", 0.0) > GENERATOR_MAX_CORES or phase.start_lag_p95_ms > GENERATOR_MAX_LAG_MS
    )


def summarize(run: Run, *, target: sla.SLA | None = None) -> Report:
    target = target or sla.current()
    by_phase: dict[str, list] = defaultdict(list)
    for s in run.samples:
        by_phase[s.phase].append(s)
    arrivals: dict[str, list] = defaultdict(list)
    for a in run.arrivals:
        arrivals[a.phase].append(a)
    figures: list[PhaseFigures] = []
    for phase, start, end in run.phases:
        seconds = max(1e-6, end - start)
        samples = by_phase.get(phase.name, [])
        mine = arrivals.get(phase.name, [])
        refused = run.refused.get(phase.name, 0)
        ms = [s.ms for s in samples]
        errors = sum(not s.ok for s in samples) + refused
        routes: dict[str, list] = defaultdict(list)
        for s in samples:
            routes[s.name].append(s)
        honest = sum(
            (s.ok and s.ms <= target.api_ms.p95) or (s.status == 503 and s.ms < FAST_503_MS) for s in samples
        )
        cpu_in = [c for c in run.cpu if start < c.at <= end + 1]
        cpu = {
            group: (statistics.fmean(getattr(c, group) for c in cpu_in) if cpu_in else 0.0)
            for group in ("server", "database", "generator", "others")
        }
        completed = sum(a.ok for a in mine)
        figures.append(
            PhaseFigures(
                name=phase.name,
                seconds=seconds,
                nominal_per_s=phase.arrivals_per_s,
                offered_per_s=(len(mine) + refused) / seconds,
                achieved_per_s=completed / seconds,
                refused=refused,
                latency=Latency.of(ms, errors),
                requests_per_s=len(samples) / seconds,
                # No response at all: the client's timeout (locust reports a socket timeout as RetriesExceeded
                # "original=10.0 seconds"), a refused or reset connection.
                timeouts=sum(s.status == 0 and not s.ok for s in samples),
                honest_share=honest / len(samples) if samples else 0.0,
                start_lag_p95_ms=percentile([(a.started - a.planned) * 1000 for a in mine], 95),
                cpu=cpu,
                cpu_s_per_arrival=cpu["server"] * seconds / completed if completed else 0.0,
                db_s_per_arrival=cpu["database"] * seconds / completed if completed else 0.0,
                routes={
                    name: Latency.of([s.ms for s in rows], sum(not s.ok for s in rows))
                    for name, rows in sorted(routes.items())
                },
            )
        )
    verdict = sla.load_test_verdict(
        phases=[
            sla.PhaseResult(
                name=f.name,
                p50_ms=f.latency.p50,
                p95_ms=f.latency.p95,
                p99_ms=f.latency.p99,
                error_rate_percent=f.latency.error_percent,
                offered_per_second=f.offered_per_s,
                achieved_per_second=f.achieved_per_s,
                requests_per_second=f.requests_per_s,
            )
            for f in figures
        ],
        sla=target,
    )
    notes = []
    for f in figures:
        if generator_saturated(f):
            notes.append(
                f"{f.name}: the generator itself was saturated ({f.cpu['generator']:.2f} cores, arrivals "
                f"started up to {f.start_lag_p95_ms:.0f} ms late at p95): its figures understate the load"
            )
    return Report(
        scenario=run.scenario,
        base_url=run.base_url,
        started=datetime.fromtimestamp(run.started, UTC),
        phases=figures,
        verdict=verdict,
        sla_p95_ms=target.api_ms.p95,
        notes=notes,
    )


# --- Text ------------------------------------------------------------------------------------------------------


def write_samples(path: Path, run: Run) -> None:
    """Every request as a CSV row: the raw samples the figures come from."""
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["start_unix_s", "phase", "route", "ms", "status", "ok", "error"])
        for s in run.samples:
            writer.writerow([f"{s.at:.3f}", s.phase, s.name, f"{s.ms:.1f}", s.status, int(s.ok), s.error])


def render_text(report: Report) -> str:
    lines = [
        f"scenario {report.scenario} against {report.base_url}, {report.started:%Y-%m-%d %H:%M} UTC",
        "",
        "| phase | s | nominal/s | offered/s | achieved/s | req/s | p50 ms | p95 ms | p99 ms | errors | "
        "no response (timeouts) | SLA-or-fast-503 | cores server / db / generator / others | CPU s per arrival server / db | "
        "verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in report.phases:
        v = report.verdict.phases.get(f.name)
        lines.append(
            f"| {f.name} | {f.seconds:.0f} | {f.nominal_per_s:g} | {f.offered_per_s:.1f} | {f.achieved_per_s:.1f} "
            f"| {f.requests_per_s:.1f} | {f.latency.p50:.0f} | {f.latency.p95:.0f} | {f.latency.p99:.0f} "
            f"| {f.latency.errors} ({f.latency.error_percent:.2f}%) | {f.timeouts} | {100 * f.honest_share:.1f}% "
            f"| {f.cpu['server']:.2f} / {f.cpu['database']:.2f} / {f.cpu['generator']:.2f} / {f.cpu['others']:.2f} "
            f"| {f.cpu_s_per_arrival:.4f} / {f.db_s_per_arrival:.4f} | {'pass' if v and v.passed else 'FAIL'} |"
        )
    lines += [
        "",
        "| phase | route | requests | errors | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in report.phases:
        for name, lat in f.routes.items():
            lines.append(
                f"| {f.name} | {name} | {lat.count} | {lat.errors} | {lat.p50:.0f} | {lat.p95:.0f} | {lat.p99:.0f} |"
            )
    lines.append("")
    lines.append(f"Verdict (SLA per phase): {'PASS' if report.passed else 'FAIL'}")
    lines += [f"- {failure}" for failure in report.verdict.failures]
    lines += [f"- note: {note}" for note in report.notes]
    return "\n".join(lines)


def append_to_docs(path: Path, report: Report, *, command: str, html_path: Path | None) -> None:
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"
    block = [
        "",
        f"### Load test: {report.scenario}, {report.started:%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `{command}`. Machine: {platform.machine()}, {os.cpu_count()} CPUs; load average at the end "
        f"{load} (other work on the machine counts in 'others').",
        *([f"HTML report: `{html_path}` (not committed)."] if html_path else []),
        "",
        render_text(report),
        "",
    ]
    with path.open("a", encoding="utf-8") as handle:
        handle.write("\n".join(block))


# --- HTML ----------------------------------------------------------------------------------------------------


def _per_second(run: Run, value, start: float, end: float) -> list[tuple[float, list]]:
    buckets: dict[int, list] = defaultdict(list)
    for item, at in value:
        buckets[int(at - start)].append(item)
    return [(second, buckets.get(second, [])) for second in range(int(end - start) + 1)]


def render_html(report: Report, run: Run) -> str:
    start, end = run.started, max(run.ended, run.started + 1)
    t0 = datetime.fromtimestamp(start, UTC)
    t_end = datetime.fromtimestamp(end, UTC)

    def at(second: float) -> datetime:
        return t0 + timedelta(seconds=second)

    boundaries = [(datetime.fromtimestamp(s, UTC), phase.name) for phase, s, _ in run.phases]
    latency = _per_second(run, ((s.ms, s.at) for s in run.samples), start, end)
    p50 = [charts.Point(at(sec), percentile(v, 50)) for sec, v in latency if v]
    p95 = [charts.Point(at(sec), percentile(v, 95)) for sec, v in latency if v]
    top = max([p.value for p in p95] + [report.sla_p95_ms * 1.2])
    tick = max(10, round((end - start) / 8, -1))
    latency_svg = charts.multi_series_svg(
        chart_id="latency",
        title="Latency per second (ms), generator side",
        description="p50 and p95 of the requests started in each second, with the phase boundaries.",
        series=[charts.Series("p50", "#1d4ed8", p50), charts.Series("p95", "#b45309", p95)],
        start=t0,
        end=t_end,
        y_range=(0, top),
        format_y=lambda v: f"{v:.0f}",
        boundaries=boundaries,
        threshold=report.sla_p95_ms,
        threshold_label=f"SLA p95 {report.sla_p95_ms:.0f} ms",
        tick_seconds=tick,
    )
    arrived = _per_second(run, ((1, a.started) for a in run.arrivals), start, end)
    completed = _per_second(run, ((1, a.ended) for a in run.arrivals if a.ok and a.ended), start, end)
    rate_top = max([len(v) for _, v in arrived] + [len(v) for _, v in completed] + [1])
    rates_svg = charts.multi_series_svg(
        chart_id="arrivals",
        title="Arrivals and completed flows per second",
        description="Arrivals the generator started each second against flows that completed without error.",
        series=[
            charts.Series("arrivals", "#475569", [charts.Point(at(sec), len(v)) for sec, v in arrived]),
            charts.Series("completed", "#15803d", [charts.Point(at(sec), len(v)) for sec, v in completed]),
        ],
        start=t0,
        end=t_end,
        y_range=(0, rate_top * 1.1),
        format_y=lambda v: f"{v:.0f}",
        boundaries=boundaries,
        tick_seconds=tick,
    )
    colours = {"server": "#1d4ed8", "database": "#7c3aed", "generator": "#b45309", "others": "#64748b"}
    cpu_svg = charts.multi_series_svg(
        chart_id="cpu",
        title="CPU (cores) of the server, the database, the generator and everything else",
        description="Cores used per second by each group of processes.",
        series=[
            charts.Series(
                group,
                colour,
                [charts.Point(datetime.fromtimestamp(c.at, UTC), getattr(c, group)) for c in run.cpu],
            )
            for group, colour in colours.items()
        ],
        start=t0,
        end=t_end,
        y_range=(0, max(2.0, *(c.server + c.database + c.generator + c.others for c in run.cpu), 0)),
        format_y=lambda v: f"{v:.1f}",
        boundaries=boundaries,
        tick_seconds=tick,
    )
    table = escape(render_text(report))
    verdict = "PASS" if report.passed else "FAIL"
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>Load test {escape(report.scenario)}: {verdict}</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px}"
        ".chart{width:100%;max-width:900px;height:auto;display:block;margin:1rem 0}"
        "pre{white-space:pre-wrap;font-size:12px}</style></head><body>"
        f"<h1>Load test {escape(report.scenario)}: {verdict}</h1>"
        f"<p>{escape(report.base_url)}, {report.started:%Y-%m-%d %H:%M:%S} UTC</p>"
        f"{latency_svg}{rates_svg}{cpu_svg}<pre>{table}</pre></body></html>"
    )
