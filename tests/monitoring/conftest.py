"""Monitoring fixtures, and the tools some tests need: Debian's chromium and promtool.

Like the postgres/redis markers in tests/conftest.py: with REQUIRE_SERVICES=1 (CI) a missing tool is a
failure of the tests that need it; otherwise those tests are deselected and the summary says so.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests import deselection
from tests.monitoring.helpers import FakePrometheus, monitoring_stack, serve_fake_prometheus

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


def pytest_configure(config: pytest.Config) -> None:
    for name, (what, _) in TOOLS.items():
        config.addinivalue_line("markers", f"{name}: needs {what}")


pytest_collection_modifyitems, pytest_terminal_summary = deselection.hooks(
    missing=lambda: sorted(name for name, (_, present) in TOOLS.items() if not present()),
    markers=lambda missing: missing,  # the tool fixtures below fail instead with REQUIRE_SERVICES=1
    summary=lambda missing: (
        f"tests needing {', '.join(missing)} were not run: install them (`.ci/run` does) "
        "and set REQUIRE_SERVICES=1 to make a missing tool a failure."
    ),
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


@pytest.fixture
def fake_prometheus(settings) -> Iterator[FakePrometheus]:
    """A fake Prometheus (tests.monitoring.helpers.FakePrometheus) that PROMETHEUS_URL points at."""
    with serve_fake_prometheus() as fake:
        settings.PROMETHEUS_URL = fake.url
        yield fake
