"""What the load test's flows draw: the pages each browsing flow picks, and which flow an arrival of the
``mixed`` scenario runs. Plain Python, importable without gevent (the scaling model and its measured point
use the same numbers: bench/scaling_model.py, bench/scaling_point.py)."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

# The flows an arrival of the mix can run (loadtest/scenarios.py: MIXABLE).
FLOWS = ("anonymous", "logged_in", "design")
SORTS = ("newest", "popular", "trending", "favorites")
SEARCH_WORDS = ("revenue", "churn", "pipeline", "cohort", "forecast", "sales", "marketing", "finance")
# Each page a browsing flow views is of one of these kinds, drawn with these weights.
ANONYMOUS_WEIGHTS = {"detail": 40, "list": 20, "home": 15, "tag": 10, "profile": 10, "search": 5}
LOGGED_IN_WEIGHTS = {"detail": 30, "list": 20, "home": 15, "feed": 15, "favorites": 10, "profile": 10}
# The pages the browsing flows pick from: the workbooks, tags and profiles linked from the site's own lists.
CATALOGUE_LISTS = tuple(f"/workbooks/?sort={sort}&per_page=100" for sort in ("newest", "popular", "trending"))
DETAIL_RE = re.compile(r'href="(/workbooks/\d+/[\w-]+/)"')
TAG_RE = re.compile(r'href="(/tags/[\w-]+/)"')
PROFILE_RE = re.compile(r'href="(/users/[\w-]+/)"')


@dataclass
class Catalogue:
    """Real paths to browse, read once from the site's own lists (``CATALOGUE_LISTS``) before the run."""

    details: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)

    def add_from(self, html: str) -> None:
        for pattern, bucket in ((DETAIL_RE, self.details), (TAG_RE, self.tags), (PROFILE_RE, self.profiles)):
            bucket.extend(p for p in pattern.findall(html) if p not in bucket)


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
