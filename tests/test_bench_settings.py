"""bench-web takes its scratch databases from variables (make bench-web BENCH_WEB_DB=... BENCH_REDIS_DB=...)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = (
    "import json, bench.bench_web as b; "
    "print(json.dumps([b.DB_NAME, b.DATABASE_URL, b.REDIS_CACHE_DB, b.REDIS_BROKER_DB, b.REDIS_URL, b.BROKER_URL]))"
)


def constants(env: dict[str, str]) -> list:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_bench_web_databases_come_from_the_environment():
    assert constants({"BENCH_WEB_DB": "sigma_webbench_i16", "BENCH_REDIS_DB": "14"}) == [
        "sigma_webbench_i16",
        "postgres://postgres@127.0.0.1:5432/sigma_webbench_i16",
        14,
        15,
        "redis://127.0.0.1:6379/14",
        "redis://127.0.0.1:6379/15",
    ]
    assert constants({"BENCH_REDIS_DB": "4", "BENCH_REDIS_BROKER_DB": "12"})[2:4] == [4, 12]


def test_bench_web_defaults_are_unchanged():
    assert constants({})[:4] == [
        "sigma_webbench",
        "postgres://postgres@127.0.0.1:5432/sigma_webbench",
        10,
        11,
    ]


def test_make_passes_the_variables():
    result = subprocess.run(
        ["make", "-n", "bench-web", "BENCH_WEB_DB=x", "BENCH_REDIS_DB=6"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert "BENCH_WEB_DB=x BENCH_REDIS_DB=6 BENCH_REDIS_BROKER_DB=7" in result.stdout
