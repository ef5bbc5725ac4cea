"""Cores the design's load-test phases need, from the measured CPU cost of one arrival of each scenario.

``settings.LOAD_TEST["cpu_seconds_per_arrival"]`` holds what ``make loadtest`` measured (the report's "CPU s
per arrival": server and database CPU over a phase divided by the arrivals that completed; figures and the
runs that produced them in docs/capacity.md). A phase of R arrivals a second of a scenario costing C CPU
seconds each keeps R x C cores busy; to stay at the SLA's CPU target (70 %) it needs R x C / 0.7 cores.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from monitoring import sla


@dataclass(frozen=True)
class PhaseCores:
    phase: str
    arrivals_per_s: float
    scenario: str
    cpu_seconds_per_arrival: float
    busy_cores: float  # R x C
    cores_at_target: float  # R x C / (SLA CPU target)


def cores_needed(arrivals_per_s: float, cpu_seconds_per_arrival: float, cpu_target_percent: float) -> float:
    return arrivals_per_s * cpu_seconds_per_arrival / (cpu_target_percent / 100)


def design_phases(target: sla.SLA | None = None) -> list[PhaseCores]:
    target = target or sla.current()
    costs: dict[str, float] = settings.LOAD_TEST.get("cpu_seconds_per_arrival", {})
    rows = []
    for phase in settings.LOAD_TEST["phases"]:
        for scenario, cost in costs.items():
            rate = phase["arrivals_per_s"]
            rows.append(
                PhaseCores(
                    phase=phase["name"],
                    arrivals_per_s=rate,
                    scenario=scenario,
                    cpu_seconds_per_arrival=cost,
                    busy_cores=rate * cost,
                    cores_at_target=cores_needed(rate, cost, target.cpu_percent),
                )
            )
    return rows


def peak_advice(target: sla.SLA | None = None) -> str:
    """One sentence for the CPU recommendation: the cores the design's peak phase needs per scenario."""
    target = target or sla.current()
    rows = design_phases(target)
    if not rows:
        return ""
    peak = max(row.arrivals_per_s for row in rows)
    parts = [f"{row.scenario} {row.cores_at_target:.1f}" for row in rows if row.arrivals_per_s == peak]
    return (
        f" The design's peak ({peak:g} arrivals/s) needs, at the SLA's {target.cpu_percent:g}% CPU: "
        + ", ".join(parts)
        + " cores (measured server CPU seconds per arrival, docs/capacity.md)."
    )
