"""Read replicas on a real streaming replica (issue 20, section 1).

The test makes its own PostgreSQL primary (initdb on a spare port, never the shared server), migrates and
seeds it, makes a hot standby of it with ``pg_basebackup -R``, and serves the site from two gunicorns with
``DATABASE_REPLICA_URLS`` pointing at the standby:

- "tolerant": REPLICA_MAX_LAG_SECONDS 30, so a standby whose replay is paused stays in use for the length
  of a test and really serves stale rows;
- "strict": REPLICA_MAX_LAG_SECONDS 2, to see a paused standby leave the rotation and come back.

Where the reads of a request ran is read from each server's own ``pg_stat_statements`` (calls of statements
that read the gallery's tables, before and after the request). Marked ``postgres`` and ``slow``: it runs in
the PostgreSQL suite and fails (never skips) when PostgreSQL's server binaries are missing. About 40 s.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

from deploy.pg_cluster import REPLICATION_SETTINGS, PostgresCluster, wait_caught_up
from tests.monitoring.helpers import GUNICORN_CONFIG, ROOT, free_port, scrape, stop_gracefully
from tests.replicas.tool import PASSWORD

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

# What the instances must take from the test, never from the caller's shell.
SITE_VARIABLES = (
    "DJANGO_ENV", "DEBUG", "DATABASE_URL", "DATABASE_REPLICA_URLS", "REDIS_URL", "REDIS_DURABLE_URL",
    "CELERY_BROKER_URL", "CELERY_TASK_ALWAYS_EAGER", "PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_WEB_MULTIPROC_DIR",
    "GUNICORN_BIND", "WEB_CONCURRENCY", "GUNICORN_THREADS", "REQUIRE_SERVICES", "CDN_PURGE_BACKEND",
    "DATABASE_POOLER", "DB_POOL_MIN_SIZE", "DB_POOL_MAX_SIZE", "DB_POOL_TIMEOUT",  # `make test-pgbouncer`'s
)  # fmt: skip
REPLICA = "replica_0"


# --- Where reads ran --------------------------------------------------------------------------------------


def gallery_reads(cluster: PostgresCluster, table: str = "workbooks_") -> int:
    """Statements executed on ``cluster`` that read a table whose name starts with ``table``."""
    rows = cluster.query(
        "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements "
        "WHERE query ILIKE 'select%%' AND query LIKE %s",
        (f'%"{table}%',),
    )
    return int(rows[0][0])


@dataclass
class Reads:
    primary: int
    replica: int


# --- A browser ----------------------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: str
    seconds: float


_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
PIN_COOKIE = "sigma_primary"


class Browser:
    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect)

    def request(self, method: str, path: str, data: dict | None = None) -> Answer:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(self.base + path, data=body, method=method)
        if body is not None:
            request.add_header("Content-Type", "application/x-www-form-urlencoded")
        started = time.perf_counter()
        try:
            with self.opener.open(request, timeout=30) as response:
                status, head, content = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, head, content = error.code, error.headers, error.read()
        return Answer(
            status, dict(head.items()), content.decode(errors="replace"), time.perf_counter() - started
        )

    def get(self, path: str) -> Answer:
        return self.request("GET", path)

    def post_form(self, path: str, data: dict, *, form: str | None = None) -> Answer:
        """POST ``data`` with the CSRF token of the form at ``form`` (default: ``path`` itself)."""
        page = self.get(form or path)
        token = _CSRF.search(page.body)
        assert token, f"no CSRF token at {form or path} ({page.status})"
        return self.request("POST", path, {**data, "csrfmiddlewaretoken": token.group(1)})

    def log_in(self, username: str) -> None:
        answer = self.post_form("/accounts/login/", {"username": username, "password": PASSWORD})
        assert answer.status == 302, f"log-in of {username}: {answer.status}"

    @property
    def pinned(self) -> bool:
        return any(cookie.name == PIN_COOKIE for cookie in self.jar)

    def forget_pin(self) -> None:
        """As if the pin had run out: this client wrote (logged in) long ago."""
        for cookie in list(self.jar):
            if cookie.name == PIN_COOKIE:
                self.jar.clear(cookie.domain, cookie.path, cookie.name)


# --- The stack --------------------------------------------------------------------------------------------


@dataclass
class Stack:
    primary: PostgresCluster
    standby: PostgresCluster
    tolerant: str
    strict: str
    workbooks: list[int]
    urls: list[str]

    def reads(self, table: str = "workbooks_") -> Reads:
        return Reads(gallery_reads(self.primary, table), gallery_reads(self.standby, table))

    def measure(self, act: Callable[[], Answer], table: str = "workbooks_") -> tuple[Answer, Reads]:
        """``act``'s answer, and how many gallery reads it made on the primary and on the standby."""
        before = self.reads(table)
        answer = act()
        after = self.reads(table)
        return answer, Reads(after.primary - before.primary, after.replica - before.replica)

    def pause_replay(self) -> None:
        self.standby.query("SELECT pg_wal_replay_pause()")
        _wait(
            lambda: self.standby.query("SELECT pg_get_wal_replay_pause_state()")[0][0] == "paused",
            10,
            "pause",
        )

    def resume_replay(self) -> None:
        self.standby.query("SELECT pg_wal_replay_resume()")


def _run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def _wait(check: Callable[[], bool], seconds: float, what: str) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, f"{what}: not within {seconds} s"
        time.sleep(0.1)
    return time.monotonic() - started


def _serve(name: str, env: dict[str, str], folder: Path) -> tuple[str, subprocess.Popen]:
    port = free_port()
    metrics = folder / f"prometheus-{name}"
    metrics.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONFIG), "sigma_playground.wsgi"],
        cwd=ROOT,
        env={**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "PROMETHEUS_MULTIPROC_DIR": str(metrics)},
        stdout=(folder / f"{name}.log").open("ab"),
        stderr=subprocess.STDOUT,
    )
    return f"http://127.0.0.1:{port}", process


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def stack():
    started = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="sigma-replicas-"))
    primary = PostgresCluster(
        settings={**REPLICATION_SETTINGS, "shared_preload_libraries": "pg_stat_statements"}
    )
    standby: PostgresCluster | None = None
    processes: list[subprocess.Popen] = []
    phases: list[str] = []

    def phase(name: str) -> None:
        phases.append(f"{name} {time.monotonic() - started:.1f}")

    try:
        primary.start()
        primary.create_database()
        primary.query("CREATE EXTENSION pg_stat_statements")
        base = {k: v for k, v in os.environ.items() if k not in SITE_VARIABLES}
        common = {
            **base,
            "DJANGO_ENV": "development",
            "DATABASE_URL": primary.url,
            "REDIS_URL": "",  # each instance's own local-memory cache; tasks run eagerly
            "MEDIA_ROOT": str(folder / "media"),
            "PRIVATE_MEDIA_ROOT": str(folder / "private_media"),
            "STATIC_ROOT": str(folder / "static"),
            "DB_POOL_MIN_SIZE": "1",
            "DB_POOL_MAX_SIZE": "4",
            "VIEW_COUNTING_ENABLED": "0",
            "PYTHONUNBUFFERED": "1",
        }
        phase("primary")
        _run(["manage.py", "migrate", "--no-input", "-v0"], common)
        phase("migrated")
        seeded = json.loads(_run(["-m", "tests.replicas.tool"], common).strip().splitlines()[-1])
        phase("seeded")
        standby = PostgresCluster.standby_of(primary)
        standby.start()
        wait_caught_up(primary, standby, seconds=30)
        phase("standby")
        assert standby.query("SELECT pg_is_in_recovery()")[0][0] is True
        site = {
            **common,
            "DATABASE_REPLICA_URLS": standby.url,
            "WEB_CONCURRENCY": "1",
            "GUNICORN_THREADS": "4",
            "REPLICA_CHECK_SECONDS": "0.5",
        }
        tolerant, process = _serve(
            "tolerant", {**site, "REPLICA_MAX_LAG_SECONDS": "30", "REPLICA_PIN_SECONDS": "31"}, folder
        )
        processes.append(process)
        strict, process = _serve(
            "strict", {**site, "REPLICA_MAX_LAG_SECONDS": "2", "REPLICA_PIN_SECONDS": "3"}, folder
        )
        processes.append(process)
        for base_url in (tolerant, strict):
            _wait(lambda base_url=base_url: _answers(base_url + "/healthz"), 60, f"gunicorn at {base_url}")
        phase("serving")
        built = Stack(primary, standby, tolerant, strict, seeded["workbooks"], seeded["urls"])
        for base_url in (tolerant, strict):  # the first measurement of the standby is made in the background
            _wait(
                lambda base_url=base_url: on_replica(built, base_url), 20, f"{base_url} reading the standby"
            )
        phase("reading the standby")
        print(
            f"\n[replicas] primary, standby and two instances up in {time.monotonic() - started:.1f} s "
            f"({', '.join(phases)}; load average {os.getloadavg()[0]:.1f})"
        )
        yield built
    finally:
        for process in processes:
            if process.poll() is None:
                stop_gracefully(process)
        for name in ("tolerant", "strict"):
            log = folder / f"{name}.log"
            if log.exists() and "Traceback" in log.read_text(errors="replace"):
                print(f"\n--- {name}.log ---\n{log.read_text(errors='replace')[-4000:]}")
        if standby is not None:
            standby.remove()
        primary.remove()
        shutil.rmtree(folder, ignore_errors=True)


def unique_search() -> str:
    return f"/workbooks/?q=w{uuid.uuid4().hex[:10]}"


def on_replica(stack: Stack, base: str) -> bool:
    """An anonymous search (a cache miss) read the standby and nothing on the primary."""
    answer, reads = stack.measure(lambda: Browser(base).get(unique_search()))
    assert answer.status == 200, answer.status
    return reads.replica > 0 and reads.primary == 0


# --- The tests ----------------------------------------------------------------------------------------------


def test_public_reads_run_on_the_replica_and_everything_else_on_the_primary(stack):
    detail = stack.urls[0]
    anonymous = Browser(stack.tolerant)
    for path in (unique_search(), "/", "/workbooks/?sort=popular", "/tags/finance/", "/users/ana/", detail,
                 "/feeds/newest/", "/users/ana/feed/", "/sitemap.xml"):  # fmt: skip
        answer, reads = stack.measure(lambda path=path: anonymous.get(path))
        assert answer.status == 200, (path, answer.status)
        assert reads.replica > 0 and reads.primary == 0, (path, reads)
    answer, reads = stack.measure(lambda: anonymous.get("/users/"), table="accounts_")
    assert answer.status == 200 and reads.replica > 0 and reads.primary == 0, reads

    reader = Browser(stack.tolerant)
    reader.log_in("bob")
    assert reader.pinned, "a log-in writes (the session, last_login): the client is pinned"
    reader.forget_pin()
    answer, reads = stack.measure(lambda: reader.get(stack.urls[1]))
    assert answer.status == 200 and reads.replica > 0 and reads.primary == 0, reads
    assert not reader.pinned, "a page that wrote nothing pins nobody"

    staff = Browser(stack.tolerant)
    staff.log_in("sam")
    staff.forget_pin()
    for path in (stack.urls[1], "/admin/workbooks/workbook/"):
        answer, reads = stack.measure(lambda path=path: staff.get(path))
        assert answer.status == 200 and reads.primary > 0 and reads.replica == 0, (path, reads)

    # A POST writes on the primary and pins its client; the next page of theirs reads the primary.
    reader.forget_pin()
    favorite = f"/workbooks/{stack.workbooks[2]}/favorite/"
    answer = reader.post_form(favorite, {}, form=stack.urls[2])
    assert answer.status in (200, 302) and reader.pinned, answer.status
    answer, reads = stack.measure(lambda: reader.get(stack.urls[2]))
    assert answer.status == 200 and reads.primary > 0 and reads.replica == 0, reads

    # The standby's own view: the instance's connections to it are named after the alias.
    names = {row[0] for row in stack.standby.query("SELECT application_name FROM pg_stat_activity")}
    assert f"sigma_playground:{REPLICA}" in names, names


def test_a_writer_sees_the_write_at_once_and_no_page_is_rebuilt_from_a_replica_behind_it(stack):
    """Replay paused: the standby stays in use (tolerant instance) but misses every write from now on."""
    detail = stack.urls[0]
    ana, ana_elsewhere = Browser(stack.tolerant), Browser(stack.tolerant)
    ana.log_in("ana")
    ana_elsewhere.log_in("ana")
    for browser in (ana, ana_elsewhere):
        browser.forget_pin()
        assert 'class="bell-count"' in browser.get("/").body, "bob's follow: one unread notification"
    assert Browser(stack.tolerant).get(detail).status == 200  # the anonymous page is in the cache
    stack.pause_replay()
    try:
        # Reading the notifications marks them read: a GET that writes pins its client.
        assert ana.get("/notifications/").status == 200 and ana.pinned
        answer, reads = stack.measure(lambda: ana.get("/tags/"), table="notifications_")
        assert 'class="bell-count"' not in answer.body, "the pinned client reads the primary"
        assert reads.primary > 0 and reads.replica == 0, reads
        # The same person in another browser, not pinned, reads the standby: still unread there.
        answer, reads = stack.measure(lambda: ana_elsewhere.get("/tags/"), table="notifications_")
        assert 'class="bell-count"' in answer.body and reads.replica > 0 and reads.primary == 0, reads

        title = f"Renamed {uuid.uuid4().hex[:8]}"
        edited = ana.post_form(
            f"/workbooks/{stack.workbooks[0]}/edit/",
            {
                "title": title,
                "description": "",
                "sigma_embed_url": "https://app.sigmacomputing.com/embed/1-Replica0",
                "tags": "finance",
                "visibility": "public",
                "publish": "on",
            },
        )
        assert edited.status == 302, edited.body[-2000:]
        (new_path,) = [edited.headers["Location"]]
        answer, reads = stack.measure(lambda: ana.get(new_path))
        assert title in answer.body and reads.replica == 0, reads

        # Not the author, not pinned: the page's namespaces changed after what the standby has, so the rebuilt
        # page (stored under the new generation) and a logged-in reader's page both read the primary.
        answer, reads = stack.measure(lambda: Browser(stack.tolerant).get(new_path))
        assert answer.status == 200 and title in answer.body, "a rebuilt page holds the standby's old row"
        assert answer.headers.get("X-Cache") != "hit" and reads.primary > 0 and reads.replica == 0, reads
        again = Browser(stack.tolerant).get(new_path)
        assert again.headers.get("X-Cache") == "hit" and title in again.body
        answer, reads = stack.measure(lambda: ana_elsewhere.get(new_path))
        assert title in answer.body and reads.replica == 0, reads
        # ...while the standby really is behind.
        old = stack.standby.query("SELECT title FROM workbooks_workbook WHERE id = %s", (stack.workbooks[0],))
        assert old[0][0] != title
    finally:
        stack.resume_replay()
    # Once an instance has measured the standby past the edit, the pages that show it read the standby again.
    _wait(lambda: on_replica(stack, stack.tolerant), 30, "the list pages back on the standby")


def test_a_replica_lagging_beyond_the_bound_is_skipped_until_it_catches_up(stack):
    for base in (stack.strict, stack.tolerant):
        _wait(lambda base=base: on_replica(stack, base), 30, f"{base} reading the standby")
    stack.pause_replay()
    try:
        stack.primary.query("UPDATE accounts_user SET bio = %s WHERE username = 'bob'", (uuid.uuid4().hex,))
        waited = _wait(lambda: _lag_warning(stack.strict), 20, "the strict instance noticing the lag")
        print(f"\n[replicas] replay paused: the 2 s bound was noticed {waited:.1f} s after the write")
        answer, reads = stack.measure(lambda: Browser(stack.strict).get(unique_search()))
        assert answer.status == 200 and reads.primary > 0 and reads.replica == 0, reads
        # The gauges are published by the measuring thread, every REPLICA_CHECK_SECONDS (0.5 s).
        _wait(lambda: _metric(stack.strict, "sigma_db_replica_lag_seconds") > 2, 5, "the lag gauge")
        assert _metric(stack.strict, "sigma_db_replica_up") == 0
        assert on_replica(stack, stack.tolerant), (
            f"within the tolerant instance's 30 s it is still in use: {explain(stack.tolerant)}"
        )
    finally:
        stack.resume_replay()
    back = _wait(lambda: on_replica(stack, stack.strict), 20, "the strict instance back on the standby")
    print(f"[replicas] replay resumed: reads back on the standby after {back:.1f} s")
    _wait(lambda: _metric(stack.strict, "sigma_db_replica_up") == 1, 5, "the up gauge")


def test_a_stopped_replica_costs_readers_a_bounded_delay_and_comes_back(stack):
    baseline = []
    for _ in range(5):
        answer, reads = stack.measure(lambda: Browser(stack.tolerant).get(unique_search()))
        assert answer.status == 200 and reads.replica > 0
        baseline.append(answer.seconds)
    stack.standby.stop()
    try:
        during = []
        for _ in range(10):
            before = gallery_reads(stack.primary)
            answer = Browser(stack.tolerant).get(unique_search())
            assert answer.status == 200, answer.status
            assert gallery_reads(stack.primary) > before
            during.append(answer.seconds)
        # REPLICA_CONNECT_WAIT_SECONDS (0.5 s) is what a request may spend on the replica before it gives up;
        # the rest is the page itself, measured just before.
        bound = 0.5 + 1.0 + 2 * max(baseline)
        print(
            f"\n[replicas] standby stopped: slowest read {max(during) * 1000:.0f} ms, first "
            f"{during[0] * 1000:.0f} ms, then p50 {sorted(during)[5] * 1000:.0f} ms "
            f"(before: slowest {max(baseline) * 1000:.0f} ms; bound {bound * 1000:.0f} ms)"
        )
        assert max(during) <= bound
        ready = Browser(stack.tolerant).get("/readyz")
        body = json.loads(ready.body)
        assert ready.status == 200 and body["status"] == "ok", body
        assert any(REPLICA in warning for warning in body["warnings"]), body
    finally:
        stack.standby.start()
    back = _wait(lambda: on_replica(stack, stack.tolerant), 30, "reads back on the restarted standby")
    print(f"[replicas] standby restarted: reads back on it after {back:.1f} s")


def explain(base: str) -> str:
    """An instance's view of the standby: /readyz warnings and where its public reads went, and why."""
    warnings = json.loads(Browser(base).get("/readyz").body).get("warnings")
    samples = scrape(Browser(base).get("/metrics").body)
    routed = {
        f"{s.labels['target']}/{s.labels['reason']}": s.value
        for s in samples.get("sigma_db_public_reads_total", [])
        if s.value
    }
    lag = [s.value for s in samples.get("sigma_db_replica_lag_seconds", [])]
    return f"warnings {warnings}, public reads {routed}, lag {lag}"


def _lag_warning(base: str) -> bool:
    body = json.loads(Browser(base).get("/readyz").body)
    return any(REPLICA in warning and "behind" in warning for warning in body.get("warnings", []))


def _metric(base: str, name: str) -> float:
    samples = scrape(Browser(base).get("/metrics").body)
    values = [s.value for s in samples.get(name, []) if s.labels.get("replica") == REPLICA]
    assert values, f"{name} has no sample for {REPLICA}"
    return max(values)
