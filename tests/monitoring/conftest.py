"""Monitoring fixtures, and the tools some tests need: Debian's chromium and promtool.

Like the postgres/redis markers in tests/conftest.py: with REQUIRE_SERVICES=1 (CI) a missing tool is a
failure of the tests that need it; otherwise those tests are deselected and the summary says so.
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.monitoring.helpers import monitoring_stack

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES", "") == "1"
CHROMIUM = "/usr/bin/chromium"
TOOLS = {
    "chromium": ("Debian's chromium at /usr/bin/chromium", lambda: os.access(CHROMIUM, os.X_OK)),
    "promtool": ("promtool (Debian package prometheus)", lambda: shutil.which("promtool") is not None),
    "monitoring_stack": (
        "Prometheus and its exporters (Debian packages prometheus, prometheus-node-exporter, "
        "prometheus-postgres-exporter, prometheus-redis-exporter)",
        lambda: not monitoring_stack().missing_binaries(),
    ),
}
_deselected = pytest.StashKey[list[str]]()


def pytest_configure(config: pytest.Config) -> None:
    for name, (what, _) in TOOLS.items():
        config.addinivalue_line("markers", f"{name}: needs {what}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if REQUIRE_SERVICES:
        return  # the tool fixtures below fail instead
    missing = {name for name, (_, present) in TOOLS.items() if not present()}
    keep, drop = [], []
    for item in items:
        (drop if any(item.get_closest_marker(name) for name in missing) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
        config.stash[_deselected] = sorted(missing)


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    missing = config.stash.get(_deselected, None)
    if missing:
        terminalreporter.write_line(
            f"tests needing {', '.join(missing)} were not run: install them (`.ci/run` does) "
            "and set REQUIRE_SERVICES=1 to make a missing tool a failure.",
            yellow=True,
        )


def _require(name: str) -> None:
    what, present = TOOLS[name]
    if not present():
        packages = {
            "promtool": "prometheus",
            "monitoring_stack": " ".join(monitoring_stack().PACKAGES.values()),
        }
        pytest.fail(f"{what} is missing (REQUIRE_SERVICES=1): apt-get install -y {packages.get(name, name)}")


@pytest.fixture
def promtool() -> str:
    _require("promtool")
    return shutil.which("promtool") or "promtool"


@pytest.fixture
def chromium() -> str:
    _require("chromium")
    return CHROMIUM


@pytest.fixture
def monitoring_binaries() -> None:
    _require("monitoring_stack")
