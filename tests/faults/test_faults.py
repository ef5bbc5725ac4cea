"""The fault suite (issue 12): production mode under real faults, asserted and measured.

Its own PostgreSQL cluster and two Redis servers (the cache role: allkeys-lru with a memory limit; the durable
role: noeviction, appendonly everysec) on free ports in temporary folders, and a real gunicorn
(deploy/gunicorn.conf.py, DJANGO_ENV=production), Celery worker and beat. The tests run in this order on one
stack, and each prints what it measured:

1. a generation key deleted by hand never makes an old page fresh again;
2. Redis stalled (ten 0.4 s pauses), paused for 10 s, the cache Redis killed and restarted: pages answer,
   logged-in requests stay fast, views are counted exactly, nothing needs a restart;
3. the durable Redis at its memory limit: writes are refused loudly, nothing it holds is dropped, no view is
   lost;
4. the worker killed during a flush and during a render: nothing lost or counted twice, the render retried
   at once;
5. PostgreSQL stopped for 30 s: cached pages and /healthz answer within 100 ms p95, other pages and /readyz
   answer 503 within 1 s, and everything recovers without a restart.

Run it with ``pytest -m faults -s tests/faults`` (.ci/run does). Marked ``faults``: deselected otherwise.
Needs PostgreSQL 15's server binaries (PG_BIN, default /usr/lib/postgresql/15/bin) and redis-server.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from django.conf import settings

from deploy.pg_cluster import PostgresCluster
from tests.faults.servers import RedisServer
from tests.http_browser import Answer, Browser
from tests.monitoring.helpers import GUNICORN_CONFIG, ROOT, free_port

pytestmark = [pytest.mark.faults, pytest.mark.slow]

# Settings read from the environment that must come from the suite, not from the caller's shell.
SITE_VARIABLES = {
    "DEBUG", "DJANGO_ENV", "DATABASE_URL", "REDIS_URL", "REDIS_DURABLE_URL", "CELERY_BROKER_URL",
    "CELERY_TASK_ALWAYS_EAGER", "SECRET_KEY", "ALLOWED_HOSTS", "SECURE_SSL_REDIRECT", "BEHIND_TLS_PROXY",
    "PAGE_CACHE_ENABLED", "PAGE_CACHE_TTL", "DB_POOL_MIN_SIZE", "DB_POOL_MAX_SIZE", "DB_POOL_TIMEOUT",
    "STATIC_ROOT", "MEDIA_ROOT", "PRIVATE_MEDIA_ROOT", "PROMETHEUS_MULTIPROC_DIR", "GUNICORN_BIND",
    "WEB_CONCURRENCY", "GUNICORN_THREADS", "CACHE_KEY_PREFIX", "REQUIRE_SERVICES", "CELERY_METRICS_PORT",
}  # fmt: skip


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18] if len(values) > 1 else values[0]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def latency_bound(limit: float, baseline: list[float]) -> float:
    """The issue's bound (``limit``, for a quiet machine), or twice the p95 of the same requests measured just
    before the fault when the machine is busier than that (2 cores shared with other work: a load average far
    above 2 makes every request slower, fault or not). A request that waited a socket timeout (0.25 s) or the
    pool timeout would still break it. Printed with every figure."""
    return max(limit, 2 * p95(baseline))


# --- The stack -------------------------------------------------------------------------------------------


@dataclass
class Stack:
    pg: PostgresCluster
    cache: RedisServer
    durable: RedisServer
    base: str
    env: dict[str, str]
    tool_env: dict[str, str]
    folder: Path
    control: Path
    urls: list[str]
    workbooks: list[int]
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    sent: dict[int, int] = field(default_factory=dict)  # views sent per workbook (200 answers)

    def log(self, name: str) -> str:
        path = self.folder / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def view(self, index: int, browser: Browser | None = None) -> Answer:
        answer = (browser or Browser(self.base)).get(self.urls[index])
        if answer.status == 200:
            with _SENT_LOCK:
                self.sent[self.workbooks[index]] = self.sent.get(self.workbooks[index], 0) + 1
        return answer

    def counted(self) -> dict[int, int]:
        rows = self.pg.query(
            "SELECT id, view_count FROM workbooks_workbook WHERE id = ANY(%s)", (self.workbooks,)
        )
        return dict(rows)

    def wait_counted(self, seconds: float = 30) -> dict[int, int]:
        """Until the database holds exactly the views sent (flushes every second); fails on a double count."""
        deadline = time.monotonic() + seconds
        while True:
            counted = self.counted()
            expected = {pk: self.sent.get(pk, 0) for pk in self.workbooks}
            assert all(counted[pk] <= expected[pk] for pk in self.workbooks), (
                f"counted twice: {counted} > {expected}"
            )
            if counted == expected:
                time.sleep(2.5)  # longer than a process batch plus a flush: nothing is still on its way
                again = self.counted()
                assert again == expected, f"counted twice: {again} after {expected}"
                return counted
            assert time.monotonic() < deadline, f"views lost: counted {counted}, sent {expected}"
            time.sleep(0.5)

    def pids(self) -> dict[str, set[int]]:
        out = {}
        for name, process in self.processes.items():
            assert process.poll() is None, f"{name} exited:\n{self.log(name)[-3000:]}"
            out[name] = {process.pid, *(c.pid for c in psutil.Process(process.pid).children(recursive=True))}
        return out

    def start(self, name: str, args: list[str], **env: str) -> None:
        self.processes[name] = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env={**self.env, **env},
            stdout=(self.folder / f"{name}.log").open("ab"),
            stderr=subprocess.STDOUT,
        )


_SENT_LOCK = threading.Lock()


def _run(args: list[str], env: dict[str, str], timeout: float = 300) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def _wait(check: Callable[[], bool], seconds: float, what: str) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, f"{what}: not within {seconds} s"
        time.sleep(0.2)
    return time.monotonic() - started


@pytest.fixture(scope="module")
def stack():
    for tool in ("redis-server",):
        assert shutil.which(tool), f"{tool} is needed by the fault suite"
    started = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="sigma-faults-"))
    pg = PostgresCluster()
    cache = RedisServer(
        "cache", "--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru", "--appendonly", "no"
    )
    durable = RedisServer(
        "durable", "--maxmemory-policy", "noeviction", "--appendonly", "yes", "--appendfsync", "everysec"
    )
    stack = None
    try:
        pg.start()
        pg.create_database()
        cache.start()
        durable.start()
        control = folder / "control"
        control.mkdir()
        base_env = {k: v for k, v in os.environ.items() if k not in SITE_VARIABLES}
        common = {
            **base_env,
            "DATABASE_URL": pg.url,
            "REDIS_URL": cache.url(0),
            "REDIS_DURABLE_URL": durable.url(0),  # the broker: its database 1
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "MEDIA_ROOT": str(folder / "media"),
            "PRIVATE_MEDIA_ROOT": str(folder / "private_media"),
            "STATIC_ROOT": str(folder / "static"),
            "PYTHONUNBUFFERED": "1",
            "VIEW_FLUSH_SECONDS": "1",
            # Every view counts: the suite checks exact delivery across faults (sent = counted) from one client;
            # the once-per-visitor rule has its own tests (tests/caching/test_view_counting.py).
            "VIEW_DEDUP_SECONDS": "0",
            "PAGE_CACHE_TTL": "5",  # cached pages go stale during the database outage: stale copies are served
            "DB_POOL_MIN_SIZE": "1",
            "DB_POOL_MAX_SIZE": "3",
            "DB_POOL_TIMEOUT": "10",
            "CACHE_WARM_SECONDS": "3600",
            "TRENDING_REFRESH_SECONDS": "3600",
            "CAPACITY_SAMPLE_SECONDS": "3600",
            "BEAT_LOCK_SECONDS": "10",
            "FAULT_CONTROL_DIR": str(control),
        }
        tool_env = {**common, "DJANGO_ENV": "development", "DEBUG": "0"}
        env = {
            **common,
            "DJANGO_ENV": "production",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "0",
            "BEHIND_TLS_PROXY": "0",
            "WEB_CONCURRENCY": "2",
            "PROMETHEUS_MULTIPROC_DIR": str(folder / "prometheus-web"),
        }
        for name in ("prometheus-web", "prometheus-celery"):
            (folder / name).mkdir()
        _run(["manage.py", "migrate", "--no-input", "-v0"], tool_env)
        _run(["manage.py", "collectstatic", "--no-input", "-v0"], env)
        seeded = json.loads(_run(["-m", "tests.faults.tool", "seed"], tool_env).strip().splitlines()[-1])
        port = free_port()
        stack = Stack(
            pg=pg, cache=cache, durable=durable, base=f"http://127.0.0.1:{port}", env=env, tool_env=tool_env,
            folder=folder, control=control, urls=seeded["urls"], workbooks=seeded["workbooks"],
        )  # fmt: skip
        stack.start(
            "gunicorn",
            [
                "-m",
                "gunicorn",
                "-c",
                str(GUNICORN_CONFIG),
                "--bind",
                f"127.0.0.1:{port}",
                "sigma_playground.wsgi",
            ],
        )
        worker_args = [
            "-m",
            "celery",
            "-A",
            "tests.faults.worker_app",
            "worker",
            "-Q",
            # Every queue, as `make worker`: the view flush is on `counters`, renders on `media`, capacity
            # samples on `reports` (settings.CELERY_TASK_ROUTES); nothing may be left unconsumed.
            ",".join(settings.WORKER_QUEUES),
            "--pool=prefork",
            "--concurrency=1",
        ]
        celery_metrics = str(folder / "prometheus-celery")
        stack.start(
            "worker",
            [*worker_args, "--without-gossip", "--without-mingle", "--loglevel=INFO"],
            PROMETHEUS_MULTIPROC_DIR=celery_metrics,
        )
        beat_args = ["-m", "celery", "-A", "sigma_playground", "beat", "--loglevel=INFO"]
        stack.start("beat", beat_args, PROMETHEUS_MULTIPROC_DIR=celery_metrics)
        _wait(lambda: _up(stack), 90, "gunicorn")
        _wait(lambda: "acquired the beat lock" in stack.log("beat"), 90, "beat")
        _wait(lambda: "ready." in stack.log("worker"), 90, "worker")
        print(
            f"\n[faults] stack up in {time.monotonic() - started:.0f} s (load average {os.getloadavg()[0]:.1f})"
        )
        yield stack
    finally:
        if stack is not None:
            for process in stack.processes.values():
                if process.poll() is None:
                    process.terminate()
            for _name, process in stack.processes.items():
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        for server in (cache, durable):
            server.remove()
        pg.remove()
        if os.environ.get("FAULTS_KEEP_LOGS"):
            print(f"[faults] logs kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def _up(stack: Stack) -> bool:
    try:
        return Browser(stack.base).get("/healthz", timeout=2).status == 200
    except OSError:
        assert stack.processes["gunicorn"].poll() is None, stack.log("gunicorn")[-3000:]
        return False


def login(stack: Stack) -> Browser:
    browser = Browser(stack.base)
    answer = browser.post_form("/accounts/login/", {"username": "reader", "password": "fault-reader-pw1"})
    assert answer.status == 302 and "sessionid" in browser.cookies, answer.body[-500:]
    return browser


def favorites_shown(body: str) -> int:
    found = re.search(r"★ (\d+) favorite", body)
    assert found, "no favorite count on the page"
    return int(found.group(1))


# --- 1. Generations -----------------------------------------------------------------------------------------


def test_a_generation_key_deleted_by_hand_never_makes_an_old_page_fresh_again(stack: Stack):
    reader = login(stack)
    index, pk = 3, stack.workbooks[3]
    gen_key = f"sp:2:gen:workbook:{pk}"
    durable = stack.durable.client()
    seen = []

    def step(expected: int) -> None:
        for browser in (reader, Browser(stack.base)):  # the shared fragment and the anonymous page
            answer = stack.view(index, browser)
            assert answer.status == 200
            assert favorites_shown(answer.body) == expected
        seen.append(int(durable.get(gen_key)))

    def toggle(action: str) -> None:  # from the detail page, as a reader would (the page view counts)
        page = stack.view(index, reader)
        assert reader.post_form(f"/workbooks/{pk}/{action}/", {}, page=page).status == 302

    step(0)
    toggle("favorite")
    step(1)
    toggle("unfavorite")
    step(0)
    durable.delete(gen_key)  # as an eviction or a restart without persistence would
    step(0)
    recreated = seen[-1]
    print(f"[faults] generation values before deletion {seen[:-1]}; recreated as {recreated}")
    assert recreated > max(seen[:-1]), "the recreated generation is not above every value used before"
    for _ in range(3):  # with a counter restarted from 0 these bumps would revisit the old values
        toggle("favorite")
        step(1)
        toggle("unfavorite")
        step(0)
    stack.wait_counted()


# --- 2. Redis: stalls, a 10 s pause, a kill --------------------------------------------------------------


def _views_in_background(
    stack: Stack, stop: threading.Event, index: int = 0, pause: float = 0.0
) -> threading.Thread:
    """Anonymous views of one workbook, as fast as one client sends them (or ``pause`` apart), until ``stop``."""
    failures: list[int] = []

    def run() -> None:
        while not stop.is_set():
            answer = stack.view(index)
            if answer.status != 200:
                failures.append(answer.status)
            time.sleep(pause)

    thread = threading.Thread(target=run, daemon=True)
    thread.failures = failures  # type: ignore[attr-defined]
    thread.start()
    return thread


def test_redis_stalled_paused_and_killed_costs_no_error_and_no_view(stack: Stack):
    before = stack.pids()
    reader = login(stack)
    assert stack.view(1, reader).status == 200

    # Ten 0.4 s stalls of the durable Redis (view buffers, generations), above the 0.25 s socket timeout:
    # the old code wrote each timed-out batch to the database and Redis applied it too.
    stop = threading.Event()
    views = _views_in_background(stack, stop)
    for _ in range(10):
        time.sleep(0.4)
        stack.durable.pause()
        time.sleep(0.4)
        stack.durable.resume()
    stop.set()
    views.join()
    assert views.failures == []  # type: ignore[attr-defined]
    counted = stack.wait_counted()
    print(
        f"[faults] ten 0.4 s stalls: {stack.sent[stack.workbooks[0]]} views sent, {counted[stack.workbooks[0]]} counted"
    )

    # Both Redis servers paused for 10 s: logged-in readers and anonymous visitors keep being served.
    stop = threading.Event()
    views = _views_in_background(stack, stop, pause=0.02)
    # The same requests before the pause, built from the database as they are while Redis is skipped: every
    # generation (the page's fragment, related workbooks, lists) is bumped before each one, so nothing the
    # page shows comes from the cache.
    durable = stack.durable.client()
    baseline = []
    for _ in range(40):
        for key in durable.keys("sp:2:gen:*"):  # our own test server: a handful of keys
            durable.incr(key)
        baseline.append(stack.view(1, reader).seconds)
    logged_in: list[tuple[float, float]] = []
    statuses: list[int] = []
    stack.cache.pause()
    stack.durable.pause()
    paused_at = time.monotonic()
    try:
        while time.monotonic() - paused_at < 10:
            sent_at = time.monotonic() - paused_at
            answer = stack.view(1, reader)
            logged_in.append((sent_at, answer.seconds))
            statuses.append(answer.status)
    finally:
        stack.cache.resume()
        stack.durable.resume()
    stop.set()
    views.join()
    everything = [seconds for _, seconds in logged_in]
    # The first request of each web process to meet the hang waits its socket timeouts (0.25 s each, the
    # session's and the generations' Redis); every later one skips Redis until the background probe finds it
    # back. So the bound is on the requests after the first second.
    settled = [seconds for sent_at, seconds in logged_in if sent_at >= 1.0]
    print(
        f"[faults] Redis paused 10 s: {len(everything)} logged-in requests, p95 {ms(p95(everything))}, after the "
        f"first second p95 {ms(p95(settled))} (before the pause, built without the cache: {ms(p95(baseline))}), "
        f"max {ms(max(everything))}, "
        f"slowest {[round(x * 1000) for x in sorted(everything)[-6:]]} ms, statuses {sorted(set(statuses))}; "
        f"anonymous errors {views.failures} (load average {os.getloadavg()[0]:.1f})"  # type: ignore[attr-defined]
    )
    assert set(statuses) == {200} and views.failures == []  # type: ignore[attr-defined]
    # Before issue 12 every logged-in request waited 2-3 socket timeouts (0.55-0.83 s) during a pause.
    assert p95(settled) < latency_bound(0.1, baseline)
    assert statistics.median(everything) < max(0.25, 2 * statistics.median(baseline))
    assert max(everything) < 2.0
    counted = stack.wait_counted()
    print(f"[faults] after the pause: views sent {stack.sent}, counted {counted}")

    # The cache Redis killed and restarted empty: pages answer meanwhile, caching resumes by itself.
    stack.cache.kill()
    down = [stack.view(2) for _ in range(20)]
    stack.cache.start()
    assert {a.status for a in down} == {200}
    resumed = _wait(lambda: stack.view(2).headers.get("X-Cache") == "hit", 30, "caching resumed")
    print(
        f"[faults] cache Redis killed: 20/20 pages answered (max {ms(max(a.seconds for a in down))}); hits again {resumed:.1f} s after its restart"
    )
    stack.wait_counted()
    assert stack.pids() == before, "a process was restarted"


# --- 3. The durable Redis at its memory limit -------------------------------------------------------------


def test_the_durable_redis_at_its_memory_limit_refuses_writes_loudly_and_drops_nothing(stack: Stack):
    import redis

    before = stack.pids()

    durable, broker = stack.durable.client(), stack.durable.client(1)
    bindings = sorted(broker.keys("_kombu.binding.*"))
    assert bindings, "no broker bindings in the durable Redis"
    used = int(durable.info("memory")["used_memory"])
    durable.config_set("maxmemory", used + 2 * 1024 * 1024)
    filler = 0

    def fill() -> redis.ResponseError:
        nonlocal filler
        while True:
            try:
                durable.set(f"filler:{filler}", b"x" * 32_768)
                filler += 1
            except redis.ResponseError as exc:
                return exc

    try:
        refused = fill()
        # Pin it full: a flush deleting a claimed batch frees a little memory now and then.
        durable.config_set("maxmemory", int(durable.info("memory")["used_memory"]) - 256 * 1024)
        print(f"[faults] durable Redis full after {filler} filler keys: {str(refused)[:60]}...")
        ready = Browser(stack.base).get("/readyz")
        print(
            f"[faults] /readyz with the durable Redis full: {ready.status} {json.loads(ready.body)['warnings']}"
        )
        assert any("maxmemory" in w for w in json.loads(ready.body)["warnings"])
        answers = [stack.view(0) for _ in range(30)]
        assert {a.status for a in answers} == {200}
        with pytest.raises(redis.ResponseError, match="maxmemory"):  # redis-py's OutOfMemoryError
            broker.lpush("faults:probe", b"a write to the broker's database")  # refused loudly, never dropped
        assert sorted(broker.keys("_kombu.binding.*")) == bindings  # nothing evicted
    finally:
        for start in range(0, filler, 500):
            durable.delete(*[f"filler:{n}" for n in range(start, min(filler, start + 500))])
        durable.config_set("maxmemory", 0)
    counted = stack.wait_counted()
    print(f"[faults] durable Redis full: 30/30 pages answered, views sent {stack.sent}, counted {counted}")
    # Its acks were refused too (kombu's MULTI on a full server): the consumer reconnects, the worker stays up
    # (CELERY_BROKER_CHANNEL_ERROR_RETRY; without it the worker exited with "Unrecoverable error").
    assert stack.pids() == before, "a process exited or was restarted"


# --- 4. The worker killed mid-task --------------------------------------------------------------------------


def _kill_when_started(stack: Stack, name: str, seconds: float = 60) -> float:
    marker = stack.control / f"{name}.started"
    _wait(marker.exists, seconds, f"{name} to start in the worker")
    pid = int(marker.read_text())
    (stack.control / name).unlink()
    marker.unlink()
    psutil.Process(pid).kill()
    return time.monotonic()


def test_the_worker_killed_during_a_flush_and_during_a_render_loses_and_repeats_nothing(stack: Stack):
    (stack.control / "slow_flush").touch()
    for _ in range(25):
        assert stack.view(2).status == 200
    _kill_when_started(stack, "slow_flush")
    counted = stack.wait_counted(60)
    print(f"[faults] worker killed mid-flush: views sent {stack.sent}, counted {counted}")

    (stack.control / "slow_render").touch()
    published = json.loads(
        _run(["-m", "tests.faults.tool", "publish-with-thumbnail"], stack.tool_env).strip().splitlines()[-1]
    )
    killed_at = _kill_when_started(stack, "slow_render")

    def rendered() -> bool:
        rows = stack.pg.query(
            "SELECT thumbnail_derivatives FROM workbooks_workbook WHERE id = %s", (published["workbook"],)
        )
        return bool(rows and (rows[0][0] or {}).get("master") == published["master"])

    _wait(rendered, 60, "the killed render retried")
    retried = time.monotonic() - killed_at
    print(
        f"[faults] worker killed mid-render: rendered by the retry {retried:.1f} s later (the sweep runs every 300 s)"
    )
    assert retried < 60


# --- 5. PostgreSQL stopped for 30 s ----------------------------------------------------------------------


def test_postgresql_stopped_for_30_seconds_answers_fast_and_recovers_by_itself(stack: Stack):
    before = stack.pids()
    browser = Browser(stack.base)
    for index in range(3):
        assert stack.view(index).status == 200  # cached (and kept as stale copies for the outage)
    results: dict[str, list[Answer]] = {"cached": [], "healthz": [], "uncached": [], "readyz": []}
    stop = threading.Event()

    def loop(kind: str, request: Callable[[], Answer]) -> None:
        while not stop.is_set():
            try:
                results[kind].append(request())
            except OSError as exc:  # a timeout is a failure to answer: recorded as status 0
                results[kind].append(Answer(0, {}, str(exc), 20.0))

    loops = {
        "cached": lambda: stack.view(len(results["cached"]) % 3),
        "healthz": lambda: browser.get("/healthz"),
        "uncached": lambda: browser.get(f"/workbooks/?q={uuid.uuid4().hex[:8]}"),
        "readyz": lambda: browser.get("/readyz"),
    }

    def run_loops(seconds: float) -> None:
        stop.clear()
        threads = [threading.Thread(target=loop, args=(kind, fn), daemon=True) for kind, fn in loops.items()]
        started = time.monotonic()
        for t in threads:
            t.start()
        time.sleep(max(0.0, seconds - (time.monotonic() - started)))
        stop.set()
        for t in threads:
            t.join(timeout=30)

    # The same four request loops for 8 s with PostgreSQL up: the baseline on this machine, under this load.
    run_loops(8)
    baseline = {kind: [a.seconds for a in answers] for kind, answers in results.items()}
    assert all(a.status == 200 for answers in results.values() for a in answers)
    for answers in results.values():
        answers.clear()
    stack.pg.stop()
    run_loops(30)
    stack.pg.start()
    restarted_at = time.monotonic()
    for kind, answers in results.items():
        seconds = [a.seconds for a in answers]
        print(
            f"[faults] PostgreSQL down: {kind}: {len(answers)} requests, p95 {ms(p95(seconds))} (PostgreSQL up: "
            f"{ms(p95(baseline[kind]))}), max {ms(max(seconds))}, statuses {sorted({a.status for a in answers})} "
            f"(load average {os.getloadavg()[0]:.1f})"
        )
    not_ok = [(round(a.seconds * 1000), a.status) for a in results["cached"] if a.status != 200]
    assert not_ok == [], f"cached pages that did not answer 200: {not_ok[:10]}"
    assert {a.status for a in results["healthz"]} == {200}
    assert p95([a.seconds for a in results["cached"]]) < latency_bound(0.1, baseline["cached"])
    assert p95([a.seconds for a in results["healthz"]]) < latency_bound(0.1, baseline["healthz"])
    # Within 1 s (p95; none slower than 3 s on a loaded machine), where requests used to wait for the 60 s
    # pool timeout, holding the threads everything else queued behind.
    for kind in ("uncached", "readyz"):
        assert {a.status for a in results[kind]} == {503}
        seconds = [a.seconds for a in results[kind]]
        assert p95(seconds) < 1.0 and max(seconds) < 3.0
    assert all("Retry-After" in a.headers and "right back" in a.body for a in results["uncached"])
    assert all(json.loads(a.body)["failing"] == ["database"] for a in results["readyz"])
    stale = sum(1 for a in results["cached"] if a.headers.get("X-Cache") == "stale")
    print(
        f"[faults] PostgreSQL down: {stale} of {len(results['cached'])} cached-page answers were stale copies served after a failed rebuild"
    )

    recovered = _wait(
        lambda: browser.get(f"/workbooks/?q={uuid.uuid4().hex[:8]}").status == 200, 60, "pages recover"
    )
    ready = _wait(lambda: browser.get("/readyz").status == 200, 60, "/readyz recovers")
    print(
        f"[faults] PostgreSQL back: pages recovered {recovered:.1f} s and /readyz {ready:.1f} s after it restarted ({time.monotonic() - restarted_at:.1f} s)"
    )
    reader = login(stack)
    # Each gunicorn process reconnects on its own: the probes above may all have reached processes whose pool
    # was already back, while another one's pool still waits out psycopg_pool's reconnect backoff and answers
    # the 503 of an outage (seen once in CI, 2026-11-29). Bounded, not instant: within 30 s, and printed.
    logged_in = _wait(lambda: stack.view(1, reader).status == 200, 30, "a logged-in page recovers")
    print(
        f"[faults] PostgreSQL back: a logged-in page answered 200 within {logged_in:.1f} s of the first try"
    )
    assert stack.pids() == before, "a process was restarted"
    counted = stack.wait_counted(60)
    print(f"[faults] all faults: views sent {stack.sent}, counted {counted} (sent = counted)")
