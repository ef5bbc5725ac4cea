"""The layers (README, "Layout") are import-linter contracts (pyproject.toml): the tree keeps them, and an
import in the wrong direction, even one inside a function, breaks them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("sigma_playground", "accounts", "workbooks", "notifications", "monitoring")
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_tree_keeps_every_contract():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the packages and the contracts, to break."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # Telemetry records for everyone and imports no one.
        ("sigma_playground/telemetry/window.py", "from sigma_playground.caching import keys", "Telemetry"),
        # Core infrastructure below every app.
        ("sigma_playground/pagination.py", "from monitoring import sla", "Layers"),
        # accounts below workbooks, and an import inside a function counts as much as one at the top.
        ("accounts/selectors.py", "def _hidden():\n    from workbooks import selectors", "Layers"),
        # A cycle inside a package: tasks -> capacity report -> cost -> sla -> tasks.
        ("monitoring/sla.py", "from monitoring import tasks", "No import cycles"),
    ],
)
def test_an_import_in_the_wrong_direction_fails(tree: Path, module: str, line: str, broken: str):
    path = tree / module
    path.write_text(path.read_text() + f"\n\n{line}  # noqa\n")
    result = lint_imports(tree)
    assert result.returncode == 1, result.stdout + result.stderr
    kept_or_broken = [text for text in result.stdout.splitlines() if " KEPT" in text or " BROKEN" in text]
    assert any(text.startswith(broken) and " BROKEN" in text for text in kept_or_broken), result.stdout
