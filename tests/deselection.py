"""Tests whose tools are missing are deselected, and the summary says which tools (tests/edge, tests/monitoring).

Like the postgres/redis markers in tests/conftest.py: with REQUIRE_SERVICES=1 (CI) nothing is deselected and
a missing tool is a failure of the tests that need it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

import pytest

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES", "") == "1"

Hooks = tuple[Callable[..., None], Callable[..., None]]


def hooks(
    *,
    missing: Callable[[], list[str]],
    markers: Callable[[list[str]], Iterable[str]],
    summary: Callable[[list[str]], str],
) -> Hooks:
    """A conftest's ``pytest_collection_modifyitems`` and ``pytest_terminal_summary``: the tests carrying
    ``markers(missing tools)`` are deselected when ``missing()`` names any, and ``summary(missing tools)`` is
    the line that says so at the end of the run."""
    key = pytest.StashKey[list[str]]()

    def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
        if REQUIRE_SERVICES:
            return
        tools = missing()
        wanted = set(markers(tools)) if tools else set()
        keep, drop = [], []
        for item in items:
            (drop if any(item.get_closest_marker(name) for name in wanted) else keep).append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep
            config.stash[key] = tools

    def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
        tools = config.stash.get(key, None)
        if tools:
            terminalreporter.write_line(summary(tools), yellow=True)

    return pytest_collection_modifyitems, pytest_terminal_summary
