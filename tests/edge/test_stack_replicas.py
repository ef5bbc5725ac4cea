"""``make stack REPLICAS=1 WEB_INSTANCES=2`` for real (issue 20, section 5's measured point): deploy/stack.py
makes its own PostgreSQL primary (initdb on a spare port, migrated and seeded) and a ``pg_basebackup -R``
standby of it, runs two gunicorns, nginx, Varnish, a Celery worker and beat on them, and the public pages
read the standby, through each instance and through the CDN. At SIGTERM it stops everything, the clusters
included (by their data directories), and keeps their logs.

Where a read ran is each server's own ``pg_stat_statements``: calls of the full-text search statement
(``search_vector @@``), which only a search page runs, so the Celery beat's own reads on the primary do not
blur it. About a minute: initdb, migrations and the demo data on a fresh cluster.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from deploy import edge
from tests.monitoring.helpers import ROOT, scrape

pytestmark = [pytest.mark.edge, pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

# What the stack must take from the test, never from the caller's shell (`make test-pgbouncer` sets a pooler
# and pool sizes for the shared server, not for the stack's own clusters).
CALLER_ONLY = (
    "DATABASE_URL", "DATABASE_REPLICA_URLS", "DATABASE_POOLER", "DB_POOL_MIN_SIZE", "DB_POOL_MAX_SIZE",
    "DB_POOL_TIMEOUT", "PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_WEB_MULTIPROC_DIR", "CELERY_TASK_ALWAYS_EAGER",
    "STACK_SEED_WORKBOOKS",
)  # fmt: skip
SEARCH = "%search_vector @@%"


def _searches(url: str) -> int:
    with psycopg.connect(url, connect_timeout=5, autocommit=True) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements WHERE query LIKE %s", (SEARCH,)
        ).fetchone()
    return int(row[0])


def _wait(check: Callable[[], bool], seconds: float, what: str) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, f"{what}: not within {seconds} s"
        time.sleep(0.2)
    return time.monotonic() - started


@dataclass
class RunningStack:
    process: subprocess.Popen
    run_dir: Path
    cdn: str
    gunicorns: list[str]
    primary: str
    replica: str

    def log(self) -> str:
        return (self.run_dir.parent / "stack.log").read_text(errors="replace")[-6000:]


@pytest.fixture(scope="module")
def running_stack(tmp_path_factory) -> Iterator[RunningStack]:
    folder = tmp_path_factory.mktemp("stack-replicas")
    run_dir = folder / "run"
    ports = {
        "STACK_CDN_PORT": edge.free_port(),
        "STACK_NGINX_PORT": edge.free_port(),
        "STACK_GUNICORN_PORT": edge.free_ports(2),
        "CELERY_METRICS_PORT": edge.free_port(),
        "STACK_PG_PORT": edge.free_ports(2),
    }
    env = {
        **{k: v for k, v in os.environ.items() if k not in CALLER_ONLY},
        **{k: str(v) for k, v in ports.items()},
        "REPLICAS": "1",
        "WEB_INSTANCES": "2",
        "STACK_RUN_DIR": str(run_dir),
        "DJANGO_ENV": "development",
        "MEDIA_ROOT": str(folder / "media"),
        "PRIVATE_MEDIA_ROOT": str(folder / "private_media"),
        "WEB_CONCURRENCY": "1",  # one worker per instance: each measures the replica once warmed below
        "DB_POOL_MIN_SIZE": "1",
        "DB_POOL_MAX_SIZE": "3",
        "REPLICA_CHECK_SECONDS": "0.5",
        "EMBED_CHECK_BATCH_SIZE": "0",  # the beat's link checker: no request to the demo's embed host
        "EMBED_CHECK_DISCOVER": "0",
    }
    process = subprocess.Popen(
        [sys.executable, "deploy/stack.py"],
        cwd=ROOT,
        env=env,
        stdout=(folder / "stack.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    started = time.monotonic()
    try:
        cdn = f"http://127.0.0.1:{ports['STACK_CDN_PORT']}"
        edge.wait_for_port(ports["STACK_CDN_PORT"], process, "make stack", seconds=600)
        _wait(lambda: edge.http_get(cdn + "/healthz")[0] == 200, 60, "the site through the CDN")
        databases = json.loads((run_dir / "databases.json").read_text())
        print(
            f"\n[stack] primary, replica, two instances and the edge up in {time.monotonic() - started:.0f} s"
        )
        yield RunningStack(
            process=process,
            run_dir=run_dir,
            cdn=cdn,
            gunicorns=[f"http://127.0.0.1:{ports['STACK_GUNICORN_PORT'] + i}" for i in range(2)],
            primary=databases["primary"],
            replica=databases["replicas"][0],
        )
    except BaseException:
        print((folder / "stack.log").read_text(errors="replace")[-6000:])
        raise
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def _search_reads(stack: RunningStack, base: str) -> tuple[int, int]:
    """(primary, replica) search statements one anonymous search through ``base`` ran: a word nobody searched
    before, so the page cache and the CDN miss."""
    before = _searches(stack.primary), _searches(stack.replica)
    status, _, _ = edge.http_get(f"{base}/workbooks/?q=w{uuid.uuid4().hex[:10]}", timeout=30)
    assert status == 200, status
    after = _searches(stack.primary), _searches(stack.replica)
    return after[0] - before[0], after[1] - before[1]


def _on_replica(primary: int, replica: int) -> bool:
    return primary == 0 and replica > 0


def test_the_stack_runs_on_its_own_primary_the_public_pages_read_the_replica_and_sigterm_stops_all(
    running_stack,
):
    stack = running_stack
    assert ":5432/" not in stack.primary, "never the shared server"
    with psycopg.connect(stack.replica, connect_timeout=5, autocommit=True) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
        (receiving,) = conn.execute("SELECT status FROM pg_stat_wal_receiver").fetchone()
    assert receiving == "streaming"
    with psycopg.connect(stack.primary, connect_timeout=5, autocommit=True) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is False
        assert conn.execute("SELECT count(*) FROM workbooks_workbook").fetchone()[0] > 0, "seeded"

    # Each instance measures the standby in the background after it starts: then its searches run there.
    for base in stack.gunicorns:
        _wait(lambda base=base: _on_replica(*_search_reads(stack, base)), 30, f"{base} reading the replica")
    for base in (*stack.gunicorns, stack.cdn):
        for _ in range(3):
            reads = _search_reads(stack, base)
            assert _on_replica(*reads), (base, reads)

    # The router's own count, per instance, and the replica's view of who reads it.
    for base in stack.gunicorns:
        samples = scrape(edge.http_get(base + "/metrics")[2].decode())
        routed = {
            s.labels["target"]: s.value
            for s in samples["sigma_db_public_reads_total"]
            if s.labels["reason"] == "replica"
        }
        assert routed.get("replica", 0) >= 3, (base, routed)
    with psycopg.connect(stack.replica, connect_timeout=5, autocommit=True) as conn:
        names = {row[0] for row in conn.execute("SELECT application_name FROM pg_stat_activity")}
    assert "sigma_playground:replica_0" in names, names

    # SIGTERM (Ctrl-C alike) stops everything, the clusters included, and keeps their logs.
    folders = []
    for url in (stack.primary, stack.replica):
        with psycopg.connect(url, connect_timeout=5, autocommit=True) as conn:
            folders.append(Path(conn.execute("SHOW data_directory").fetchone()[0]).parent)
    assert all(folder.is_dir() for folder in folders)
    os.kill(stack.process.pid, signal.SIGTERM)
    assert stack.process.wait(timeout=120) == 0, stack.log()
    for url in (stack.primary, stack.replica, stack.cdn, *stack.gunicorns):
        port = int(url.split(":")[2].split("/")[0])
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"{url} still answers"
    assert not any(folder.exists() for folder in folders), folders
    assert "database system is shut down" in (stack.run_dir / "postgres-primary.log").read_text()
    assert (stack.run_dir / "postgres-replica-1.log").exists()
