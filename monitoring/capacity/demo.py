"""Demo capacity history (``seed_demo --capacity-history``, on in ``make run``; refused in production).

A new install has no history, so its capacity page shows no chart, projection or crossing date. This writes
30 days of invented hourly aggregates, shaped like a growing site (daily peaks, slow growth, one resource
heading for its threshold), one current sample and a report built from them, so a newcomer sees the page
working. Every row says what it is: hourly aggregates carry ``"demo": true`` (reports count those days and
say "demo" on the page and in the text), the sample's host is :data:`DEMO_HOST` and its notes say who wrote
it. Once real history exists (an hourly aggregate not marked demo), nothing is written: demo days never fill
gaps between measured ones. Hours already written are left alone; re-running adds the days that passed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.utils import timezone

from monitoring.capacity import report as capacity_report
from monitoring.capacity import services
from monitoring.models import CapacityHour, CapacityReport, CapacitySample

DEMO_HOST = "demo (seed_demo --capacity-history)"
DEMO_NOTE = "demo data written by seed_demo --capacity-history, not a measurement"
DAYS = 30
GIB = 2**30


def _daily(hour: int) -> float:
    """0 at night, 1 at the afternoon peak."""
    return max(0.0, math.sin((hour - 6) / 24 * 2 * math.pi)) if 6 <= hour <= 22 else 0.0


def values(t: float, hour: int) -> dict[str, float]:
    """Every resource ``t`` days from now (negative: the past) at ``hour`` o'clock UTC."""
    peak = _daily(hour)
    return {
        "cpu_percent": 18 + 0.3 * (t + DAYS) + 22 * peak,
        "memory_percent": 48 + 0.12 * (t + DAYS) + 6 * peak,
        "disk_percent": 52 * math.exp(0.006 * (t + DAYS)),
        "db_connections": 12 + 0.2 * (t + DAYS) + 18 * peak,
        "db_max_connections": 100,
        "db_size_bytes": 1.5 * GIB * math.exp(0.01 * (t + DAYS)),
        "redis_memory_percent": 6 + 0.05 * (t + DAYS) + 2 * peak,
        "queue_length": 2 * peak,
        "latency_p95_ms": 140 + 1.2 * (t + DAYS) + 120 * peak,
        "request_rate": (4 + 0.1 * (t + DAYS)) * (0.3 + peak),
        "cache_hit_ratio": 0.9 - 0.08 * peak,
        "net_in_bytes_per_s": 200_000 * (0.3 + peak),
        "net_out_bytes_per_s": 1_500_000 * (0.3 + peak),
        "rows:workbooks_workbook": 20_000 + 150 * (t + DAYS),
        "rows:accounts_user": 3_000 + 25 * (t + DAYS),
        "rows:workbooks_favorite": 90_000 + 900 * (t + DAYS),
    }


@dataclass(frozen=True)
class Seeded:
    hours: int
    sample: bool
    report: CapacityReport | None
    skipped: str = ""  # why nothing was written


def real_history_exists() -> bool:
    return CapacityHour.objects.exclude(stats__has_key="demo").exists()


def seed_history(now: datetime | None = None, days: int = DAYS, seed: int = 2026) -> Seeded:
    """Write the demo history (the ``days`` complete days before ``now``), a sample when there is none, and a
    report when anything was written or none exists; nothing at all once real history exists."""
    now = now or timezone.now()
    if real_history_exists():
        return Seeded(0, False, None, skipped="real capacity history exists; no demo history written")
    rng = random.Random(seed)
    today = datetime.combine(now.astimezone(UTC).date(), datetime.min.time(), tzinfo=UTC)
    rows = []
    hour = today - timedelta(days=days)
    while hour < today:
        t = (hour + timedelta(minutes=30) - now).total_seconds() / 86400
        noise = 1 + rng.uniform(-0.03, 0.03)
        stats: dict[str, object] = {"demo": True}
        for key, value in values(t, hour.hour).items():
            mean = value * noise
            stats[key] = {"min": mean * 0.9, "mean": mean, "max": mean * 1.1, "n": 60}
        rows.append(CapacityHour(hour=hour, samples=60, stats=stats))
        hour += timedelta(hours=1)
    with transaction.atomic():
        existing = set(
            CapacityHour.objects.filter(hour__in=[r.hour for r in rows]).values_list("hour", flat=True)
        )
        new = [r for r in rows if r.hour not in existing]
        CapacityHour.objects.bulk_create(new)
        wrote_sample = not CapacitySample.objects.exists()
        if wrote_sample:
            current = values(0.0, now.astimezone(UTC).hour)
            CapacitySample.objects.create(
                taken_at=now,
                host=DEMO_HOST,
                cpu_percent=current["cpu_percent"],
                memory_percent=current["memory_percent"],
                disk_percent=current["disk_percent"],
                db_connections=round(current["db_connections"]),
                db_max_connections=100,
                db_size_bytes=round(current["db_size_bytes"]),
                redis_memory_percent=current["redis_memory_percent"],
                queue_length=round(current["queue_length"]),
                latency_p95_ms=current["latency_p95_ms"],
                request_rate=current["request_rate"],
                cache_hit_ratio=current["cache_hit_ratio"],
                net_in_bytes_per_s=current["net_in_bytes_per_s"],
                net_out_bytes_per_s=current["net_out_bytes_per_s"],
                table_rows={
                    key.removeprefix("rows:"): round(v)
                    for key, v in current.items()
                    if key.startswith("rows:")
                },
                notes={"demo": DEMO_NOTE},
            )
    stored = CapacityReport.objects.first()
    if new or wrote_sample or stored is None:
        stored = services.capacity_report_store(
            analysis=capacity_report.build(now), trigger=CapacityReport.Trigger.COMMAND
        )
    return Seeded(hours=len(new), sample=wrote_sample, report=stored)
