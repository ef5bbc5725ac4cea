"""Tests whose tools are missing are deselected, and the summary says which tools (tests/edge, tests/monitoring).

Like the postgres/redis markers in tests/conftest.py: with REQUIRE_SERVICES=1 (CI) nothing is deselected and
a missing tool is a failure of the tests that need it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

import pytest

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES", "") == "1"


def deselect(
    config: pytest.Config,
    items: list[pytest.Item],
    *,
    markers: Iterable[str],
    missing: list[str],
    key: pytest.StashKey[list[str]],
) -> None:
    """From a ``pytest_collection_modifyitems`` hook: deselect the tests carrying any of ``markers`` (the
    ones whose tools are ``missing``), and keep ``missing`` under ``key`` for ``summarise``."""
    wanted = set(markers)
    if REQUIRE_SERVICES or not wanted:
        return
    keep, drop = [], []
    for item in items:
        (drop if any(item.get_closest_marker(name) for name in wanted) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
        config.stash[key] = missing


def summarise(
    terminalreporter, config: pytest.Config, *, key: pytest.StashKey[list[str]], line: Callable[[str], str]
) -> None:
    """From a ``pytest_terminal_summary`` hook: ``line(missing tools)`` when ``deselect`` left any out."""
    missing = config.stash.get(key, None)
    if missing:
        terminalreporter.write_line(line(", ".join(missing)), yellow=True)
