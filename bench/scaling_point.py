"""``python -m bench.scaling_point``: the measured point of docs/scaling.md's model.

Not a test (about 7 minutes; every figure is CPU time, so run it on a quiet machine). It

1. starts a private redis-server and ``make stack`` with ``WEB_INSTANCES=2 REPLICAS=1`` (deploy/stack.py: its
   own PostgreSQL primary, migrated and seeded with ``STACK_SEED_WORKBOOKS`` more workbooks, a
   ``pg_basebackup -R`` replica, two gunicorns, nginx, Varnish, a Celery worker and beat) on free ports, and
   creates the load-test users;
2. measures the idle background (``--idle`` seconds), then each request kind's unit cost, one request at a time:
   a CDN hit (``cdn_pass``: Varnish's cost, which every request pays), a detail page's view answered from the
   origin's page cache (``detail_hit``: the CDN keeps no detail page, s-maxage=0), a page built from the database
   (``build_detail``, ``build_list``, ``build_tag``, ``build_profile``, ``build_search``: anonymous pages nobody
   asked for before, through nginx), a detail page's view that counts (``view_counted``: a cached detail page
   viewed from a loopback address of its own, less a ``detail_hit``, whose views were all seen before; a
   ``build_detail``'s view counts, so it is given less one ``view_counted``),
   a sign-in (``login``: the form and its POST), a logged-in page (``member_page``) and a publish (the form,
   its POST and the Celery tasks it queues);
3. runs ``make loadtest LOADTEST_SCENARIOS=mixed`` (the gallery's mix, ``--phases mixed:<s>:<rate>``)
   through the CDN tier;
4. writes everything to ``--out`` (``bench/scaling_point.json`` by default: what ``python -m
   bench.scaling_model`` reads) and prints the model's prediction of that run against what was measured.

Every measurement is the difference of counters read before and after, less the idle background for the same
time: CPU time per tier from /proc (each tier's process trees; PostgreSQL's postmaster includes the backends
that exited), statements per cluster from ``pg_stat_statements`` (statements on the application's tables:
not the replica monitor's or these reads), Redis's ``total_commands_processed`` (the private server: nobody
else's commands), Varnish's counters (``varnishstat``) and the page cache's misses (``/metrics`` of both
instances).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gzip
import http.client
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import django
import psutil
import psycopg
import redis
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import scaling_model
from deploy import edge
from loadtest.mix import CATALOGUE_LISTS, LOGGED_IN_WEIGHTS, SORTS
from loadtest.mix import Catalogue as Pages

ROOT = edge.ROOT
PY = sys.executable
# Statements on the application's tables (every app's table prefix): not the replica monitor's
# pg_current_wal_insert_lsn() / pg_is_in_recovery(), nor this script's own reads of pg_stat_statements.
APP_STATEMENT = r"\m(workbooks|accounts|notifications|monitoring|django|auth|axes)_[a-z]"
CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
VIEW_FLUSH_SECONDS = 5  # settings' default: counted views reach the database this often
VIEW_DEDUP_SECONDS = 30 * 60  # settings' default: a visitor's views of a workbook count once per window


def say(message: str) -> None:
    print(f"[point] {message}", flush=True)


# --- Processes ------------------------------------------------------------------------------------------------


def spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(  # noqa: S603 (argv built here)
        argv, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )


def stop(process: subprocess.Popen, *, timeout: float = 120) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@dataclass
class Stack:
    process: subprocess.Popen
    redis_process: subprocess.Popen
    run_dir: Path
    cdn: str
    nginx: str
    gunicorns: list[str]
    primary: str
    replica: str
    redis_url: str


def start(folder: Path, *, workbooks: int) -> Stack:
    redis_port = edge.free_port()
    redis_process = spawn(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder)],
        dict(os.environ),
        folder / "redis.log",
    )  # fmt: skip
    client = redis.Redis(port=redis_port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    gunicorn_port, pg_port = edge.free_ports(2), edge.free_ports(2)
    ports = {
        "STACK_CDN_PORT": edge.free_port(),
        "STACK_NGINX_PORT": edge.free_port(),
        "STACK_GUNICORN_PORT": gunicorn_port,
        "CELERY_METRICS_PORT": edge.free_port(),
        "STACK_PG_PORT": pg_port,
    }
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    run_dir = folder / "stack"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DB_POOL", "PROMETHEUS_"))},
        **{k: str(v) for k, v in ports.items()},
        "REDIS_URL": redis_url,
        "REDIS_DURABLE_URL": "",
        "WEB_INSTANCES": "2",
        "REPLICAS": "1",
        "STACK_SEED_WORKBOOKS": str(workbooks),
        "STACK_RUN_DIR": str(run_dir),
        "DJANGO_ENV": "development",
        # docs/operations.md: gunicorn's 2 threads per worker need 3 connections at most, Celery's children 1.
        "DB_POOL_MIN_SIZE": "1",
        "DB_POOL_MAX_SIZE": "3",
        "MEDIA_ROOT": str(folder / "media"),
        "PRIVATE_MEDIA_ROOT": str(folder / "private_media"),
        # The beat's cache warming and trending run at its start and then every 5 and 10 minutes: an hour
        # here, so neither lands in a measurement (the minute tasks are in the idle background).
        "CACHE_WARM_SECONDS": "3600",
        "TRENDING_REFRESH_SECONDS": "3600",
        # The embed link checker asks app.sigmacomputing.com about every workbook of a new database: off (no
        # request leaves this machine, and its one-off discovery is not the site's steady background).
        "EMBED_CHECK_BATCH_SIZE": "0",
        "EMBED_CHECK_DISCOVER": "0",
    }
    say(f"make stack WEB_INSTANCES=2 REPLICAS=1 STACK_SEED_WORKBOOKS={workbooks}: log {folder / 'stack.log'}")
    process = spawn([PY, "deploy/stack.py"], env, folder / "stack.log")
    cdn = f"http://127.0.0.1:{ports['STACK_CDN_PORT']}"
    try:
        edge.wait_for_port(ports["STACK_CDN_PORT"], process, "make stack", seconds=900)
        _wait(lambda: edge.http_get(cdn + "/healthz")[0] == 200, 120, "the site through the CDN")
    except BaseException:
        stop(process)
        stop(redis_process)
        print((folder / "stack.log").read_text(errors="replace")[-4000:])
        raise
    databases = json.loads((run_dir / "databases.json").read_text())
    return Stack(
        process=process,
        redis_process=redis_process,
        run_dir=run_dir,
        cdn=cdn,
        nginx=f"http://127.0.0.1:{ports['STACK_NGINX_PORT']}",
        gunicorns=[f"http://127.0.0.1:{gunicorn_port + i}" for i in range(2)],
        primary=databases["primary"],
        replica=databases["replicas"][0],
        redis_url=redis_url,
    )


def _wait(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while True:
        with contextlib.suppress(OSError):
            if check():
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {seconds:.0f} s")
        time.sleep(0.2)


# --- Counters -------------------------------------------------------------------------------------------------


class CpuTiers:
    """CPU seconds so far of each tier's process trees, from /proc. A root's own time includes its reaped
    children (``children_user``/``children_system``): PostgreSQL backends and parallel workers that exited,
    gunicorn and Celery children that were replaced."""

    def __init__(self, stack: Stack) -> None:
        self.roots: dict[str, list[int]] = {tier: [] for tier in scaling_model.TIERS}
        for child in psutil.Process(stack.process.pid).children():
            line = " ".join(child.cmdline())
            if "varnishd" in line:
                self.roots["cdn"].append(child.pid)
            elif "nginx" in line:
                self.roots["proxy"].append(child.pid)
            elif "gunicorn" in line:
                self.roots["web"].append(child.pid)
            elif "celery" in line:
                self.roots["worker"].append(child.pid)  # the worker and beat
        for tier, url in (("primary", stack.primary), ("replica", stack.replica)):
            with psycopg.connect(url, autocommit=True) as conn:
                data = conn.execute("SHOW data_directory").fetchone()[0]
            self.roots[tier].append(int(Path(data, "postmaster.pid").read_text().split()[0]))
        self.roots["redis"].append(stack.redis_process.pid)
        missing = [tier for tier, pids in self.roots.items() if not pids]
        if missing:
            raise RuntimeError(f"no process found for {missing}")

    def read(self) -> dict[str, float]:
        totals = {}
        for tier, roots in self.roots.items():
            total = 0.0
            for root in roots:
                with contextlib.suppress(psutil.NoSuchProcess):
                    process = psutil.Process(root)
                    times = process.cpu_times()
                    total += times.user + times.system + times.children_user + times.children_system
                    for child in process.children(recursive=True):
                        with contextlib.suppress(psutil.NoSuchProcess):
                            own = child.cpu_times()
                            total += own.user + own.system
            totals[tier] = total
        return totals


def statements(url: str) -> int:
    with psycopg.connect(url, connect_timeout=5, autocommit=True) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements WHERE query ~ %s",
            (APP_STATEMENT,),
        ).fetchone()
    return int(row[0])


def varnish(stack: Stack) -> dict[str, float]:
    out = subprocess.run(  # noqa: S603 (fixed argv)
        ["/usr/bin/varnishstat", "-n", str(stack.run_dir / "varnish" / "varnish"), "-1", "-j"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    counters = json.loads(out)
    counters = counters.get("counters", counters)
    names = (
        "MAIN.client_req",
        "MAIN.cache_hit",
        "MAIN.cache_miss",
        "MAIN.backend_req",
        "MAIN.s_resp_bodybytes",
    )
    return {name.split(".", 1)[1]: float(counters[name]["value"]) for name in names}


def page_cache(stack: Stack) -> dict[str, float]:
    """The page cache's hits and misses and where built public pages read, summed over both instances."""
    out: Counter[str] = Counter()
    for base in stack.gunicorns:
        text = edge.http_get(base + "/metrics", timeout=30)[2].decode()
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == "sigma_cache_requests_total" and s.labels.get("kind") == "page":
                    out[f"page_{s.labels['result']}"] += s.value
                elif s.name == "sigma_views_total":
                    out[f"views_{s.labels['path']}"] += s.value
                elif s.name == "sigma_db_public_reads_total":
                    out[f"reads_{s.labels['target']}_{s.labels['reason']}"] += s.value
    return dict(out)


@dataclass
class Snapshot:
    at: float
    wall: float
    cpu: dict[str, float]
    primary: int
    replica: int
    redis: int
    varnish: dict[str, float]
    pages: dict[str, float]


@dataclass
class Counters:
    stack: Stack
    cpu: CpuTiers
    # Per second with no traffic: cores per tier, and "statements_primary", "statements_replica", "redis_commands".
    background: dict[str, float] = field(default_factory=dict)

    def snapshot(self, *, starting: bool) -> Snapshot:
        """Every counter. The reads themselves cost the servers something (a /metrics scrape asks the broker for
        queue lengths): a window's first snapshot reads CPU last, its last one first, so the reads fall outside."""

        def rest() -> tuple:
            cache = varnish(self.stack)
            primary, replica = statements(self.stack.primary), statements(self.stack.replica)
            commands = int(
                redis.Redis.from_url(self.stack.redis_url).info("stats")["total_commands_processed"]
            )
            return primary, replica, commands, cache

        if starting:
            pages = page_cache(self.stack)
            primary, replica, commands, cache = rest()
            at, wall, cpu = time.monotonic(), time.time(), self.cpu.read()
        else:
            at, wall, cpu = time.monotonic(), time.time(), self.cpu.read()
            primary, replica, commands, cache = rest()
            pages = page_cache(self.stack)
        return Snapshot(at, wall, cpu, primary, replica, commands, cache, pages)

    def between(self, before: Snapshot, after: Snapshot, *, subtract: bool = True) -> dict:
        """Differences over the window; with ``subtract``, less the idle background for as long."""
        seconds = after.at - before.at
        idle = dict.fromkeys(
            (*scaling_model.TIERS, "statements_primary", "statements_replica", "redis_commands"), 0.0
        )
        if subtract:
            idle.update({k: v * seconds for k, v in self.background.items()})
        return {
            "seconds": seconds,
            "cpu": {t: after.cpu[t] - before.cpu[t] - idle[t] for t in scaling_model.TIERS},
            "statements_primary": after.primary - before.primary - idle["statements_primary"],
            "statements_replica": after.replica - before.replica - idle["statements_replica"],
            # Each snapshot sends one INFO of its own.
            "redis_commands": after.redis - before.redis - 1 - idle["redis_commands"],
            "varnish": {k: after.varnish[k] - before.varnish[k] for k in after.varnish},
            "pages": {k: after.pages.get(k, 0.0) - before.pages.get(k, 0.0) for k in after.pages},
        }

    @contextlib.contextmanager
    def window(self, into: dict, *, subtract: bool = True, settle: bool = True) -> Iterator[None]:
        """Counters over the block; with ``settle``, also over the work it left behind: the Celery tasks it
        queued and the next flush of the views it counted (VIEW_FLUSH_SECONDS)."""
        before = self.snapshot(starting=True)
        yield
        if settle:
            drain(self.stack)
            time.sleep(VIEW_FLUSH_SECONDS + 1)
        into.update(self.between(before, self.snapshot(starting=False), subtract=subtract))


# --- Clients --------------------------------------------------------------------------------------------------


class Client:
    """One keep-alive connection with a cookie jar: requests one at a time, as a browser would."""

    def __init__(self, base: str, *, source: str | None = None) -> None:
        parts = urllib.parse.urlsplit(base)
        self.host, self.port = parts.hostname, parts.port
        self.source = (source, 0) if source else None  # a loopback address of its own: another visitor
        self.connection = self._connect()
        self.cookies: dict[str, str] = {}

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=30, source_address=self.source)

    def request(self, method: str, path: str, *, data: dict | None = None, headers: dict | None = None):
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        sent = {"Accept-Encoding": "gzip", **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body is not None:
            sent["Content-Type"] = "application/x-www-form-urlencoded"
            sent["Referer"] = f"http://{self.host}:{self.port}{path}"
        for attempt in range(2):
            try:
                self.connection.request(method, path, body=body, headers=sent)
                response = self.connection.getresponse()
                content = response.read()
                break
            except (http.client.HTTPException, OSError):
                self.connection.close()
                self.connection = self._connect()
                if attempt:
                    raise
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
        headers = {k.lower(): v for k, v in response.getheaders()}
        if headers.get("content-encoding") == "gzip":
            content = gzip.decompress(content)
        return response.status, headers, content

    def form_token(self, path: str) -> str:
        status, _, body = self.request("GET", path)
        found = CSRF_RE.search(body.decode(errors="replace"))
        if status != 200 or not found:
            raise RuntimeError(f"no form at {path}: {status}")
        return found.group(1)

    def log_in(self, username: str, password: str) -> None:
        token = self.form_token("/accounts/login/")
        status, _, _ = self.request(
            "POST",
            "/accounts/login/",
            data={"csrfmiddlewaretoken": token, "username": username, "password": password},
        )
        if status != 302:
            raise RuntimeError(f"log-in of {username}: {status}")

    def close(self) -> None:
        self.connection.close()


def expect(status: int, wanted: tuple[int, ...], what: str) -> None:
    if status not in wanted:
        raise RuntimeError(f"{what}: {status}, expected {wanted}")


# --- Pages ----------------------------------------------------------------------------------------------------


def read_catalogue(base: str) -> Pages:
    """The load test's pages, read as its driver reads them (loadtest.driver.read_catalogue)."""
    catalogue = Pages()
    for path in CATALOGUE_LISTS:
        catalogue.add_from(edge.http_get(base + path, timeout=60)[2].decode())
    return catalogue


def catalogue_sizes(catalogue: Pages) -> dict[str, int]:
    return {
        "details": len(catalogue.details),
        "tags": len(catalogue.tags),
        "profiles": len(catalogue.profiles),
    }


BUILD_SHARES = {"detail": 0.4, "list": 0.2, "tag": 0.15, "profile": 0.15, "search": 0.1}


def fresh_pages(stack: Stack, catalogue: Pages, count: int, rng: random.Random) -> dict[str, list[str]]:
    """Anonymous public pages nobody has asked for, per page class (``count`` in all, ``BUILD_SHARES``): other
    workbooks' detail pages, other people's profiles, tag pages in the sorts the load test never asks for, the
    lists filtered by a tag (the default page size, as the load test's lists; home is built as one), searches
    for a word of the index each."""
    with psycopg.connect(stack.primary, autocommit=True) as conn:
        workbooks = conn.execute(
            "SELECT id, slug FROM workbooks_workbook WHERE visibility = 'public' AND published_at IS NOT NULL "
            "ORDER BY random() LIMIT %s",
            (count,),
        ).fetchall()
        users = [
            r[0]
            for r in conn.execute(
                "SELECT username FROM accounts_user WHERE is_active ORDER BY random() LIMIT %s", (count,)
            )
        ]
        tags = [
            r[0]
            for r in conn.execute(
                "SELECT t.slug FROM workbooks_tag t WHERE EXISTS (SELECT 1 FROM workbooks_workbooktag wt "
                "WHERE wt.tag_id = t.id) ORDER BY random()"
            )
        ]
        words = [
            r[0]
            for r in conn.execute(
                "SELECT word FROM workbooks_searchlexeme WHERE length(word) > 4 ORDER BY random() LIMIT %s",
                (count,),
            )
        ]
    seen = set(catalogue.details) | set(catalogue.profiles)
    pools = {
        "detail": [f"/workbooks/{pk}/{slug}/" for pk, slug in workbooks],
        "list": [f"/workbooks/?sort={s}&tag={t}" for t in tags for s in SORTS],
        "tag": [f"/tags/{t}/?sort={s}" for t in tags for s in SORTS[1:]],
        "profile": [f"/users/{u}/" for u in users],
        "search": [f"/workbooks/?q={w}" for w in words],
    }
    pages = {}
    for name, share in BUILD_SHARES.items():
        pool = [p for p in pools[name] if p not in seen]
        rng.shuffle(pool)
        pages[name] = pool[: max(1, round(count * share))]
    return pages


# --- The unit costs -------------------------------------------------------------------------------------------


def per_unit(measured: dict, units: int) -> dict:
    primary, replica = max(0.0, measured["statements_primary"]), max(0.0, measured["statements_replica"])
    return {
        "cpu": {t: max(0.0, v) / units for t, v in measured["cpu"].items()},
        "statements": (primary + replica) / units,
        "statements_replica": replica / units,
        "redis": max(0.0, measured["redis_commands"]) / units,
        "units": units,
        "seconds": measured["seconds"],
        "page_misses": measured["pages"].get("page_miss", 0.0),
        "cdn_hits": measured["varnish"].get("cache_hit", 0.0),
    }


def less(cost: dict, other: dict) -> dict:
    """``cost`` less ``other``, per unit (CPU per tier, statements, Redis commands), not below zero."""
    out = dict(cost)
    out["cpu"] = {t: max(0.0, v - other["cpu"].get(t, 0.0)) for t, v in cost["cpu"].items()}
    for key in ("statements", "statements_replica", "redis"):
        out[key] = max(0.0, cost[key] - other[key])
    return out


FIELDS = ("statements", "statements_replica", "redis")
ZERO = {"cpu": {}, "statements": 0.0, "statements_replica": 0.0, "redis": 0.0}


def combine(*terms: tuple[float, dict]) -> dict:
    """The sum of coefficient x cost over ``terms``, field by field (CPU per tier, statements, Redis)."""
    out = dict(terms[0][1])
    out["cpu"] = {t: sum(c * cost["cpu"].get(t, 0.0) for c, cost in terms) for t in terms[0][1]["cpu"]}
    for key in FIELDS:
        out[key] = sum(c * cost[key] for c, cost in terms)
    return out


def hit_and_view(hit: dict, first: dict, build: dict, n_hits: int, n_firsts: int) -> tuple[dict, dict]:
    """A detail hit's cost ``H`` and a counted view's ``V`` from two windows of cached detail pages: ``hit``
    (views seen before) and ``first`` (every view its visitor's first), per request, with ``build`` a detail
    page built with its view counted (``B``). A few pages of each window were rebuilt (``page_misses``; the
    page cache's misses, whatever made them): a miss of a seen view costs ``B - V``, of a first view ``B``.
    So with f the windows' shares of misses, ``first = (1 - f_c)(H + V) + f_c B`` and
    ``hit = (1 - f_h) H + f_h (B - V)``: ``H + V = (first - f_c B) / (1 - f_c)``, ``H = hit - f_h (B - (H + V))``.
    """
    f_h, f_c = hit["page_misses"] / n_hits, first["page_misses"] / n_firsts
    both = combine((1 / (1 - f_c), first), (-f_c / (1 - f_c), build))
    h = combine((1.0, hit), (-f_h, build), (f_h, both))
    v = combine((1.0, both), (-1.0, h))
    h, v = (less(combine((1.0, cost)), ZERO) for cost in (h, v))  # not below zero
    h["units"], v["units"] = n_hits, n_firsts
    h["page_misses"], v["page_misses"] = hit["page_misses"], first["page_misses"]
    h["seconds"], v["seconds"] = hit["seconds"], first["seconds"]
    return h, v


def unit_costs(counters: Counters, stack: Stack, catalogue: Pages, args, rng: random.Random) -> dict:
    costs: dict[str, dict] = {}
    lists = ["/", *(f"/workbooks/?sort={s}" for s in SORTS)]
    client = Client(stack.cdn)
    for path in lists:  # the CDN keeps these now
        for _ in range(2):
            status, _, _ = client.request("GET", path)
    expect(status, (200,), "warm CDN page")
    measured: dict = {}
    with counters.window(measured):
        for i in range(args.cdn_hits):
            status, _, _ = client.request("GET", lists[i % len(lists)])
            expect(status, (200,), "CDN hit")
    if measured["varnish"]["cache_hit"] < 0.99 * args.cdn_hits:
        raise RuntimeError(f"CDN hits: {measured['varnish']} for {args.cdn_hits} requests")
    costs["cdn_pass"] = per_unit(measured, args.cdn_hits)
    costs["cdn_pass"]["response_bytes"] = measured["varnish"]["s_resp_bodybytes"] / args.cdn_hits
    client.close()
    say(f"cdn_pass: {1000 * costs['cdn_pass']['cpu']['cdn']:.3f} ms of Varnish per request")

    for name, paths in fresh_pages(stack, catalogue, args.builds, rng).items():
        measured = {}
        with counters.window(measured):
            client = Client(stack.nginx)
            for path in paths:
                status, _, _ = client.request("GET", path)
                expect(status, (200,), f"build of {path}")
            client.close()
        misses = measured["pages"].get("page_miss", 0)
        if misses < 0.95 * len(paths):
            raise RuntimeError(f"{name}: {misses:.0f} page-cache misses for {len(paths)} fresh pages")
        kind = f"build_{name}"
        costs[kind] = per_unit(measured, len(paths))
        say(
            f"{kind}: {1000 * costs[kind]['cpu']['web']:.1f} ms of gunicorn, {costs[kind]['statements']:.1f} "
            f"statements ({costs[kind]['statements_replica']:.1f} on the replica) a page, {len(paths)} pages"
        )

    # A detail page's view: the CDN keeps none (s-maxage=0) and fetches each from the origin, which answers
    # from its page cache (a 200 with the body: the CDN's conditional fetch gets no 304 here) and counts it.
    # The warm pass's views are 127.0.0.1's first: their delivery and flush pass before the window opens.
    client = Client(stack.nginx)
    for path in catalogue.details:
        status, _, _ = client.request("GET", path)
        expect(status, (200,), "detail page")
    seen_window = int(time.time() // VIEW_DEDUP_SECONDS)  # 127.0.0.1 has now viewed every catalogue page
    time.sleep(VIEW_FLUSH_SECONDS + 1)
    hits: dict = {}
    with counters.window(hits):
        for i in range(args.detail_hits):
            status, _, _ = client.request("GET", catalogue.details[i % len(catalogue.details)])
            expect(status, (200,), "detail page")
    client.close()

    # The same cached pages, each from a loopback address nobody used: every view is its visitor's first, so
    # it is delivered to Redis by its process (alone in its process's batch, one request at a time, as views
    # mostly are in the run) and flushed to the database.
    firsts: dict = {}
    with counters.window(firsts):
        for i in range(args.counted_views):
            visitor = Client(stack.nginx, source=f"127.1.{i // 250}.{i % 250 + 1}")
            status, _, _ = visitor.request("GET", catalogue.details[i % len(catalogue.details)])
            expect(status, (200,), "detail page, new visitor")
            visitor.close()
    counted = firsts["pages"].get("views_buffered", 0.0)
    if counted < 0.99 * args.counted_views:
        raise RuntimeError(f"{counted:.0f} views counted of {args.counted_views} first views")
    for what, window, n in (
        ("detail hits", hits, args.detail_hits),
        ("first views", firsts, args.counted_views),
    ):
        if window["pages"].get("page_miss", 0) > 0.05 * n:
            raise RuntimeError(f"{what}: pages were built, not hits: {window['pages']}")
    hit, first = per_unit(hits, args.detail_hits), per_unit(firsts, args.counted_views)
    costs["detail_hit"], costs["view_counted"] = hit_and_view(
        hit, first, costs["build_detail"], args.detail_hits, args.counted_views
    )
    say(f"detail_hit: {1000 * costs['detail_hit']['cpu']['web']:.2f} ms of gunicorn per request")
    say(
        f"view_counted: {costs['view_counted']['redis']:.1f} Redis commands, "
        f"{costs['view_counted']['statements']:.2f} statements, "
        f"{1000 * costs['view_counted']['cpu']['primary']:.2f} ms of the primary a view"
    )
    # Every page built above was a first view of its workbook (by 127.0.0.1): a build less its counting.
    costs["build_detail"]["with_its_view_counted"] = {
        k: costs["build_detail"][k] for k in ("cpu", "statements", "statements_replica", "redis")
    }
    costs["build_detail"] = less(costs["build_detail"], costs["view_counted"])

    from accounts import loadtest

    members = [Client(stack.nginx) for _ in range(args.logins)]
    measured = {}
    with counters.window(measured):
        for i, member in enumerate(members):
            member.log_in(loadtest.username(i), loadtest.PASSWORD)
    costs["login"] = per_unit(measured, args.logins)
    say(f"login: {1000 * costs['login']['cpu']['web']:.1f} ms of gunicorn (form and POST)")

    kinds = list(LOGGED_IN_WEIGHTS)
    views = 0
    measured = {}
    with counters.window(measured):
        for member in members:
            for _ in range(args.member_pages_each):
                kind = rng.choices(kinds, weights=[LOGGED_IN_WEIGHTS[k] for k in kinds])[0]
                path = {
                    "detail": lambda: rng.choice(catalogue.details),
                    "list": lambda: f"/workbooks/?sort={rng.choice(SORTS)}",
                    "home": lambda: "/",
                    "feed": lambda: "/feed/",
                    "favorites": lambda: "/favorites/",
                    "profile": lambda: rng.choice(catalogue.profiles),
                }[kind]()
                status, _, _ = member.request("GET", path)
                expect(status, (200,), f"member page {path}")
                views += 1
    costs["member_page"] = per_unit(measured, views)
    say(f"member_page: {1000 * costs['member_page']['cpu']['web']:.1f} ms of gunicorn")

    measured = {}
    with counters.window(measured):
        for i, member in enumerate(members[: args.publishes]):
            token = member.form_token("/workbooks/new/")
            suffix = f"point{i}x{rng.randrange(10**9)}"
            status, _, _ = member.request(
                "POST",
                "/workbooks/new/",
                data={
                    "csrfmiddlewaretoken": token,
                    "title": f"Load Test Workbook {suffix}",
                    "description": "Generated by bench/scaling_point.py",
                    "sigma_embed_url": f"https://app.sigmacomputing.com/embed/loadtest-{suffix}",
                    "tags": "loadtest",
                    "visibility": "public",
                    "publish": "on",
                },
            )
            expect(status, (302,), "publish")
        drain(stack)
    costs["publish"] = per_unit(measured, args.publishes)
    say(
        f"publish: {1000 * costs['publish']['cpu']['web']:.1f} ms of gunicorn, "
        f"{1000 * costs['publish']['cpu']['worker']:.1f} ms of Celery (form, POST and its tasks)"
    )
    for member in members:
        member.close()
    costs["seen_window"] = seen_window
    return costs


def drain(stack: Stack, seconds: float = 30) -> None:
    """Until the broker's queues are empty and a second has passed (the worker finishes what it took)."""
    broker = redis.Redis.from_url(stack.redis_url.rsplit("/", 1)[0] + "/1")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and sum(
        broker.llen(q) for q in ("celery", "counters", "media", "reports")
    ):
        time.sleep(0.2)
    time.sleep(1.5)


def wait_until_idle(counters: Counters, *, cores: float = 0.05, seconds: float = 300) -> None:
    """Until the start-up's tasks are done (the demo thumbnails' renders, the first beat runs): the broker's
    queues empty and the Celery worker under ``cores`` for 5 s."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        drain(counters.stack)
        before = counters.cpu.read()["worker"]
        time.sleep(5)
        used = (counters.cpu.read()["worker"] - before) / 5
        if used < cores:
            return
        say(f"the Celery worker is still busy ({used:.2f} cores): waiting")
    raise RuntimeError(f"the Celery worker did not settle within {seconds:.0f} s")


def page_bytes(stack: Stack, sample: int = 400) -> float:
    """Mean memory of a cached page in Redis (SCAN, never KEYS; MEMORY USAGE of up to ``sample`` pages)."""
    client = redis.Redis.from_url(stack.redis_url)
    sizes = []
    for key in client.scan_iter(match="*sp:2:page:*", count=1000):
        sizes.append(client.memory_usage(key) or 0)
        if len(sizes) >= sample:
            break
    return sum(sizes) / len(sizes) if sizes else 0.0


# --- The load-test run ----------------------------------------------------------------------------------------


def load_test(counters: Counters, stack: Stack, args, folder: Path, *, seen_window: int) -> dict:
    """``make loadtest`` with the mixed scenario; the counters are read when the scenario starts and when its
    report is printed (every flow finished)."""
    phases = f"warm:{args.warm:g}:{args.rate:g},mixed:{args.seconds:g}:{args.rate:g}"
    command = [
        "make", "--no-print-directory", "loadtest", "LOADTEST_SCENARIOS=mixed", "LOADTEST_TIME_SCALE=1",
        f"LOADTEST_BASE_URL={stack.cdn}", f"LOADTEST_USERS={args.users}",
        f"LOADTEST_ARGS=--phases {phases} --seed {args.seed} --server-pids {stack.process.pid}",
    ]  # fmt: skip
    env = {**os.environ, "DATABASE_URL": stack.primary, "REDIS_URL": stack.redis_url, "PYTHONUNBUFFERED": "1"}
    for name in ("DATABASE_REPLICA_URLS", "DATABASE_POOLER", "REDIS_DURABLE_URL"):
        env.pop(name, None)
    say(f"{' '.join(command[:2])} {' '.join(command[2:-1])} 'LOADTEST_ARGS={command[-1].split('=', 1)[1]}'")
    process = subprocess.Popen(  # noqa: S603 (fixed argv)
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    before = after = None
    output = []
    csv_path = None
    for line in process.stdout:
        output.append(line)
        print(f"  | {line}", end="", flush=True)
        if line.startswith("  warm:") and before is None:  # the warm-up phase is over: caches are steady
            before = counters.snapshot(starting=True)
        elif line.startswith("scenario mixed against") and after is None:
            after = counters.snapshot(starting=False)
        found = re.search(r"raw samples: (\S+\.csv)", line)
        if found:
            csv_path = ROOT / found.group(1)
    process.wait()
    if before is None or after is None or csv_path is None:
        raise RuntimeError("make loadtest did not run the mixed scenario:\n" + "".join(output[-40:]))
    measured = counters.between(before, after, subtract=False)  # the model adds the background itself
    routes = Counter()
    # Anonymous detail views per dedup window, before and within the measured interval: all from 127.0.0.1,
    # which viewed every catalogue page in ``seen_window`` (the cost measurement).
    windows: dict[int, dict[str, float]] = {}
    with csv_path.open() as handle:
        for row in csv.DictReader(handle):  # the requests sent between the snapshots, whatever their phase
            at = float(row["start_unix_s"])
            if row["route"] == "anonymous: detail" and at <= after.wall:
                window = windows.setdefault(int(at // VIEW_DEDUP_SECONDS), {"before": 0.0, "views": 0.0})
                window["views" if at >= before.wall else "before"] += 1
            if before.wall <= at <= after.wall:
                routes[row["route"]] += 1
    if seen_window in windows:
        windows[seen_window]["before"] = float("inf")
    views = Counter()
    for route, n in routes.items():
        flow, _, name = route.partition(": ")
        if flow == "anonymous":
            views["list" if name.startswith("list") else name] += n
    logins = routes["design: login"] + routes["logged_in: login"]
    publishes = routes["design: publish"]
    member_pages = sum(n for r, n in routes.items() if r.startswith("logged_in: ") and "login" not in r)
    member_pages += routes["design: list"]
    requests = sum(routes.values())
    return {
        "command": " ".join(command),
        "exit_status": process.returncode,
        "report": "".join(output[-60:]),
        "seconds": measured["seconds"],
        "requests": requests,
        "routes": dict(routes),
        "anonymous_views": dict(views),
        "logins": logins,
        "member_pages": member_pages,
        "publishes": publishes,
        "detail_windows": [
            {
                "window": w,
                "before": v["before"] if v["before"] != float("inf") else "inf",
                "views": v["views"],
            }
            for w, v in sorted(windows.items())
            if v["views"]
        ],
        "measured": {
            "cpu": measured["cpu"],
            "statements_primary": measured["statements_primary"],
            "statements_replica": measured["statements_replica"],
            "redis_commands": measured["redis_commands"],
            "page_builds": measured["pages"].get("page_miss", 0.0),
            "page_hits": measured["pages"].get("page_hit", 0.0),
            "views_counted": measured["pages"].get("views_buffered", 0.0)
            + measured["pages"].get("views_direct", 0.0),
            "cdn_hits": measured["varnish"]["cache_hit"],
            "cdn_requests": measured["varnish"]["client_req"],
            "cdn_response_bytes": measured["varnish"]["s_resp_bodybytes"],
            "public_reads": {k: v for k, v in measured["pages"].items() if k.startswith("reads_") and v},
        },
    }


# --- Main -----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling_point", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--workbooks", type=int, default=10_000, help="bulk workbooks on top of the demo data"
    )
    parser.add_argument("--users", type=int, default=1000, help="load-test accounts (make loadtest)")
    parser.add_argument("--rate", type=float, default=25.0, help="mixed arrivals per second")
    parser.add_argument("--seconds", type=float, default=90.0, help="the load-test run's length")
    parser.add_argument(
        "--idle",
        type=float,
        default=60.0,
        help="seconds of idle background (the beat's minute tasks included)",
    )
    parser.add_argument(
        "--warm", type=float, default=30.0, help="seconds of the mix before the measured phase"
    )
    parser.add_argument(
        "--quiet-lock",
        type=Path,
        help="a directory made (waiting while it exists) for the measurements, removed after",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs) at the end")
    parser.add_argument("--cdn-hits", type=int, default=5000)
    parser.add_argument("--detail-hits", type=int, default=2000)
    parser.add_argument("--builds", type=int, default=400)
    parser.add_argument("--counted-views", type=int, default=400, help="first views of cached detail pages")
    parser.add_argument("--logins", type=int, default=60)
    parser.add_argument("--member-pages-each", type=int, default=5)
    parser.add_argument("--publishes", type=int, default=30)
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--out", type=Path, default=scaling_model.DEFAULT_POINT)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sigma_playground.settings")
    django.setup()  # for the load-test accounts' names and password (accounts.loadtest), nothing else
    started = time.time()
    folder = Path(tempfile.mkdtemp(prefix="sigma-scaling-point-"))
    stack = start(folder, workbooks=args.workbooks)
    rng = random.Random(args.seed)  # noqa: S311 (which pages, not a secret)
    locked = False
    try:
        subprocess.run(  # noqa: S603 (fixed argv)
            [PY, "manage.py", "loadtest_users", "--count", str(args.users)],
            cwd=ROOT,
            env={
                **os.environ,
                "DATABASE_URL": stack.primary,
                "REDIS_URL": stack.redis_url,
                "DJANGO_ENV": "development",
            },
            check=True,
        )
        if args.quiet_lock:
            say(f"waiting for {args.quiet_lock} (someone else is measuring)")
            while True:
                try:
                    args.quiet_lock.mkdir()
                    break
                except FileExistsError:
                    time.sleep(15)
            locked = True
            say(f"{args.quiet_lock} taken")
        counters = Counters(stack, CpuTiers(stack))
        catalogue = read_catalogue(stack.cdn)
        say(
            f"catalogue: {catalogue_sizes(catalogue)}; warming every web process (each measures the replica once started)"
        )
        for _ in range(60):  # new connections spread over every worker of both instances (SO_REUSEPORT)
            for base in stack.gunicorns:
                edge.http_get(f"{base}/tags/")
        wait_until_idle(counters)
        idle: dict = {}
        with counters.window(idle, subtract=False, settle=False):
            time.sleep(args.idle)
        counters.background = {
            **{t: max(0.0, v) / idle["seconds"] for t, v in idle["cpu"].items()},
            "statements_primary": idle["statements_primary"] / idle["seconds"],
            "statements_replica": idle["statements_replica"] / idle["seconds"],
            "redis_commands": max(0, idle["redis_commands"]) / idle["seconds"],
        }
        say(
            "idle background per second: " + ", ".join(f"{t} {v:.3f}" for t, v in counters.background.items())
        )
        costs = unit_costs(counters, stack, catalogue, args, rng)
        seen_window = costs.pop("seen_window")
        sizes = {"page_bytes": page_bytes(stack), "response_bytes": costs["cdn_pass"].pop("response_bytes")}
        with psycopg.connect(stack.primary, autocommit=True) as conn:
            db_bytes, workbooks = conn.execute(
                "SELECT pg_database_size(current_database()), (SELECT count(*) FROM workbooks_workbook)"
            ).fetchone()
        sizes["db_bytes_per_workbook"] = db_bytes / workbooks
        sizes["workbooks"] = workbooks
        say(f"sizes: {sizes}")
        time.sleep(5)  # past the publishes' change window: the run starts with the replica in use
        run = load_test(counters, stack, args, folder, seen_window=seen_window)
        run["catalogue"] = catalogue_sizes(catalogue)
        load_average = [round(x, 2) for x in os.getloadavg()]
    finally:
        if locked:
            args.quiet_lock.rmdir()
            say(f"{args.quiet_lock} removed")
        say("stopping the stack")
        stop(stack.process)
        stop(stack.redis_process)
    point = {
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "command": "python -m bench.scaling_point " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
        f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "load_average_after_the_run": load_average,
        "stack": {"web_instances": 2, "replicas": 1, "workbooks": sizes["workbooks"]},
        "background": counters.background,
        "unit_costs": costs,
        "sizes": sizes,
        "run": run,
    }
    args.out.write_text(json.dumps(point, indent=1, sort_keys=False) + "\n")
    say(f"written to {args.out}")
    print(scaling_model.render_checks(scaling_model.check_run(point)))
    if args.keep:
        say(f"work folder kept: {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
