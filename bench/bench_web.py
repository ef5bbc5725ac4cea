"""Web benchmark: the site under gunicorn in production mode, driven by wrk (``make bench-web``).

Not a test: it prints what whole HTTP requests cost on this machine and checks the goals of the performance
issue. In one run it

1. drops and creates the scratch PostgreSQL database ``BENCH_WEB_DB`` (``sigma_webbench``), empties Redis
   databases ``BENCH_REDIS_DB`` (10, cache) and ``BENCH_REDIS_BROKER_DB`` (its next, Celery broker),
   migrates, bulk-loads 100,000 workbooks (10,000 users, 500,000 favorites, 100,000 follows: the proportions
   of ``make bench-db``) with ``seed_demo``, runs ``VACUUM ANALYZE`` and collects static files into a
   temporary ``STATIC_ROOT``;
2. for each scenario starts gunicorn with ``-c deploy/gunicorn.conf.py`` (gthread workers sized for this
   machine) in production mode (``DJANGO_ENV=production``, a random ``SECRET_KEY``, plain http:
   ``SECURE_SSL_REDIRECT=0``, ``BEHIND_TLS_PROXY=0``; web pool sizing from docs/operations.md), waits for
   ``/healthz``, requests the page once (200 or stop), waits (bounded, ``--quiet-wait``) for other
   processes to leave the CPUs, warms every worker with an unrecorded 2-second wrk run, checks the answer
   (200; ``X-Cache: hit`` where the page cache is on, none where it is off), runs
   ``wrk -t2 -c32 -d15s --timeout=10s --latency`` from 127.0.0.1 with ``bench/wrk_report.lua`` (which adds
   p95 to wrk's own percentiles), checks the run (no socket errors or timeouts, no status >= 400, bytes per
   response equal to the checked 200's, so no 3xx either; every request counted in Redis where view
   counting is on, none where it is off; no traceback in gunicorn's log) and stops gunicorn;
3. prints requests/s, p50/p95/p99 latency and gunicorn's CPU time per request for each scenario, who used
   the cores during each run (gunicorn, wrk, our PostgreSQL backends, redis-server, everything else: a
   warning when other processes competed), the ratios and PASS/FAIL against the goals;
4. drops the scratch database and empties Redis 10 and 11 (also after a failure, Ctrl-C or SIGTERM).

Scenarios: ``hello`` (bench/hello_wsgi.py, a bare WSGI app: the ceiling), ``list-cached`` and
``list-uncached`` (``/workbooks/`` for an anonymous visitor with ``PAGE_CACHE_ENABLED`` 1 and 0),
``detail-counting`` and ``detail-no-counting`` (the most popular workbook's page, page cache on, with
``VIEW_COUNTING_ENABLED`` 1 and 0), ``list-nginx`` (``/workbooks/`` through nginx, deploy/nginx, to the
gunicorn front hit) and ``list-cdn`` (``/workbooks/`` as a CDN hit: Varnish, deploy/varnish, in front of that
nginx); nginx and Varnish run from the work folder on free ports (deploy/edge.py) and their CPU is
accounted next to gunicorn's.

A run whose responses are not what was checked (a 3xx, 4xx or 5xx, a socket error) is a broken benchmark,
not a slow one: it stops, reruns the scenario briefly with wrk handing responses to Lua, prints the first bad
response and the tail of gunicorn's log, and exits 1. Goal misses are results: printed as FAIL, exit 0.

    python bench/bench_web.py [--duration 15] [--scenario NAME ...] [--quiet-wait 120] [--keep-db] [--reuse-db]

``--keep-db`` leaves the loaded database (and Redis) in place at the end; ``--reuse-db`` skips step 1 and
uses a database loaded by an earlier ``--keep-db`` run (for profiling one scenario at a time).
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the venv's bin/ when run as .venv/bin/python (make bench-web)
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"
WRK_SCRIPT = ROOT / "bench" / "wrk_report.lua"

# Our scratch database (nothing else is ever created or dropped) and Redis databases; on a machine shared with
# other people's runs, give each run its own: BENCH_WEB_DB=sigma_me_webbench BENCH_REDIS_DB=6 (and 7, or
# BENCH_REDIS_BROKER_DB). make bench-web passes them through.
DB_NAME = os.environ.get("BENCH_WEB_DB") or "sigma_webbench"
PG_SERVER = "postgres://postgres@127.0.0.1:5432"
DATABASE_URL = f"{PG_SERVER}/{DB_NAME}"
REDIS_CACHE_DB = int(os.environ.get("BENCH_REDIS_DB") or 10)
REDIS_BROKER_DB = int(os.environ.get("BENCH_REDIS_BROKER_DB") or REDIS_CACHE_DB + 1)
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_CACHE_DB}"
BROKER_URL = f"redis://127.0.0.1:6379/{REDIS_BROKER_DB}"
HOST = "127.0.0.1"

SEED_ARGS = ["--workbooks", "100000", "--users", "10000", "--favorites", "500000", "--follows", "100000"]
WRK_THREADS, WRK_CONNECTIONS = 2, 32
WRK_TIMEOUT = 10  # seconds; a response slower than this is a failed run, not a data point
WARMUP_SECONDS = 2  # unrecorded wrk run before each measured one
QUIET_CORES = 0.3  # CPU (cores) other processes may use before a scenario waits for the machine to calm down

# Goals of the issue: (name, numerator scenario, denominator scenario, minimum ratio of requests/s).
GOALS = (
    ("cached list / hello-world ceiling", "list-cached", "hello", 0.35),
    ("cached list / uncached list", "list-cached", "list-uncached", 5.0),
    ("detail counting on / counting off", "detail-counting", "detail-no-counting", 0.9),
    # The edge (docs/edge.md): a CDN hit costs the origin nothing; nginx in front costs at most 15%.
    ("CDN hit / gunicorn front hit", "list-cdn", "list-cached", 10.0),
    ("through nginx / gunicorn front hit", "list-nginx", "list-cached", 0.85),
)

# The site's own key builders (a module without Django imports): where view counting buffers in Redis.
sys.path.insert(0, str(ROOT))
from deploy import edge  # noqa: E402
from sigma_playground.caching import keys  # noqa: E402


class BenchError(Exception):
    """The benchmark itself went wrong: its numbers cannot be trusted."""


def say(message: str = "") -> None:
    print(message, flush=True)


_STARTED = time.monotonic()


def progress(message: str) -> None:
    elapsed = time.monotonic() - _STARTED
    print(f"[{int(elapsed // 60):3d}:{int(elapsed % 60):02d}] {message}", flush=True)


# =========================================================================================================
# Environment
# =========================================================================================================

# Variables of the site (settings.py) that must not leak into the benchmark from the caller's shell.
SITE_VARIABLES = (
    "DEBUG",
    "DJANGO_ENV",
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "CELERY_TASK_ALWAYS_EAGER",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "SECURE_SSL_REDIRECT",
    "BEHIND_TLS_PROXY",
    "PAGE_CACHE_ENABLED",
    "PAGE_CACHE_TTL",
    "VIEW_COUNTING_ENABLED",
    "DB_POOL_MIN_SIZE",
    "DB_POOL_MAX_SIZE",
    "DB_POOL_TIMEOUT",
    "STATIC_ROOT",
    "PROMETHEUS_MULTIPROC_DIR",
    "GUNICORN_BIND",
    "WEB_CONCURRENCY",
    "GUNICORN_THREADS",
    "CACHE_KEY_PREFIX",
    "LOG_LEVEL",
    "PROMETHEUS_URL",
)


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SITE_VARIABLES}
    env.update(
        DATABASE_URL=DATABASE_URL,
        REDIS_URL=REDIS_URL,
        CELERY_BROKER_URL=BROKER_URL,
        PYTHONUNBUFFERED="1",
    )
    return env


def tool_env() -> dict[str, str]:
    """Migrations, seeding (seed_demo refuses production mode) and look-ups."""
    return {**base_env(), "DJANGO_ENV": "development", "DEBUG": "0"}


def production_env(*, static_root: Path, metrics_dir: Path, secret_key: str) -> dict[str, str]:
    return {
        **base_env(),
        "DJANGO_ENV": "production",
        "SECRET_KEY": secret_key,
        "ALLOWED_HOSTS": HOST,
        "SECURE_SSL_REDIRECT": "0",  # plain http on loopback; cookies stay Secure (irrelevant to anonymous GETs)
        "TRUSTED_PROXY_NETWORKS": "127.0.0.0/8",  # wrk plays the proxy for the counted-views scenario
        "BEHIND_TLS_PROXY": "0",
        # Per-process pool for gthread workers (docs/operations.md, "Database connections").
        "DB_POOL_MIN_SIZE": "1",
        "DB_POOL_MAX_SIZE": "3",
        "DB_POOL_TIMEOUT": "10",
        "STATIC_ROOT": str(static_root),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }


def run(cmd: Sequence[str], *, env: dict[str, str], timeout: float, label: str) -> None:
    """Run a setup step with its output passed through; fail after ``timeout`` seconds. (Every argv in this
    module is built here from constants, never from input, hence the S603 exemptions.)"""
    progress(f"{label}: {' '.join(cmd)}")
    started = time.monotonic()
    try:
        subprocess.run(cmd, cwd=ROOT, env=env, check=True, timeout=timeout, stdin=subprocess.DEVNULL)  # noqa: S603
    except subprocess.TimeoutExpired:
        raise BenchError(f"{label} did not finish within {timeout:.0f} s") from None
    except subprocess.CalledProcessError as exc:
        raise BenchError(f"{label} failed with exit status {exc.returncode}") from None
    progress(f"{label}: done in {time.monotonic() - started:.0f} s")


def manage(*args: str, env: dict[str, str], timeout: float, label: str) -> None:
    run([str(BIN / "python"), "manage.py", *args], env=env, timeout=timeout, label=label)


# =========================================================================================================
# Scratch database and Redis
# =========================================================================================================


def _pg_admin():
    import psycopg

    return psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=10)


def createdb() -> None:
    from psycopg import sql

    progress(f"database: drop {DB_NAME} if it exists, create it")
    with _pg_admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB_NAME)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB_NAME)))


def dropdb() -> None:
    from psycopg import sql

    with _pg_admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB_NAME)))
    progress(f"database: dropped {DB_NAME}")


def vacuum_analyze() -> None:
    import psycopg

    progress("database: VACUUM ANALYZE (visibility map and statistics, as autovacuum would leave them)")
    started = time.monotonic()
    with psycopg.connect(DATABASE_URL, autocommit=True, connect_timeout=10) as conn:
        conn.execute("SET statement_timeout = '600s'")
        conn.execute("VACUUM ANALYZE")
    progress(f"database: VACUUM ANALYZE done in {time.monotonic() - started:.0f} s")


def redis_client(db: int):
    import redis

    return redis.Redis(host=HOST, port=6379, db=db, socket_timeout=5, socket_connect_timeout=5)


def flush_redis() -> None:
    for db in (REDIS_CACHE_DB, REDIS_BROKER_DB):
        redis_client(db).flushdb()
    progress(f"redis: FLUSHDB {REDIS_CACHE_DB} and {REDIS_BROKER_DB}")


def buffered_views(workbook_id: int) -> int:
    """Views of ``workbook_id`` buffered in Redis and not yet flushed (no beat runs during the benchmark)."""
    client = redis_client(REDIS_CACHE_DB)
    total = 0
    for day in client.smembers(keys.views_days()):
        total += int(client.hget(keys.views_buffer(day.decode()), str(workbook_id)) or 0)
    return total


def popular_detail_path() -> tuple[int, str]:
    """The most favorited listed workbook (first of the "popular" sort): its id and page path."""
    code = (
        "from workbooks import selectors\n"
        "from workbooks.models import Workbook\n"
        "w = Workbook.objects.listed().order_by(*selectors.SORTS['popular']).first()\n"
        "print('POPULAR', w.pk, w.get_absolute_url(), w.favorite_count)\n"
    )
    out = subprocess.run(  # noqa: S603 (fixed argv, our code)
        [str(BIN / "python"), "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=tool_env(),
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    ).stdout
    match = re.search(r"^POPULAR (\d+) (\S+) (\d+)$", out, re.MULTILINE)
    if not match:
        raise BenchError(f"could not find the most popular workbook; shell printed:\n{out}")
    progress(f"detail page: {match[2]} (workbook {match[1]}, {match[3]} favorites)")
    return int(match[1]), match[2]


def setup(static_root: Path) -> None:
    createdb()
    flush_redis()
    manage("migrate", "--no-input", "--verbosity", "1", env=tool_env(), timeout=1200, label="migrate")
    manage("seed_demo", *SEED_ARGS, env=tool_env(), timeout=3600, label="seed")
    vacuum_analyze()


# =========================================================================================================
# gunicorn
# =========================================================================================================


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# --- CPU accounting: who used the machine's cores while wrk ran ------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _proc_stat(pid: int | str) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()  # fields from 3 (state) on
    except OSError:
        return None


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    with open("/proc/stat") as f:
        user, nice, system, idle, iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    busy = user + nice + system + irq + softirq + steal
    return busy / _TICK, (busy + idle + iowait) / _TICK


def tree_cpu(master: int) -> float:
    """CPU seconds of a gunicorn master, its live workers and the workers it has reaped (recycled)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _proc_stat(entry)
        if fields is None:
            continue
        if int(entry) == master:
            total += sum(int(x) for x in fields[11:15]) / _TICK  # utime stime cutime cstime
        elif int(fields[1]) == master:
            total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


def named_cpu() -> dict[str, float]:
    """CPU seconds so far of our PostgreSQL backends (their title names the database) and of redis-server.

    Plus the postmaster's reaped children: a parallel query's workers ("parallel worker for PID n", no
    database in their title) live for one query and exit, taking their CPU time with them; the postmaster's
    cutime/cstime is where it goes (with every other backend that exited meanwhile, on a quiet machine few).
    Without it, the uncached list's tag-directory aggregate (a parallel query at 100,000 workbooks) counted
    as "other processes"."""
    out = {"postgres": 0.0, "redis": 0.0}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if b"/bin/postgres\0" in cmdline and b"-D\0" in cmdline:  # the postmaster
            fields = _proc_stat(entry)
            if fields is not None:
                out["postgres"] += (int(fields[13]) + int(fields[14])) / _TICK  # reaped children
            continue
        key = "postgres" if DB_NAME.encode() in cmdline and b"postgres" in cmdline else None
        key = key or ("redis" if cmdline.startswith(b"redis-server") else None)
        fields = _proc_stat(entry) if key else None
        if fields is not None:
            out[key] += (int(fields[11]) + int(fields[12])) / _TICK
    return out


@dataclass
class CpuSnapshot:
    wall: float
    machine: tuple[float, float]
    server: float
    wrk: float
    named: dict[str, float]
    edge: float = 0.0

    @classmethod
    def take(cls, master: int | None, edge_pids: Sequence[int] = ()) -> CpuSnapshot:
        children = os.times()
        edge_cpu = sum(tree_cpu(pid) for pid in edge_pids)
        return cls(
            wall=time.monotonic(),
            machine=machine_busy(),
            server=tree_cpu(master) if master else 0.0,
            # wrk is our only waited-for child meanwhile (nginx and varnishd are still running)
            wrk=children.children_user + children.children_system,
            named=named_cpu(),
            edge=edge_cpu,
        )


@dataclass
class CpuUse:
    """Cores used on average during the run, by whom."""

    cores: int
    server: float
    wrk: float
    postgres: float
    redis: float
    other: float
    server_ms_per_request: float
    edge: float = 0.0
    edge_ms_per_request: float = 0.0

    @classmethod
    def between(cls, a: CpuSnapshot, b: CpuSnapshot, requests: int) -> CpuUse:
        wall = max(b.wall - a.wall, 1e-6)
        busy = b.machine[0] - a.machine[0]
        server, wrk_cpu = b.server - a.server, b.wrk - a.wrk
        # A process that exited between the snapshots takes its CPU time with it: never below zero.
        pg, rd = (max(0.0, b.named[k] - a.named[k]) for k in ("postgres", "redis"))
        edge_cpu = max(0.0, b.edge - a.edge)
        other = max(0.0, busy - server - wrk_cpu - pg - rd - edge_cpu)
        return cls(
            cores=os.cpu_count() or 1,
            server=server / wall,
            wrk=wrk_cpu / wall,
            postgres=pg / wall,
            redis=rd / wall,
            other=other / wall,
            server_ms_per_request=1000 * server / max(requests, 1),
            edge=edge_cpu / wall,
            edge_ms_per_request=1000 * edge_cpu / max(requests, 1),
        )

    def describe(self) -> str:
        return (
            f"cores used: gunicorn {self.server:.2f}, nginx+varnish {self.edge:.2f}, wrk {self.wrk:.2f}, "
            f"postgres {self.postgres:.2f}, "
            f"redis {self.redis:.2f}, other processes {self.other:.2f} (of {self.cores}); "
            f"gunicorn {self.server_ms_per_request:.2f} ms CPU per request"
            + (f", nginx+varnish {self.edge_ms_per_request:.3f} ms" if self.edge else "")
        )


def wait_for_quiet(budget: float) -> str | None:
    """Wait (at most ``budget`` seconds) until other processes use under QUIET_CORES; returns a warning if not."""
    deadline = time.monotonic() + budget
    announced = False
    while True:
        a = machine_busy()
        time.sleep(2)
        b = machine_busy()
        busy = (b[0] - a[0]) / max(b[1] - a[1], 1e-6) * (os.cpu_count() or 1)
        if busy < QUIET_CORES:
            return None
        if time.monotonic() >= deadline:
            return f"the machine was busy ({busy:.2f} cores used by other processes) when the run started"
        if not announced:
            progress(
                f"other processes use {busy:.2f} cores: waiting up to {budget:.0f} s for a quieter machine"
            )
            announced = True


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    @property
    def wire_size(self) -> int:
        """Bytes on the wire (status line, headers, body), as wrk counts them."""
        head = len(f"HTTP/1.1 {self.status} XX\r\n") + sum(len(k) + len(v) + 4 for k, v in self.headers) + 2
        return head + len(self.body)

    def describe(self, limit: int = 1500) -> str:
        head = "\n".join(f"{k}: {v}" for k, v in self.headers)
        return f"HTTP {self.status}\n{head}\n\n{self.body[:limit].decode(errors='replace')}"


def get(port: int, path: str, *, timeout: float = 10.0) -> Response:
    """One anonymous GET (no cookies, no redirects followed)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": HOST, "User-Agent": "bench_web"})
        resp = conn.getresponse()
        return Response(resp.status, resp.getheaders(), resp.read())
    finally:
        conn.close()


class Gunicorn:
    """gunicorn with the site's config, in its own process group, logging to a file."""

    def __init__(self, app: str, *, env: dict[str, str], port: int, log_path: Path) -> None:
        self.app, self.env, self.port, self.log_path = app, env, port, log_path
        self.proc: subprocess.Popen | None = None

    def start(self, *, timeout: float = 60.0) -> None:
        env = {**self.env, "GUNICORN_BIND": f"{HOST}:{self.port}"}
        Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
        cmd = [str(BIN / "gunicorn"), "-c", str(GUNICORN_CONF), self.app]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(  # noqa: S603 (fixed argv)
            cmd,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        last_error = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"gunicorn exited with {self.proc.returncode} at start:\n{self.log_tail()}")
            try:
                resp = get(self.port, "/healthz", timeout=2)
                if resp.status == 200:
                    return
                last_error = f"/healthz answered:\n{resp.describe()}"
            except OSError as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            time.sleep(0.2)
        raise BenchError(f"gunicorn not healthy after {timeout:.0f} s ({last_error}):\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # the master and its workers (own session)
                self.proc.wait(timeout=40)  # graceful_timeout is 30 s
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            except ProcessLookupError:
                pass
        self._log.close()
        self.proc = None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


# =========================================================================================================
# wrk
# =========================================================================================================


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    bytes: int
    errors: dict[str, int]
    rps: float
    mean_ms: float
    max_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    output: str = ""
    first_bad: str = ""
    bad_count: int = 0


def wrk_binary() -> str:
    path = shutil.which("wrk")
    if not path:
        raise BenchError("wrk is not installed (apt-get install -y wrk)")
    return path


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def wrk(
    port: int, path: str, *, duration: int, capture: bool = False, distinct_visitors: bool = False
) -> WrkResult:
    url = f"http://{HOST}:{port}{path}"
    cmd = [
        wrk_binary(),
        f"-t{WRK_THREADS}",
        f"-c{WRK_CONNECTIONS}",
        f"-d{duration}s",
        f"--timeout={WRK_TIMEOUT}s",  # default 2 s drops slow responses from the statistics
        "--latency",
        "-s",
        str(WRK_SCRIPT),
        url,
    ]
    env = {
        **os.environ,
        "WRK_CAPTURE": "1" if capture else "0",
        # A view counts once per visitor per VIEW_DEDUP_SECONDS: the counted scenario sends a new client address
        # per request (X-Forwarded-For, believed from 127.0.0.0/8: TRUSTED_PROXY_NETWORKS in production_env).
        "WRK_DISTINCT_VISITORS": "1" if distinct_visitors else "0",
    }
    try:
        out = subprocess.run(  # noqa: S603 (fixed argv)
            cmd, env=env, capture_output=True, text=True, timeout=duration + 60, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk did not finish within {duration + 60} s") from None
    if out.returncode != 0:
        raise BenchError(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    text = out.stdout
    report = re.search(r"^WRK_REPORT (.*)$", text, re.MULTILINE)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.MULTILINE)
    if not report or not rps:
        raise BenchError(f"could not parse wrk's output:\n{text}\n{out.stderr}")
    fields = {k: float(v) for k, v in (item.split("=") for item in report[1].split())}
    # wrk's own percentile table, to cross-check the script's numbers.
    table = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", text, re.MULTILINE))
    result = WrkResult(
        requests=int(fields["requests"]),
        duration_s=fields["duration_us"] / 1e6,
        bytes=int(fields["bytes"]),
        errors={k: int(fields[k]) for k in ("connect", "read", "write", "status", "timeout")},
        rps=float(rps[1]),
        mean_ms=fields["mean_us"] / 1000,
        max_ms=fields["max_us"] / 1000,
        p50_ms=fields["p50_us"] / 1000,
        p90_ms=fields["p90_us"] / 1000,
        p95_ms=fields["p95_us"] / 1000,
        p99_ms=fields["p99_us"] / 1000,
        output=text,
    )
    for pct, attr in (("50", "p50_ms"), ("90", "p90_ms"), ("99", "p99_ms")):
        if pct in table and abs(_ms(table[pct]) - getattr(result, attr)) > max(0.05, 0.02 * _ms(table[pct])):
            raise BenchError(
                f"wrk's p{pct} {table[pct]} disagrees with the script's {getattr(result, attr)} ms"
            )
    result.bad_count = sum(int(n) for n in re.findall(r"^WRK_BAD_COUNT thread=\d+ count=(\d+)$", text, re.M))
    first = re.search(r"^WRK_FIRST_BAD_BEGIN\n(.*?)\nWRK_FIRST_BAD_END$", text, re.MULTILINE | re.DOTALL)
    result.first_bad = first[1] if first else ""
    return result


# =========================================================================================================
# Scenarios
# =========================================================================================================


@dataclass
class Scenario:
    name: str
    description: str
    app: str
    path: str
    env: dict[str, str] = field(default_factory=dict)
    expect_cache_hit: bool | None = None  # True: X-Cache: hit after warming; False: no X-Cache header
    counted_workbook: int | None = None  # views of this workbook must grow by at least the requests
    uncounted_workbook: int | None = None  # views of this workbook must not grow
    edge: str | None = None  # "nginx": wrk -> nginx -> gunicorn; "cdn": wrk -> Varnish -> nginx -> gunicorn


SCENARIO_NAMES = (
    "hello",
    "list-cached",
    "list-uncached",
    "detail-counting",
    "detail-no-counting",
    "list-nginx",
    "list-cdn",
)


@dataclass
class Outcome:
    scenario: Scenario
    result: WrkResult
    cpu: CpuUse
    notes: list[str]


def scenarios(detail_id: int, detail_path: str) -> list[Scenario]:
    return [
        Scenario("hello", "bare WSGI hello-world (ceiling)", "bench.hello_wsgi:application", "/"),
        Scenario(
            "list-cached",
            "/workbooks/ anonymous, page cache on",
            "sigma_playground.wsgi:application",
            "/workbooks/",
            {"PAGE_CACHE_ENABLED": "1", "VIEW_COUNTING_ENABLED": "1"},
            expect_cache_hit=True,
        ),
        Scenario(
            "list-uncached",
            "/workbooks/ anonymous, page cache off",
            "sigma_playground.wsgi:application",
            "/workbooks/",
            {"PAGE_CACHE_ENABLED": "0", "VIEW_COUNTING_ENABLED": "1"},
            expect_cache_hit=False,
        ),
        Scenario(
            "detail-counting",
            "detail page, page cache on, view counting on",
            "sigma_playground.wsgi:application",
            detail_path,
            {"PAGE_CACHE_ENABLED": "1", "VIEW_COUNTING_ENABLED": "1"},
            expect_cache_hit=True,
            counted_workbook=detail_id,
        ),
        Scenario(
            "detail-no-counting",
            "detail page, page cache on, view counting off",
            "sigma_playground.wsgi:application",
            detail_path,
            {"PAGE_CACHE_ENABLED": "1", "VIEW_COUNTING_ENABLED": "0"},
            expect_cache_hit=True,
            uncounted_workbook=detail_id,
        ),
        Scenario(
            "list-nginx",
            "/workbooks/ through nginx (deploy/nginx) to the gunicorn front hit",
            "sigma_playground.wsgi:application",
            "/workbooks/",
            {"PAGE_CACHE_ENABLED": "1", "VIEW_COUNTING_ENABLED": "1"},
            expect_cache_hit=True,
            edge="nginx",
        ),
        Scenario(
            "list-cdn",
            "/workbooks/ as a CDN hit (Varnish, deploy/varnish, in front of nginx)",
            "sigma_playground.wsgi:application",
            "/workbooks/",
            {"PAGE_CACHE_ENABLED": "1", "VIEW_COUNTING_ENABLED": "1", "CDN_PURGE_BACKEND": "varnish"},
            expect_cache_hit=True,
            edge="cdn",
        ),
    ]


def check_response(scenario: Scenario, resp: Response, when: str) -> None:
    if resp.status != 200:
        raise BenchError(
            f"{scenario.name}: {scenario.path} answered {resp.status} {when}:\n{resp.describe()}"
        )
    x_cache = resp.header("X-Cache")
    if scenario.edge == "cdn":
        x_cache = "hit" if x_cache == "HIT" else x_cache  # Varnish's own X-Cache replaces the origin's
    if scenario.expect_cache_hit is True and x_cache != "hit":
        raise BenchError(
            f"{scenario.name}: the page cache does not serve {scenario.path} {when} "
            f"(X-Cache: {x_cache!r}, expected 'hit'):\n{resp.describe(300)}"
        )
    if scenario.expect_cache_hit is False and x_cache is not None:
        raise BenchError(f"{scenario.name}: X-Cache: {x_cache!r} {when}, but the page cache should be off")


def run_scenario(
    scenario: Scenario, *, env: dict[str, str], duration: int, work: Path, quiet_wait: float
) -> Outcome:
    notes: list[str] = []
    gunicorn_port = port = free_port()
    log_path = work / f"gunicorn-{scenario.name}.log"
    server = Gunicorn(scenario.app, env={**env, **scenario.env}, port=port, log_path=log_path)
    progress(f"{scenario.name}: start gunicorn on {HOST}:{port} ({scenario.description})")
    edge_servers: list[edge.Server] = []
    # Each scenario starts from an empty page cache: a page stored by an earlier scenario carries the headers of
    # that scenario's settings (without a purge backend, no s-maxage: Varnish would never keep it).
    flush_redis()
    try:
        server.start()
        if scenario.edge:
            nginx = edge.start_nginx(
                work / f"nginx-{scenario.name}",
                upstream=f"{HOST}:{gunicorn_port}",
                static_root=Path(env["STATIC_ROOT"]),
                media_root=work / "media",
                access_log=False,
            )
            edge_servers.append(nginx)
            port = nginx.port
            if scenario.edge == "cdn":
                varnish = edge.start_varnish(work / f"varnish-{scenario.name}", origin_port=nginx.port)
                edge_servers.append(varnish)
                port = varnish.port
            progress(
                f"{scenario.name}: wrk -> {' -> '.join(s.name for s in reversed(edge_servers))} -> gunicorn"
            )
        # Warm: the first request builds the page (and fills the page cache when it is on); then a short
        # unrecorded wrk run reaches every worker and thread (each pays its lazy set-up on its first request).
        first = get(port, scenario.path, timeout=30)
        if first.status != 200:
            raise BenchError(f"{scenario.name}: warming {scenario.path} answered:\n{first.describe()}")
        # Wait for a quiet machine before warming: waiting longer than PAGE_CACHE_TTL after it would leave a
        # stale page for the measured run to rebuild.
        busy = wait_for_quiet(quiet_wait)
        if busy:
            notes.append(f"WARNING: {busy}")
        warm = wrk(port, scenario.path, duration=WARMUP_SECONDS)
        if warm.errors["status"] or warm.requests == 0:
            raise BenchError(f"{scenario.name}: warm-up run failed:\n{warm.output}\n{server.log_tail()}")
        checked = get(port, scenario.path)
        check_response(scenario, checked, "after warming")
        expected = checked.wire_size
        views_before = buffered_views(scenario.counted_workbook or scenario.uncounted_workbook or 0)
        recycled_before = server.log_text().count("Autorestarting worker")
        progress(
            f"{scenario.name}: warmed ({warm.requests:,} requests); {scenario.path} -> 200, "
            f"{len(checked.body):,} bytes body"
            f"{', X-Cache: ' + checked.header('X-Cache') if checked.header('X-Cache') else ''}; "
            f"wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{duration}s"
        )
        edge_pids = [s.process.pid for s in edge_servers]
        before = CpuSnapshot.take(server.proc.pid if server.proc else None, edge_pids)
        result = wrk(
            port, scenario.path, duration=duration, distinct_visitors=scenario.counted_workbook is not None
        )
        cpu = CpuUse.between(
            before, CpuSnapshot.take(server.proc.pid if server.proc else None, edge_pids), result.requests
        )
        per_response = result.bytes / max(result.requests, 1)
        socket_errors = {k: v for k, v in result.errors.items() if k != "status" and v}
        problems = []
        if result.requests == 0:
            problems.append("no requests completed")
        if result.errors["status"]:
            problems.append(f"{result.errors['status']} responses with status >= 400")
        if socket_errors:
            problems.append(f"socket errors {socket_errors}")
        if abs(per_response - expected) > 0.1 * expected + 64:
            problems.append(
                f"{per_response:,.0f} bytes per response where the checked 200 had {expected:,} "
                "(redirects or error pages among the responses?)"
            )
        if problems:
            progress(
                f"{scenario.name}: run looks wrong ({'; '.join(problems)}); 3 s rerun capturing responses"
            )
            capture = wrk(port, scenario.path, duration=3, capture=True)
            raise BenchError(
                f"{scenario.name}: {'; '.join(problems)}.\nwrk output:\n{result.output}\n"
                f"capture rerun: {capture.bad_count} responses other than 200 of {capture.requests}; "
                f"first:\n{capture.first_bad or '(none captured)'}\n"
                f"gunicorn log tail:\n{server.log_tail()}"
            )
        check_response(scenario, get(port, scenario.path), "after the run")
        for edge_server in reversed(edge_servers):
            edge_server.stop()
        # Each worker batches its views for VIEW_PROCESS_FLUSH_SECONDS and sends the rest as it stops.
        server.stop()
        if scenario.counted_workbook is not None:
            counted = buffered_views(scenario.counted_workbook) - views_before
            if counted < result.requests:
                raise BenchError(
                    f"{scenario.name}: {result.requests} requests but only {counted} views counted in Redis"
                )
            notes.append(f"{counted:,} views buffered in Redis for {result.requests:,} requests")
        if scenario.uncounted_workbook is not None:
            counted = buffered_views(scenario.uncounted_workbook) - views_before
            if counted:
                raise BenchError(f"{scenario.name}: view counting is off but {counted} views were counted")
        log = server.log_text()
        restarts = log.count("Autorestarting worker") - recycled_before
        tracebacks = log.count("Traceback (most recent call last)")
        if tracebacks:
            raise BenchError(
                f"{scenario.name}: {tracebacks} tracebacks in gunicorn's log:\n{server.log_tail(80)}"
            )
        if restarts:
            notes.append(f"{restarts} workers recycled (max_requests) during the run")
        notes.append(cpu.describe())
        if cpu.other > QUIET_CORES:
            notes.append(
                f"WARNING: other processes used {cpu.other:.2f} cores during the run: req/s is pessimistic"
            )
        progress(
            f"{scenario.name}: {result.rps:,.0f} req/s, p50 {result.p50_ms:.2f} ms, p95 {result.p95_ms:.2f} ms, "
            f"p99 {result.p99_ms:.2f} ms ({result.requests:,} requests)"
        )
        return Outcome(scenario, result, cpu, notes)
    finally:
        for edge_server in reversed(edge_servers):
            edge_server.stop()
        server.stop()


# =========================================================================================================
# Report
# =========================================================================================================


def report(outcomes: list[Outcome], *, duration: int) -> list[bool]:
    say()
    say(
        f"Results: wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{duration}s --latency from {HOST}, gunicorn -c "
        "deploy/gunicorn.conf.py, production mode"
    )
    rows = [("scenario", "path", "req/s", "p50 ms", "p95 ms", "p99 ms", "requests", "gunicorn CPU ms/req")]
    for o in outcomes:
        r = o.result
        rows.append(
            (
                o.scenario.name,
                o.scenario.path,
                f"{r.rps:,.0f}",
                f"{r.p50_ms:.2f}",
                f"{r.p95_ms:.2f}",
                f"{r.p99_ms:.2f}",
                f"{r.requests:,}",
                f"{o.cpu.server_ms_per_request:.2f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        cells = [
            c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        say("  ".join(cells))
        if n == 0:
            say("  ".join("-" * w for w in widths))
    for o in outcomes:
        for note in o.notes:
            say(f"  {o.scenario.name}: {note}")

    by_name = {o.scenario.name: o.result for o in outcomes}
    say()
    say("Goals (requests/s ratios):")
    verdicts = []
    for goal, num, den, minimum in GOALS:
        if num not in by_name or den not in by_name:
            say(f"  {goal:<36} not measured")
            continue
        ratio = by_name[num].rps / by_name[den].rps
        ok = ratio >= minimum
        verdicts.append(ok)
        say(
            f"  {goal:<36} {by_name[num].rps:>9,.0f} / {by_name[den].rps:>9,.0f} = {ratio:6.2f}x  "
            f"(goal >= {minimum}x)  {'PASS' if ok else 'FAIL'}"
        )
    cpu = {o.scenario.name: o.cpu for o in outcomes}
    if "list-cached" in cpu and ("list-cdn" in cpu or "list-nginx" in cpu):
        # CPU per request is what a busy shared machine distorts least: printed next to the req/s goals.
        front = cpu["list-cached"].server_ms_per_request
        say()
        say("CPU per request (less sensitive than req/s to other processes on the machine):")
        say(f"  gunicorn front hit                   {front:.3f} ms (gunicorn)")
        if "list-nginx" in cpu:
            n = cpu["list-nginx"]
            say(
                f"  through nginx                        {n.server_ms_per_request:.3f} ms (gunicorn) + "
                f"{n.edge_ms_per_request:.3f} ms (nginx): nginx adds {n.edge_ms_per_request / front:.0%}"
            )
        if "list-cdn" in cpu:
            c = cpu["list-cdn"]
            say(
                f"  CDN hit                              {c.edge_ms_per_request:.3f} ms (Varnish; gunicorn "
                f"{c.server_ms_per_request:.3f}): {front / max(c.edge_ms_per_request, 1e-6):.1f}x less than a front hit"
            )
    say()
    say(f"{sum(verdicts)} of {len(verdicts)} goals pass.")
    return verdicts


# =========================================================================================================
# Entry point
# =========================================================================================================


def machine_summary() -> str:
    with open("/proc/meminfo") as f:
        mem_kib = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    with _pg_admin() as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
    redis_version = redis_client(REDIS_CACHE_DB).info("server")["redis_version"]
    wrk_version = subprocess.run(  # noqa: S603 (fixed argv)
        [wrk_binary(), "-v"], capture_output=True, text=True, timeout=10
    ).stdout.split("[")[0]
    return (
        f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; {os.cpu_count()} CPUs, "
        f"{mem_kib / 1048576:.1f} GiB memory; PostgreSQL {pg}; Redis {redis_version}; {wrk_version.strip()}; "
        f"Python {sys.version.split()[0]}"
    )


def preflight() -> None:
    wrk_binary()
    if not (BIN / "gunicorn").exists():
        raise BenchError(f"{BIN / 'gunicorn'} not found: run with the project's venv python")
    try:
        redis_client(REDIS_CACHE_DB).ping()
    except Exception as exc:
        raise BenchError(f"Redis at {HOST}:6379 unreachable: {exc}") from None
    try:
        _pg_admin().close()
    except Exception as exc:
        raise BenchError(f"PostgreSQL at {PG_SERVER} unreachable: {exc}") from None


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM (e.g. a timeout around make) cleans up like Ctrl-C


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    parser = argparse.ArgumentParser(prog="bench/bench_web.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds of wrk per scenario (default 15)")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=SCENARIO_NAMES,
        help="run only these scenarios (repeatable; default all)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=120,
        help="before each scenario, wait up to this many seconds for other processes to leave the CPUs "
        f"(under {QUIET_CORES} cores busy; default 120, 0: don't wait)",
    )
    parser.add_argument("--keep-db", action="store_true", help="keep the database and Redis data at the end")
    parser.add_argument(
        "--reuse-db", action="store_true", help="use the database of an earlier --keep-db run"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 300:
        parser.error("--duration must be 1..300 seconds")

    work = Path(tempfile.mkdtemp(prefix="bench-web-"))
    static_root = work / "static"
    secret_key = secrets.token_urlsafe(48)  # 64 characters
    metrics_dir = (
        work / "prometheus"
    )  # prometheus_client's multiprocess files (every process in production mode)
    metrics_dir.mkdir()
    prod = production_env(static_root=static_root, metrics_dir=metrics_dir, secret_key=secret_key)
    outcomes: list[Outcome] = []
    interrupted = False
    try:
        preflight()
        say(f"bench-web: {machine_summary()}")
        if args.reuse_db:
            progress(f"database: reusing {DB_NAME}")
            flush_redis()
        else:
            setup(static_root)
        manage(
            "collectstatic", "--no-input", "--verbosity", "0", env=prod, timeout=600, label="collectstatic"
        )
        detail_id, detail_path = popular_detail_path()
        selected = [
            s for s in scenarios(detail_id, detail_path) if not args.scenario or s.name in args.scenario
        ]
        for scenario in selected:
            outcomes.append(
                run_scenario(
                    scenario, env=prod, duration=args.duration, work=work, quiet_wait=args.quiet_wait
                )
            )
        report(outcomes, duration=args.duration)
        return 0
    except BenchError as exc:
        say()
        say(f"bench_web: FAILED: {exc}")
        if outcomes:
            report(outcomes, duration=args.duration)
        return 1
    except KeyboardInterrupt:
        interrupted = True
        say("bench_web: interrupted")
        return 130
    finally:
        if args.keep_db and not interrupted:
            progress(f"cleanup: keeping {DB_NAME} and Redis {REDIS_CACHE_DB}/{REDIS_BROKER_DB} (--keep-db)")
        else:
            for step in (dropdb, flush_redis):
                try:
                    step()
                except Exception as exc:
                    say(f"bench_web: cleanup step {step.__name__} failed: {exc}")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
