"""What a load-test run records (loadtest/driver.py) and its report reads (loadtest/report.py): plain data,
importable without gevent."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Phase:
    name: str
    duration_s: float
    arrivals_per_s: float


@dataclass
class Sample:
    at: float  # wall-clock start, seconds
    phase: str
    name: str
    ms: float
    status: int
    ok: bool
    error: str


@dataclass
class Arrival:
    phase: str
    planned: float  # wall clock
    started: float
    ended: float = 0.0
    ok: bool = False


@dataclass
class CpuSample:
    at: float
    seconds: float  # wall seconds since the previous sample
    server: float  # cores used over that interval
    database: float
    generator: float
    others: float


@dataclass
class Run:
    base_url: str
    scenario: str
    phases: list[tuple[Phase, float, float]] = field(default_factory=list)  # phase, wall start, wall end
    samples: list[Sample] = field(default_factory=list)
    arrivals: list[Arrival] = field(default_factory=list)
    refused: dict[str, int] = field(default_factory=dict)  # arrivals the generator refused (in flight > max)
    cpu: list[CpuSample] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0
