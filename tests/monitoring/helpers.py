"""Helpers shared by the monitoring tests."""

from __future__ import annotations

import socket

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    """A sample's current value in this process's registry (0 when it doesn't exist yet)."""
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def scrape(text: str) -> dict[str, list]:
    """Exposition text -> {sample name: [Sample, ...]}."""
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, []).append(s)
    return samples
