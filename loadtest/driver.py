"""The open-model driver: arrivals at the phases' rates, each a new visitor running its scenario once.

Locust's own runner keeps a fixed pool of users looping over their tasks (a closed model: when the server
slows down, the users wait and the offered load drops with it, hiding the overload). The design's test is an
open model: visitors arrive at a rate whatever the server does. So the arrivals are scheduled here, at
exponential (Poisson) intervals of mean 1/rate, each spawning a greenlet with a fresh ``FastHttpUser``; every
request goes through Locust's HTTP client and its request event, which this module turns into raw samples.

Samples recorded: every request (start time, phase, route name, response time, status, success, error), every
arrival (phase, planned and actual start, end, whether its flow completed) and once a second the CPU used by
the server's processes, the database's (PostgreSQL, Redis), this generator and everything else.
"""

from __future__ import annotations

import contextlib
import random
import time
from urllib.parse import urlsplit

import gevent
import psutil
from locust.env import Environment

from loadtest.mix import CATALOGUE_LISTS
from loadtest.samples import Arrival, CpuSample, Phase, Run, Sample
from loadtest.scenarios import Catalogue, Options, Visitor

# --- CPU accounting ------------------------------------------------------------------------------------------

DATABASE_NAMES = ("postgres", "redis-server", "pgbouncer")


def listeners(base_url: str) -> set[int]:
    """The processes listening on the base URL's port on this machine (gunicorn's master and workers, or the
    proxy in front of it)."""
    port = urlsplit(base_url).port or (443 if base_url.startswith("https") else 80)
    pids: set[int] = set()
    with contextlib.suppress(psutil.AccessDenied):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                pids.add(conn.pid)
    return pids


class CpuSampler:
    """Cores used per group between samples, from /proc's cumulative CPU times.

    The server is the listeners' process trees (gunicorn's master and every worker, also workers started
    later) plus, with ``--server-pids``, other roots (gunicorn behind a proxy). One pass over /proc a second:
    finding the listeners scans every socket of the machine (seconds of blocking C code on a busy machine,
    which held up every greenlet: arrivals started up to 2 minutes late), so it is done once, at the start.
    """

    def __init__(self, base_url: str, extra_roots: set[int] | None = None) -> None:
        self.me = psutil.Process()
        self.roots = listeners(base_url) | (extra_roots or set())
        self.last_total = self._busy_total()
        self.last_at = time.monotonic()
        self.last: dict[int, float] = {}
        self._read_groups()

    @staticmethod
    def _busy_total() -> float:
        t = psutil.cpu_times()
        return sum(t) - t.idle - getattr(t, "iowait", 0.0)

    def _read_groups(self) -> dict[str, float]:
        procs = []
        children: dict[int, list[int]] = {}
        for proc in psutil.process_iter(["pid", "ppid", "name", "cpu_times"]):
            info = proc.info
            procs.append(info)
            children.setdefault(info.get("ppid") or 0, []).append(info["pid"])
        server, todo = set(), list(self.roots)
        while todo:
            pid = todo.pop()
            if pid not in server:
                server.add(pid)
                todo.extend(children.get(pid, ()))
        used = {"server": 0.0, "database": 0.0, "generator": 0.0}
        current: dict[int, float] = {}
        for info in procs:
            times = info.get("cpu_times")
            if times is None:
                continue
            pid = info["pid"]
            current[pid] = times.user + times.system
            delta = current[pid] - self.last.get(pid, current[pid])
            if pid == self.me.pid:
                used["generator"] += delta
            elif pid in server:
                used["server"] += delta
            elif (info.get("name") or "").startswith(DATABASE_NAMES):
                used["database"] += delta
        self.last = current
        return used

    def sample(self) -> CpuSample:
        now = time.monotonic()
        total = self._busy_total()
        groups = self._read_groups()
        seconds = max(1e-6, now - self.last_at)
        others = max(0.0, total - self.last_total - sum(groups.values()))
        self.last_total, self.last_at = total, now
        return CpuSample(
            at=time.time(),
            seconds=seconds,
            server=groups["server"] / seconds,
            database=groups["database"] / seconds,
            generator=groups["generator"] / seconds,
            others=others / seconds,
        )


# --- The run ---------------------------------------------------------------------------------------------------


def read_catalogue(visitor: type[Visitor], env: Environment, options: Options) -> Catalogue:
    """Paths of real workbooks, tags and profiles, from the site's own first pages (not timed)."""
    user = visitor(env, phase="setup", arrival=-1, options=options, rng=random.Random(0))
    catalogue = Catalogue()
    for path in CATALOGUE_LISTS:
        response = user.client.get(path, name="setup")
        if response.status_code == 200:
            catalogue.add_from(response.text or "")
    return catalogue


def run(
    *,
    base_url: str,
    scenario: type[Visitor],
    scenario_name: str,
    phases: list[Phase],
    options: Options,
    timeout_s: float,
    max_in_flight: int,
    seed: int | None = None,
    server_pids: set[int] | None = None,
    progress=print,
) -> Run:
    visitor = type(
        f"{scenario.__name__}Arrival",
        (scenario,),
        {"host": base_url.rstrip("/"), "network_timeout": timeout_s, "connection_timeout": timeout_s},
    )
    env = Environment(user_classes=[visitor], host=base_url)
    result = Run(base_url=base_url, scenario=scenario_name)

    def on_request(request_type, name, response_time, response_length, response=None, context=None,
                   exception=None, start_time=None, **_kw):  # fmt: skip
        if name == "setup":
            return
        status = getattr(response, "status_code", 0) or 0
        error = "" if exception is None else f"{type(exception).__name__}: {exception}"
        result.samples.append(
            Sample(
                at=start_time or time.time(),
                phase=(context or {}).get("phase", "?"),
                name=name,
                ms=float(response_time or 0.0),
                status=int(status),
                ok=exception is None,
                error=error[:120],
            )
        )

    env.events.request.add_listener(on_request)
    options.catalogue = read_catalogue(visitor, env, options)
    rng = random.Random(seed)
    sampler = CpuSampler(base_url, server_pids)
    in_flight = 0

    def arrival(record: Arrival, number: int) -> None:
        nonlocal in_flight
        try:
            user = visitor(
                env, phase=record.phase, arrival=number, options=options, rng=random.Random(number)
            )
            record.ok = bool(user.flow())
        except Exception:  # a bug in a flow must not stop the run: the arrival failed
            record.ok = False
        finally:
            record.ended = time.time()
            in_flight -= 1

    def sample_cpu() -> None:
        while True:
            gevent.sleep(1.0)
            result.cpu.append(sampler.sample())

    cpu_greenlet = gevent.spawn(sample_cpu)
    result.started = time.time()
    number = 0
    try:
        for phase in phases:
            start = time.time()
            end = start + phase.duration_s
            result.phases.append((phase, start, end))
            planned = start
            offered_here = 0
            while True:
                planned += (
                    rng.expovariate(phase.arrivals_per_s) if phase.arrivals_per_s > 0 else phase.duration_s
                )
                if planned >= end:
                    break
                gevent.sleep(max(0.0, planned - time.time()))
                offered_here += 1
                if in_flight >= max_in_flight:
                    result.refused[phase.name] = result.refused.get(phase.name, 0) + 1
                    continue
                record = Arrival(phase=phase.name, planned=planned, started=time.time())
                result.arrivals.append(record)
                in_flight += 1
                number += 1
                gevent.spawn(arrival, record, number)
            gevent.sleep(max(0.0, end - time.time()))
            progress(
                f"  {phase.name}: {phase.duration_s:.0f} s at {phase.arrivals_per_s:g}/s offered, "
                f"{offered_here} arrivals, {in_flight} still in flight"
            )
        # Let the last flows finish (each request is cut at timeout_s).
        deadline = time.time() + timeout_s * 6
        while in_flight > 0 and time.time() < deadline:
            gevent.sleep(0.2)
    finally:
        result.ended = time.time()
        cpu_greenlet.kill()
    return result
