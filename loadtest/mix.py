"""The ``mixed`` scenario's weights: which flow an arrival runs (plain Python, importable without gevent)."""

from __future__ import annotations

import random

# The flows an arrival of the mix can run (loadtest/scenarios.py: MIXABLE).
FLOWS = ("anonymous", "logged_in", "design")


def pick_flow(rng: random.Random, mix: dict[str, float]) -> str:
    """One arrival's flow, drawn with the mix's weights (any non-negative numbers, not all 0)."""
    if not mix or set(mix) - set(FLOWS) or any(w < 0 for w in mix.values()) or not sum(mix.values()):
        raise ValueError(f"a mix weighs {', '.join(FLOWS)} with non-negative numbers, not {mix!r}")
    return rng.choices(list(mix), weights=list(mix.values()))[0]


def parse_mix(text: str) -> dict[str, float]:
    """``"anonymous:90,logged_in:8,design:2"`` -> {"anonymous": 90.0, ...}."""
    mix = {}
    for part in text.split(","):
        name, weight = part.rsplit(":", 1)
        mix[name.strip()] = float(weight)
    return mix
