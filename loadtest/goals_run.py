"""``python -m loadtest --goals`` (``make loadtest-goals``): measure every goal of issue 15's section 6 (and
section 3's acceptance) in one run and print each with its figure and PASS/FAIL.

What runs, in order (numbers in ``settings.LOAD_TEST["goals"]``; the judging is loadtest/goals.py):

1. ``hello`` ramp: Locust against bench/hello_wsgi.py under deploy/gunicorn.conf.py (started here on a
   free port), steps of increasing arrival rate until one fails the SLA or saturates the generator: the
   hello-world ceiling of this tool on this machine.
2. ``anonymous`` ramp straight to the site's gunicorn (``--gunicorn-url``): its ceiling; the ratio to (1).
3. ``anonymous`` for 5 minutes straight to gunicorn at a share of that ceiling: rebuild waves.
4. The CDN tier with wrk (closed loop, over the catalogue's anonymous pages, after 10 s of warming):
   1,000 requests/s. Before (5): every publish purges the lists at the CDN.
5. ``design`` through the CDN tier (``--base-url``): a warm-up, then the sustained phase.
6. ``logged_in`` through the CDN tier, briefly: its cost per arrival (docs/capacity.md), no goal.
7. ``design`` at twice the sustainable rate through nginx (``--nginx-url``: it stamps ``X-Request-Start``,
   so queue time is measured and shedding works), with gunicorn's /metrics scraped before and after: the
   overload goal and the site's p95 against the generator's.
8. ``bench/bench_web.py --reuse-db --scenario list-uncached`` on the same database: the cores uncached pages
   use, gunicorn's, PostgreSQL's and Redis's (bench-web's own core accounting). It empties the Redis databases it is given, so it
   runs last, after the stack is stopped.

With ``--with-stack`` it starts ``deploy/stack.py`` (``make stack``) on free ports first and stops it at the
end. Creates the load-test users first and runs ``loadtest_cleanup`` after. Each Locust run writes its own
HTML report; a goals page links them; ``--append-docs`` appends the goals table and each run's figures.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.utils.html import escape
from prometheus_client.parser import text_string_to_metric_families

from deploy import edge
from loadtest import driver, goals, report
from loadtest.goals import Goal
from loadtest.samples import Phase, Run
from loadtest.scenarios import SCENARIOS, Catalogue, Options
from monitoring import sla

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
LATENCY_FAMILY = "django_http_requests_latency_seconds_by_view_method"
# The measurements, in the order they run (``--only`` picks some).
STEPS = ("ceilings", "waves", "cdn", "design", "logged_in", "overload", "uncached")


def say(message: str) -> None:
    print(message, flush=True)


# --- Processes -----------------------------------------------------------------------------------------------


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path

    def stop(self, timeout: float = 60) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)
        say(f"[goals] {self.name} stopped")


def spawn(name: str, argv: list[str], env: dict[str, str], log: Path) -> Process:
    handle = log.open("wb")
    popen = subprocess.Popen(  # noqa: S603 (argv built here)
        argv, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
    )
    return Process(name, popen, log)


def start_stack(work: Path) -> tuple[Process, dict[str, str]]:
    ports = {
        "STACK_CDN_PORT": edge.free_port(),
        "STACK_NGINX_PORT": edge.free_port(),
        "STACK_GUNICORN_PORT": edge.free_port(),
        "CELERY_METRICS_PORT": edge.free_port(),
    }
    env = {**os.environ, **{k: str(v) for k, v in ports.items()}}
    say(f"[goals] starting make stack (deploy/stack.py) on {ports}; log {work / 'stack.log'}")
    process = spawn("stack", [PY, "deploy/stack.py"], env, work / "stack.log")
    edge.wait_for_port(ports["STACK_CDN_PORT"], process.popen, "make stack", seconds=600)
    urls = {
        "cdn": f"http://127.0.0.1:{ports['STACK_CDN_PORT']}",
        "nginx": f"http://127.0.0.1:{ports['STACK_NGINX_PORT']}",
        "gunicorn": f"http://127.0.0.1:{ports['STACK_GUNICORN_PORT']}",
    }
    wait_for_http(urls["cdn"] + "/healthz", 120)
    return process, urls


def start_hello(work: Path) -> tuple[Process, str]:
    port = edge.free_port()
    metrics = work / "hello-metrics"
    metrics.mkdir(exist_ok=True)
    env = {**os.environ, "GUNICORN_BIND": f"127.0.0.1:{port}", "PROMETHEUS_MULTIPROC_DIR": str(metrics)}
    process = spawn(
        "hello gunicorn",
        [PY, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "bench.hello_wsgi:application"],
        env,
        work / "hello.log",
    )
    edge.wait_for_port(port, process.popen, "hello gunicorn", seconds=60)
    return process, f"http://127.0.0.1:{port}"


def wait_for_http(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (our loopback URL)
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} does not answer 200 after {seconds:.0f} s")
        time.sleep(1)


# --- Locust runs ---------------------------------------------------------------------------------------------


@dataclass
class Measured:
    label: str
    run: Run
    summary: report.Report
    html: Path | None = None


@dataclass
class Context:
    users: int
    timeout_s: float
    max_in_flight: int
    seed: int | None
    report_dir: Path
    measured: list[Measured] = field(default_factory=list)


def locust(
    ctx: Context,
    label: str,
    url: str,
    scenario: str,
    phases: list[Phase],
    server_pids: set[int] | None = None,
) -> Measured:
    say(
        f"[goals] {label}: {scenario} against {url}, "
        + ", ".join(f"{p.duration_s:g} s at {p.arrivals_per_s:g}/s" for p in phases)
    )
    run = driver.run(
        base_url=url,
        scenario=SCENARIOS[scenario],
        scenario_name=scenario,
        phases=phases,
        options=Options(users=ctx.users),
        timeout_s=ctx.timeout_s,
        max_in_flight=ctx.max_in_flight,
        seed=ctx.seed,
        server_pids=server_pids or set(),
        progress=lambda line: say(line),
    )
    return Measured(label, run, report.summarize(run))


def merge(scenario: str, base_url: str, runs: list[Run]) -> Run:
    merged = Run(base_url=base_url, scenario=scenario, started=runs[0].started, ended=runs[-1].ended)
    for r in runs:
        merged.phases += r.phases
        merged.samples += r.samples
        merged.arrivals += r.arrivals
        merged.cpu += r.cpu
        for name, n in r.refused.items():
            merged.refused[name] = merged.refused.get(name, 0) + n
    return merged


def ramp(
    ctx: Context,
    label: str,
    url: str,
    scenario: str,
    rates: list[float],
    step_s: float,
    server_pids: set[int] | None = None,
) -> tuple[Measured, goals.Ceiling]:
    runs: list[Run] = []
    figures: list[report.PhaseFigures] = []
    held: list[bool] = []
    for rate in rates:
        step = locust(ctx, f"{label} step", url, scenario, [Phase(f"{rate:g}/s", step_s, rate)], server_pids)
        runs.append(step.run)
        figure = step.summary.phases[0]
        figures.append(figure)
        held.append(step.summary.verdict.passed)
        say(
            f"  step {rate:g}/s: {figure.requests_per_s:.0f} req/s, p95 {figure.latency.p95:.0f} ms, errors "
            f"{figure.latency.errors}, generator {figure.cpu['generator']:.2f} cores, server "
            f"{figure.cpu['server']:.2f}: {'held' if held[-1] else 'SLA failed'}"
            + (" (generator saturated)" if report.generator_saturated(figure) else "")
        )
        if not held[-1] or report.generator_saturated(figure):
            break
    run = merge(scenario, url, runs)
    measured = Measured(label, run, report.summarize(run))
    return measured, goals.ceiling(figures, held)


# --- Other measurements --------------------------------------------------------------------------------------


def scrape_latency(gunicorn_url: str) -> tuple[dict[float, float], float]:
    """The request-latency histogram's cumulative buckets summed over every route and method."""
    with urllib.request.urlopen(gunicorn_url + "/metrics", timeout=30) as response:  # noqa: S310
        text = response.read().decode()
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != LATENCY_FAMILY:
            continue
        for s in family.samples:
            if s.name.endswith("_bucket"):
                le = float(s.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + s.value
    return buckets, buckets.get(float("inf"), 0.0)


WRK_LUA = """
local paths = {%(paths)s}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n %% #paths) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_GOALS requests=%%d duration_us=%%d connect=%%d read=%%d write=%%d status=%%d timeout=%%d p50_us=%%d p95_us=%%d p99_us=%%d\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def anonymous_paths(url: str) -> list[str]:
    catalogue = Catalogue()
    for sort in ("newest", "popular", "trending"):
        with urllib.request.urlopen(f"{url}/workbooks/?sort={sort}&per_page=100", timeout=30) as r:  # noqa: S310
            catalogue.add_from(r.read().decode())
    lists = [f"/workbooks/?sort={s}" for s in ("newest", "popular", "trending", "favorites")]
    return ["/", *lists, *catalogue.details[:150], *catalogue.tags[:20], *catalogue.profiles[:30]]


def wrk_cdn(url: str, *, duration_s: int, connections: int, work: Path) -> dict[str, float]:
    paths = anonymous_paths(url)
    script = work / "goals-cdn.lua"
    script.write_text(WRK_LUA % {"paths": ", ".join(f'"{p}"' for p in paths)})
    wrk = shutil.which("wrk") or "wrk"
    # Warm the CDN first (every path a few times, not measured), then measure.
    warm = [wrk, "-t2", "-c8", "-d10s", "-s", str(script), url]
    subprocess.run(warm, capture_output=True, timeout=60, check=False)  # noqa: S603
    argv = [wrk, "-t2", f"-c{connections}", f"-d{duration_s}s", "--timeout", "10s", "-s", str(script), url]
    started = os.times()
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 60, check=False)  # noqa: S603
    ended = os.times()
    match = re.search(r"WRK_GOALS (.*)", out.stdout)
    if not match:
        raise RuntimeError(f"wrk gave no figures: {out.stdout[-800:]} {out.stderr[-800:]}")
    figures = {k: float(v) for k, v in (kv.split("=") for kv in match.group(1).split())}
    seconds = figures["duration_us"] / 1e6
    figures["rps"] = figures["requests"] / seconds
    figures["wrk_cores"] = (
        ended.children_user + ended.children_system - started.children_user - started.children_system
    ) / seconds
    figures["errors"] = sum(figures[k] for k in ("connect", "read", "write", "status", "timeout"))
    figures["paths"] = len(paths)
    return figures


def bench_uncached(database: str, redis_db: int, duration_s: int) -> tuple[float, str]:
    env = {
        **os.environ,
        "BENCH_WEB_DB": database,
        "BENCH_REDIS_DB": str(redis_db),
        "BENCH_REDIS_BROKER_DB": str(redis_db + 1),
    }
    argv = [PY, "bench/bench_web.py", "--reuse-db", "--keep-db", "--scenario", "list-uncached",
            "--duration", str(duration_s), "--quiet-wait", "30"]  # fmt: skip
    say(f"[goals] uncached pages: {' '.join(argv[1:])}")
    out = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)  # noqa: S603
    lines = [line for line in out.stdout.splitlines() if "list-uncached" in line]
    for line in lines:
        say("  " + line.strip())
    match = re.search(
        r"list-uncached: cores used: gunicorn ([\d.]+), nginx\+varnish [\d.]+, wrk ([\d.]+), postgres ([\d.]+), "
        r"redis ([\d.]+), other processes ([\d.]+)",
        out.stdout,
    )
    if not match:
        raise RuntimeError(f"bench_web gave no core figures:\n{out.stdout[-1500:]}\n{out.stderr[-1500:]}")
    row = next((line.split() for line in lines if line.strip().startswith("list-uncached ")), [])
    # bench-web's table: scenario, path, req/s, p50, p95, p99, requests, gunicorn CPU ms per request
    summary = (
        f"{row[2]} req/s, p50 {row[3]} ms, p95 {row[4]} ms, {row[7]} ms CPU per request"
        if len(row) >= 8
        else ""
    )
    gunicorn, wrk, postgres, redis, other = (float(g) for g in match.groups())
    summary += (
        f"; cores: gunicorn {gunicorn:.2f} + PostgreSQL {postgres:.2f} + Redis {redis:.2f}, wrk {wrk:.2f}, "
        f"other processes {other:.2f}"
    )
    return gunicorn + postgres + redis, summary


def bench_databases(args) -> tuple[str | None, int]:
    """bench-web's database and Redis db: the options, else this process's (the stack's) own."""
    db = settings.DATABASES["default"]
    database = args.database or (db["NAME"] if "postgresql" in db["ENGINE"] else None)
    redis_db = args.redis_db
    if redis_db is None:
        path = urllib.parse.urlsplit(os.environ.get("REDIS_URL", "")).path.strip("/")
        redis_db = int(path) if path.isdigit() else 10
    return database, redis_db


# --- The run -------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    goals: list[Goal]
    measured: list[Measured]
    costs: dict[str, tuple[float, float]]  # scenario -> (server, database) CPU seconds per arrival
    notes: list[str]


def measure(args) -> Outcome:
    config = settings.LOAD_TEST["goals"]
    target = sla.current()
    work = Path(tempfile.mkdtemp(prefix="loadtest-goals-"))
    ctx = Context(args.users, args.timeout, args.max_in_flight, args.seed, args.report_dir)
    results: list[Goal] = []
    costs: dict[str, tuple[float, float]] = {}
    notes: list[str] = []
    processes: list[Process] = []

    def record(goal: Goal) -> None:
        results.append(goal)
        say(f"[goals] {goal.status}: {goal.name}: {goal.figure}" + (f" ({goal.note})" if goal.note else ""))

    urls = {"cdn": args.base_url, "nginx": args.nginx_url, "gunicorn": args.gunicorn_url}
    try:
        if args.with_stack:
            stack, urls = start_stack(work)
            processes.append(stack)
        say(f"[goals] load-test users: {args.users}")
        call_command("loadtest_users", count=args.users)
        # The server's CPU: gunicorn and nginx (the CDN's listener is the base URL's), and with --with-stack the
        # whole stack's process tree: the Celery worker's tasks (a publish's notification fan-out and CDN
        # purges) and beat's are part of what an arrival costs.
        site_pids = driver.listeners(urls["gunicorn"]) | driver.listeners(urls["nginx"])
        if args.with_stack:
            site_pids.add(stack.popen.pid)
        edge_pids = site_pids
        scale = args.time_scale  # durations only (LOADTEST_TIME_SCALE): a short rehearsal of the whole run
        only = set(args.only or STEPS)
        anon_ceiling: goals.Ceiling | None = None
        sustainable = args.sustainable_rate or config["design"]["sustained"]["arrivals_per_s"]
        step_s = config["ramp_step_s"] * scale

        # 1-2. Ceilings, straight to gunicorn.
        if "ceilings" in only:
            hello_process, hello_url = start_hello(work)
            processes.append(hello_process)
            hello, hello_ceiling = ramp(ctx, "hello ramp", hello_url, "hello", config["hello_ramp"], step_s)
            hello_process.stop()
            processes.remove(hello_process)
            ctx.measured.append(hello)
            warm = config["anonymous_warmup"]
            locust(ctx, "anonymous warm-up (not judged)", urls["gunicorn"], "anonymous",
                   [Phase("warm-up", warm["duration_s"] * scale, warm["arrivals_per_s"])], site_pids)  # fmt: skip
            anon, anon_ceiling = ramp(
                ctx,
                "anonymous ramp",
                urls["gunicorn"],
                "anonymous",
                config["anonymous_ramp"],
                step_s,
                site_pids,
            )
            ctx.measured.append(anon)
            record(
                goals.ratio_to_ceiling(
                    anon_ceiling,
                    hello_ceiling,
                    minimum=config["min_ratio_to_hello"],
                    name="Anonymous straight to gunicorn: >= 0.6x the hello-world ceiling",
                )
            )

        # 3. Rebuild waves over five minutes.
        if "waves" in only:
            spec = config["anonymous_run"]
            ceiling_rate = anon_ceiling.arrivals_per_s if anon_ceiling else spec["rate_without_ramp"]
            rate = max(1.0, round(ceiling_rate * spec["share_of_ceiling"]))
            long = locust(ctx, "anonymous 5 minutes", urls["gunicorn"], "anonymous",
                          [Phase(f"{rate:g}/s steady", spec["duration_s"] * scale, rate)], site_pids)  # fmt: skip
            ctx.measured.append(long)
            w = config["waves"]
            record(
                goals.no_waves(
                    long.run.samples,
                    seconds=spec["duration_s"] * scale,
                    window_s=w["window_s"],
                    factor=w["factor"],
                    floor_ms=w["floor_ms"],
                    name=f"Anonymous straight to gunicorn: no rebuild waves ({rate:g} arrivals/s)",
                )
            )
            costs["anonymous"] = (
                long.summary.phases[0].cpu_s_per_arrival,
                long.summary.phases[0].db_s_per_arrival,
            )

        # 4. The CDN tier with wrk, before the design flow publishes (each publish purges lists at the CDN).
        if "cdn" in only:
            c = config["cdn"]
            say(
                f"[goals] CDN tier: wrk -c{c['connections']} -d{c['duration_s']}s over anonymous pages at {urls['cdn']}"
            )
            cdn = wrk_cdn(
                urls["cdn"],
                duration_s=max(2, round(c["duration_s"] * scale)),
                connections=c["connections"],
                work=work,
            )
            record(
                goals.throughput(
                    requests_per_s=cdn["rps"],
                    p95_ms=cdn["p95_us"] / 1000,
                    errors=int(cdn["errors"]),
                    min_rps=c["requests_per_s"],
                    p95_limit_ms=c["p95_ms"],
                    name=f"Through the CDN tier (Varnish; wrk, {cdn['paths']:.0f} anonymous pages, wrk used {cdn['wrk_cores']:.2f} cores)",
                )
            )

        # 5. The design flow through the CDN tier.
        if "design" in only:
            d = config["design"]
            design_phases = [
                Phase("warm-up", d["warmup"]["duration_s"] * scale, d["warmup"]["arrivals_per_s"]),
                Phase("sustained", d["sustained"]["duration_s"] * scale, d["sustained"]["arrivals_per_s"]),
            ]
            design = locust(ctx, "design", urls["cdn"], "design", design_phases, edge_pids)
            ctx.measured.append(design)
            judged = [
                goals.sustained(
                    f, min_rate=0, p95_ms=d["p95_ms"], max_error_percent=d["max_error_percent"], name=f.name
                )
                for f in design.summary.phases
            ]
            sustained_phase = design.summary.phases[-1]
            record(
                goals.sustained(
                    sustained_phase,
                    min_rate=d["sustained"]["arrivals_per_s"],
                    p95_ms=d["p95_ms"],
                    max_error_percent=d["max_error_percent"],
                    name=f"Design flow: >= {d['sustained']['arrivals_per_s']:g} arrivals/s sustained (through the CDN tier)",
                )
            )
            costs["design"] = (sustained_phase.cpu_s_per_arrival, sustained_phase.db_s_per_arrival)
            passing = [
                f.nominal_per_s for f, g in zip(design.summary.phases, judged, strict=True) if g.passed
            ]
            sustainable = max(passing) if passing else design_phases[0].arrivals_per_s
            if not passing:
                notes.append(
                    f"no design phase held: the overload run uses twice the warm-up rate of {sustainable:g}/s, "
                    "more than twice what this machine sustains"
                )

        # 6. The logged-in scenario's cost.
        if "logged_in" in only:
            li = config["logged_in_cost"]
            logged = locust(ctx, "logged_in cost", urls["cdn"], "logged_in",
                            [Phase(f"{li['arrivals_per_s']:g}/s", li["duration_s"] * scale, li["arrivals_per_s"])], edge_pids)  # fmt: skip
            ctx.measured.append(logged)
            costs["logged_in"] = (
                logged.summary.phases[0].cpu_s_per_arrival,
                logged.summary.phases[0].db_s_per_arrival,
            )

        # 7. Overload through nginx, with the site's own histogram.
        if "overload" in only:
            o = config["overload"]
            over_rate = sustainable * o["factor"]
            time.sleep(2)  # the batched metrics of the runs before are published (METRICS_BATCH_SECONDS)
            before, _ = scrape_latency(urls["gunicorn"])
            over = locust(ctx, "overload", urls["nginx"], "design",
                          [Phase(f"{over_rate:g}/s overload", o["duration_s"] * scale, over_rate)], edge_pids)  # fmt: skip
            time.sleep(2)
            after, _ = scrape_latency(urls["gunicorn"])
            ctx.measured.append(over)
            record(
                goals.overload(
                    over.run.samples,
                    rate=over_rate,
                    sla_p95_ms=target.api_ms.p95,
                    min_share=o["min_share"],
                    name=f"At twice the sustainable rate ({over_rate:g} = {o['factor']:g} x {sustainable:g} arrivals/s, through nginx)",
                )
            )
            delta = goals.bucket_difference(before, after)
            site_p95 = 1000 * goals.histogram_quantile(0.95, delta)
            record(
                goals.site_matches_generator(
                    site_p95_ms=site_p95,
                    generator_p95_ms=over.summary.phases[0].latency.p95,
                    tolerance=config["site_p95_tolerance"],
                    observed=delta[-1][1] if delta else 0.0,
                    name="Section 3: the site's p95 (its histogram, queue time included) under that overload",
                )
            )

        # 8. Uncached pages' cores (bench-web), after the stack is stopped.
        if "uncached" in only:
            for process in list(processes):
                process.stop()
                processes.remove(process)
            database, redis_db = bench_databases(args)
            if database:
                used, row = bench_uncached(database, redis_db, max(5, round(15 * scale)))
                record(goals.cores(used, minimum=config["uncached_min_cores"], name="Uncached pages (bench-web list-uncached) use >= 1.7 cores (the site: gunicorn, PostgreSQL, Redis)",
                                   figure=f"the site used {used:.2f} cores ({row})"))  # fmt: skip
            else:
                record(
                    goals.not_measured(
                        "Uncached pages use >= 1.7 cores", ">= 1.7 cores", "no --database given"
                    )
                )

    finally:
        for process in processes:
            process.stop()
        with contextlib.suppress(Exception):
            call_command("loadtest_cleanup")
        shutil.rmtree(work, ignore_errors=True)
    return Outcome(results, ctx.measured, costs, notes)


# --- Output --------------------------------------------------------------------------------------------------


def render_costs(costs: dict[str, tuple[float, float]]) -> str:
    lines = ["| scenario | CPU s per arrival: server / database |", "|---|---|"]
    lines += [f"| {name} | {server:.4f} / {db:.4f} |" for name, (server, db) in costs.items()]
    return "\n".join(lines)


def write_reports(outcome: Outcome, report_dir: Path, stamp: str) -> Path:
    links = []
    for m in outcome.measured:
        path = report_dir / f"goals-{stamp}-{m.label.replace(' ', '-')}.html"
        path.write_text(report.render_html(m.summary, m.run), encoding="utf-8")
        report.write_samples(path.with_suffix(".csv"), m.run)
        m.html = path
        links.append(f'<li><a href="{escape(path.name)}">{escape(m.label)}</a></li>')
    page = report_dir / f"goals-{stamp}.html"
    passed = all(g.passed for g in outcome.goals)
    page.write_text(
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>Load-test goals: {'PASS' if passed else 'FAIL'}</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px}"
        "pre{white-space:pre-wrap;font-size:12px}</style></head><body>"
        "<h1>Issue 15's goals on this machine</h1>"
        f"<pre>{escape(goals.render(outcome.goals))}</pre>"
        f"<h2>CPU per arrival</h2><pre>{escape(render_costs(outcome.costs))}</pre>"
        f"<h2>Runs (charts per run)</h2><ul>{''.join(links)}</ul></body></html>",
        encoding="utf-8",
    )
    return page


def append_to_docs(path: Path, outcome: Outcome, *, command: str, page: Path, started: float) -> None:
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"
    block = [
        "",
        f"### Load-test goals, {time.strftime('%Y-%m-%d %H:%M', time.gmtime(started))} UTC",
        "",
        f"Command: `{command}`. Machine: {platform.machine()}, {os.cpu_count()} CPUs; load average at the end "
        f"{load}. Goals page: `{page}` (not committed).",
        "",
        goals.render(outcome.goals),
        "",
        *[f"- note: {n}" for n in outcome.notes],
        "",
        "CPU seconds per completed arrival (server: gunicorn, nginx, and the base URL's listener; with --with-stack "
        "the whole stack's process tree, Celery worker and beat included; database: PostgreSQL and Redis):",
        "",
        render_costs(outcome.costs),
        "",
    ]
    for m in outcome.measured:
        block += [f"#### {m.label}", "", report.render_text(m.summary), ""]
    with path.open("a", encoding="utf-8") as handle:
        handle.write("\n".join(block))


def _terminate(signum, frame) -> None:
    raise SystemExit(128 + signum)  # SIGTERM (e.g. a timeout) stops the stack and cleans up like Ctrl-C


def main(args, command: str) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    started = time.time()
    args.report_dir.mkdir(parents=True, exist_ok=True)
    outcome = measure(args)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    page = write_reports(outcome, args.report_dir, stamp)
    say("")
    say("Goals (issue 15, section 6 and section 3):")
    say(goals.render(outcome.goals))
    for note in outcome.notes:
        say(f"- note: {note}")
    say("")
    say(render_costs(outcome.costs))
    say(f"Goals page: {page}")
    if args.append_docs:
        append_to_docs(args.append_docs, outcome, command=command, page=page, started=started)
        say(f"appended to {args.append_docs}")
    return 0 if all(g.passed for g in outcome.goals) else 1
