"""The scaling model of docs/scaling.md: from measured unit costs, what each tier carries at a given traffic and
dataset size, how many of each tier that needs, which saturates first and what to add.

    python -m bench.scaling_model                      # the tables of docs/scaling.md
    python -m bench.scaling_model --costs FILE.json    # from another measured point (bench/scaling_point.py)
    python -m bench.scaling_model --check FILE.json    # that point's run: predicted against measured

Everything here is a pure function of its arguments (tests/test_scaling_model.py); the only input read from
disk is the measured point, ``bench/scaling_point.json`` by default (written by ``bench/scaling_point.py``:
the unit costs, the measured run and where and when it was measured).

The shape of the model (the reasoning is in docs/scaling.md, "The model"):

- Traffic is arrivals of the load test's three flows, in a mix: an anonymous arrival views 3 public pages, a
  logged-in one signs in and views 4 pages, a design one signs in, lists and publishes (5 requests).
- Every request passes the CDN. A public page other than a workbook's detail page is kept by the CDN; a detail
  page is fetched from the origin on every view (its views are counted there), and the origin answers from
  its page cache (Redis) or builds the page. Every publish changes the ``lists`` namespace that every public
  page shows, so it purges every page at the CDN and makes every cached page stale: a cache's effective
  lifetime is ``1 / (1 / TTL + publishes per second)``.
- A page with request rate ``λ`` in a cache whose entries live ``T`` on average is found there with
  probability ``λT / (1 + λT)`` (Poisson requests; a TTL cache). Page popularity within a class of pages is
  Zipf-like; sums over millions of pages are taken over geometric buckets of ranks.
- A build reads a replica unless the page's namespaces changed within the replica router's visibility window
  (the monitor sees a replica has a write up to ``0.1 + REPLICA_CHECK_SECONDS`` after it): after every
  publish, rebuilds read the primary for about a second. For a page with rate ``λ`` and publishes at ``P``,
  the share of its builds that read the primary is ``1 - exp(-(λ + P) W)``, averaged over ``W``.
- A detail page's view is counted at the origin, once per visitor per workbook per dedup window
  (workbooks/counters.py): a view already seen costs its seen-check (two Redis commands, in the detail page's
  own cost); a view that counts is delivered to Redis by its process and flushed to the database, its own
  request kind (``view_counted``). In production nearly every anonymous view counts (``Site.first_view_share``);
  the load test sends every view from one address, so there only a workbook's first view in each window does.
- Each request kind has a measured cost vector (CPU seconds per tier, statements, Redis commands); a tier's
  load is the sum over kinds of rate x cost. Tiers are sized at the SLA's 70 % CPU.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from loadtest.mix import ANONYMOUS_WEIGHTS, SEARCH_WORDS, SORTS

DEFAULT_POINT = Path(__file__).resolve().parent / "scaling_point.json"
TIERS = ("cdn", "proxy", "web", "worker", "primary", "replica", "redis")
TIER_NAMES = {
    "cdn": "CDN (Varnish)",
    "proxy": "nginx",
    "web": "gunicorn",
    "worker": "Celery worker",
    "primary": "PostgreSQL primary",
    "replica": "PostgreSQL replicas",
    "redis": "Redis",
}
# What one arrival of each flow does: request kinds and how many of each (loadtest/scenarios.py).
FLOWS: dict[str, dict[str, float]] = {
    "anonymous": {"anonymous_page": 3},
    "logged_in": {"login": 1, "member_page": 4},
    "design": {"login": 1, "member_page": 1, "publish": 1},
}
# HTTP requests per kind: a sign-in is the form and its POST, a publish the form and its POST.
REQUESTS_PER_KIND = {"anonymous_page": 1, "login": 2, "member_page": 1, "publish": 2}
MIXES = {
    # The design document's load test: every arrival signs in, lists and publishes.
    "design": {"design": 1.0},
    # settings.LOAD_TEST["mix"]: mostly anonymous readers, a few members, one arrival in fifty publishing.
    "gallery": {"anonymous": 0.90, "logged_in": 0.08, "design": 0.02},
}
TRAFFIC = (1_000, 10_000, 100_000)  # requests/s
SIZES = (1_000_000, 10_000_000, 100_000_000)  # workbooks


# --- Inputs ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cost:
    """One request kind's measured cost: CPU seconds per tier, app statements, Redis commands.
    ``replica_statements``: of the statements, those that ran on the replica (a page build's reads; the rest,
    such as the flush of the views it counted, run on the primary whatever happens)."""

    cpu: Mapping[str, float]
    statements: float = 0.0
    redis: float = 0.0
    replica_statements: float = 0.0


@dataclass(frozen=True)
class PageClass:
    """A kind of anonymous public page: its share of anonymous views, how many distinct pages there are for N
    workbooks (``fixed + per_workbook * N``), how popularity spreads over them, and whether the CDN keeps it."""

    name: str
    weight: float
    fixed: float = 0.0
    per_workbook: float = 0.0
    zipf: float = 0.0  # 0: every page equally popular
    cdn_cached: bool = True  # False: fetched from the origin on every view (workbook detail pages)
    build: str = ""  # the request kind of building one (default "build_<name>")

    @property
    def build_kind(self) -> str:
        return self.build or f"build_{self.name}"

    def pages(self, workbooks: float) -> float:
        return max(1.0, self.fixed + self.per_workbook * workbooks)


# The anonymous flow's page classes, weighted as it draws them; the number of pages of each for N workbooks and
# their popularity are assumptions (docs/scaling.md, "Assumptions"): a detail page per workbook, a profile per
# ten workbooks (seed_demo's proportions), a tag page per thousand, the lists in four sorts with 25 pages each,
# one home page, and searches with a long tail.
PRODUCTION_CLASSES = (
    PageClass("detail", ANONYMOUS_WEIGHTS["detail"], per_workbook=1, zipf=0.9, cdn_cached=False),
    PageClass("list", ANONYMOUS_WEIGHTS["list"], fixed=len(SORTS) * 25),
    PageClass("home", ANONYMOUS_WEIGHTS["home"], fixed=1, build="build_list"),  # sections of the lists
    PageClass("tag", ANONYMOUS_WEIGHTS["tag"], fixed=100, per_workbook=0.001, zipf=0.9),
    PageClass("profile", ANONYMOUS_WEIGHTS["profile"], per_workbook=0.1, zipf=0.9),
    PageClass("search", ANONYMOUS_WEIGHTS["search"], fixed=1_000, per_workbook=0.01, zipf=0.9),
)


@dataclass(frozen=True)
class Site:
    """The site's settings that the model depends on (sigma_playground/settings.py)."""

    page_ttl: float = 54.0  # PAGE_CACHE_TTL (60 s) less its jitter on average (PAGE_CACHE_TTL_JITTER 0.2)
    cdn_ttl: float = 86_400.0  # CDN_SHARED_MAX_AGE
    replica_check: float = 1.0  # REPLICA_CHECK_SECONDS
    replica_margin: float = 0.1  # sigma_playground.replicas.monitor.CLOCK_MARGIN_SECONDS
    pool_per_alias: int = 3  # DB_POOL_MAX_SIZE per gunicorn worker (docs/operations.md)
    connection_budget: int = 100  # the SLA's database connections
    # Not the site today (every publish bumps ``lists`` at once): with a value, ``lists`` changes at most this
    # often (new workbooks shown within that many seconds, as the tag directory's TAG_DIRECTORY_SECONDS).
    lists_bump_seconds: float = 0.0
    # The share of anonymous detail views that are their visitor's first of that workbook within
    # VIEW_DEDUP_SECONDS (30 min), and so are counted (``view_counted``): an assumption, nearly all.
    first_view_share: float = 1.0

    def invalidations(self, publishes: float) -> float:
        """How often per second the publishes empty every page (see lists_bump_seconds)."""
        if self.lists_bump_seconds > 0:
            return min(publishes, 1.0 / self.lists_bump_seconds)
        return publishes


@dataclass(frozen=True)
class Nodes:
    """Machine sizes the tiers are counted in (assumptions, docs/scaling.md)."""

    web_cores: int = 8  # nginx + gunicorn (2 x cores + 1 workers)
    worker_cores: int = 4
    db_cores: int = 16  # a replica; the primary is one machine of up to max_db_cores
    max_db_cores: int = 64
    db_memory_gb: int = 128
    redis_cores: int = 1  # Redis runs commands on one core: more cores are more instances (a cluster)
    redis_memory_gb: int = 25
    cdn_cores: int = 8  # if the CDN tier were run as Varnish machines
    cpu_target: float = 0.70  # the SLA's CPU utilisation


@dataclass(frozen=True)
class Costs:
    """Everything measured: unit costs per request kind, idle background, sizes per row."""

    # cdn_pass, detail_hit, build_detail, build_list, build_tag, build_profile, build_search, view_counted,
    # login, member_page, publish. A detail hit's and a detail build's costs are those of a view already seen
    # (its seen-check only); a view that counts adds one ``view_counted``.
    kinds: Mapping[str, Cost]
    # Per second with no traffic: cores per tier, and "statements_primary", "statements_replica", "redis_commands".
    background: Mapping[str, float] = field(default_factory=dict)
    page_bytes: float = 30_000.0  # one cached page in Redis
    response_bytes: float = 10_000.0  # one response body leaving the CDN (compressed)
    db_bytes_per_workbook: float = 10_000.0  # database size / workbooks, at the measured point


# --- Caches ---------------------------------------------------------------------------------------------------


def hit_ratio(rate: float, ttl: float) -> float:
    """A TTL cache: the share of a page's requests (Poisson, ``rate`` per second) that find it stored, when an
    entry lives ``ttl`` seconds on average from the request that stored it."""
    if rate <= 0 or ttl <= 0:
        return 0.0
    if math.isinf(ttl):
        return 1.0
    return rate * ttl / (1 + rate * ttl)


def effective_ttl(ttl: float, invalidations: float) -> float:
    """Mean lifetime of an entry kept ``ttl`` seconds and also emptied at Poisson moments, ``invalidations``
    per second (every publish bumps ``lists``, which every page shows)."""
    if ttl <= 0:
        return 0.0
    return 1.0 / (1.0 / ttl + max(0.0, invalidations))


def primary_share(rate: float, publishes: float, *, ttl: float, check: float, margin: float) -> float:
    """The share of a page's builds that read the primary: those that come within the router's window ``W``
    (uniform on ``[margin, margin + check]``: the next replica measurement after the change) of the last change
    of a namespace the page shows.

    A build caused by a change comes ``Exp(rate)`` after it, cut at the next change: ``1 - exp(-(rate + P) W)``
    of them fall within ``W``. A build caused by expiry reads the primary when a publish came in the last ``W``:
    ``1 - exp(-P W)``. Weighted by how often each causes the build."""
    if publishes <= 0:
        return 0.0

    def within(k: float) -> float:  # E over W of 1 - exp(-k W)
        if k <= 0:
            return 0.0
        if check <= 0:
            return 1 - math.exp(-k * margin)
        return 1 - (math.exp(-k * margin) - math.exp(-k * (margin + check))) / (k * check)

    expiry = 1.0 / ttl if ttl > 0 else 0.0
    return (publishes * within(rate + publishes) + expiry * within(publishes)) / (publishes + expiry)


@functools.lru_cache(maxsize=256)
def popularity(
    pages: float, zipf: float, *, exact_up_to: int = 500, buckets: int = 300
) -> tuple[tuple[float, float], ...]:
    """(number of pages, probability of each) groups whose probabilities add up to 1: Zipf-like popularity
    ``p(r) ~ r ** -zipf`` over ``pages`` ranks. The first ``exact_up_to`` ranks one group each; the rest in
    geometric buckets, each page of a bucket weighted at the bucket's mean of ``r ** -zipf`` (the integral
    over ``[low - 1/2, high - 1/2)``, which the sum over its ranks is close to once ranks are large)."""
    n = max(1, round(pages))
    if zipf == 0:
        return ((float(n), 1.0 / n),)
    head = min(n, exact_up_to)
    weights = [(1.0, r**-zipf) for r in range(1, head + 1)]
    if n > head:
        edges = sorted(
            {head + 1, n + 1, *(round((head + 1) * (n / head) ** (i / buckets)) for i in range(buckets))}
        )
        for low, high in itertools.pairwise(edges):
            a, b = low - 0.5, high - 0.5
            mass = math.log(b / a) if zipf == 1 else (b ** (1 - zipf) - a ** (1 - zipf)) / (1 - zipf)
            weights.append((float(high - low), mass / (high - low)))
    total = sum(count * w for count, w in weights)
    return tuple((count, w / total) for count, w in weights)


# --- The traffic's request kinds ------------------------------------------------------------------------------


@dataclass
class Load:
    """Request kinds per second at one traffic point, and what the caches did."""

    arrivals: dict[str, float]
    kinds: dict[str, float]  # per second: cdn_pass (every request), detail_hit, build_<class>, login, ...
    builds_on_primary: dict[str, float]  # per build kind: builds per second whose reads go to the primary
    cdn_hits: float
    cdn_cacheable: float  # anonymous requests for pages the CDN keeps
    cached_pages: float  # expected pages in the Redis page cache
    publishes: float

    @property
    def requests(self) -> float:
        return self.kinds.get("cdn_pass", 0.0)

    @property
    def origin_requests(self) -> float:
        return self.requests - self.cdn_hits

    @property
    def builds(self) -> float:
        return sum(rate for kind, rate in self.kinds.items() if kind.startswith("build_"))


def arrivals_for(requests_per_s: float, mix: Mapping[str, float]) -> dict[str, float]:
    """Arrivals per second of each flow that make ``requests_per_s`` HTTP requests with the mix's weights."""
    total = sum(mix.values())
    per_arrival = sum(
        weight / total * sum(n * REQUESTS_PER_KIND[kind] for kind, n in FLOWS[flow].items())
        for flow, weight in mix.items()
    )
    arrivals = requests_per_s / per_arrival
    return {flow: arrivals * weight / total for flow, weight in mix.items()}


def anonymous_pages(
    page_rate: Mapping[str, float],
    classes: Iterable[PageClass],
    *,
    workbooks: float,
    publishes: float,
    site: Site,
) -> dict[str, float]:
    """Anonymous page views (``page_rate`` per class per second) through the CDN and the page cache: CDN hits,
    detail views answered from the page cache, builds of each build kind and how many of those read the
    primary ("primary:<kind>"), all per second, and the expected number of pages in the page cache."""
    publishes = site.invalidations(publishes)
    cdn_life = effective_ttl(site.cdn_ttl, publishes)
    page_life = effective_ttl(site.page_ttl, publishes)
    out = dict.fromkeys(("cdn_hits", "cdn_cacheable", "detail_hit", "cached_pages"), 0.0)
    for page_class in classes:
        out.setdefault(page_class.build_kind, 0.0)
        out.setdefault(f"primary:{page_class.build_kind}", 0.0)
    for page_class in classes:
        rate = page_rate.get(page_class.name, 0.0)
        if rate <= 0:
            continue
        for count, p in popularity(page_class.pages(workbooks), page_class.zipf):
            page = rate * p  # one page's views per second
            if page_class.cdn_cached:
                # Kept by the CDN for a day unless purged; what reaches the origin comes after a purge or an
                # expiry, when the page cache (invalidated by the same publish, or younger-lived) misses too.
                hits = page * hit_ratio(page, cdn_life)
                builds = page - hits
                out["cdn_cacheable"] += count * page
                out["cdn_hits"] += count * hits
                out["cached_pages"] += count * hit_ratio(builds, page_life)
            else:
                origin_hits = page * hit_ratio(page, page_life)
                builds = page - origin_hits
                out["detail_hit"] += count * origin_hits
                out["cached_pages"] += count * hit_ratio(page, page_life)
            out[page_class.build_kind] += count * builds
            out[f"primary:{page_class.build_kind}"] += (
                count
                * builds
                * primary_share(
                    page, publishes, ttl=site.page_ttl, check=site.replica_check, margin=site.replica_margin
                )
            )
    return out


def builds_of(pages: Mapping[str, float]) -> dict[str, float]:
    """The request kinds of anonymous_pages()'s answer: detail hits and builds per build kind."""
    return {k: v for k, v in pages.items() if k == "detail_hit" or k.startswith("build_")}


def on_primary(pages: Mapping[str, float]) -> dict[str, float]:
    return {k.split(":", 1)[1]: v for k, v in pages.items() if k.startswith("primary:")}


def distinct_pages(views: float, pages: float) -> float:
    """Expected distinct pages among ``views`` picked uniformly (with replacement) from ``pages``."""
    if pages <= 0 or views <= 0:
        return 0.0
    if math.isinf(views):
        return float(pages)
    return pages * -math.expm1(views * math.log1p(-1.0 / pages)) if pages > 1 else 1.0


def first_views_from_one_address(windows: Iterable[Mapping[str, float]], pages: float) -> float:
    """Counted views among detail views that all come from one visitor (the load generator's address), picked
    uniformly from ``pages`` workbooks: per dedup window, the workbooks first viewed in the measured interval.
    Each window: ``before`` (the address's views in that window before the interval; ``inf`` when it had
    viewed every page, as the cost measurement does) and ``views`` (in the interval)."""
    return sum(
        distinct_pages(float(w["before"]) + float(w["views"]), pages)
        - distinct_pages(float(w["before"]), pages)
        for w in windows
    )


def load_at(
    requests_per_s: float,
    mix: Mapping[str, float],
    *,
    workbooks: float,
    classes: Iterable[PageClass] = PRODUCTION_CLASSES,
    site: Site | None = None,
) -> Load:
    """What ``requests_per_s`` requests of the mix make each layer do."""
    site = site or Site()
    classes = tuple(classes)
    arrivals = arrivals_for(requests_per_s, mix)
    per_kind: dict[str, float] = {}
    for flow, rate in arrivals.items():
        for kind, n in FLOWS[flow].items():
            per_kind[kind] = per_kind.get(kind, 0.0) + rate * n
    publishes = per_kind.get("publish", 0.0)
    weights = sum(c.weight for c in classes)
    anonymous = per_kind.pop("anonymous_page", 0.0)
    pages = anonymous_pages(
        {c.name: anonymous * c.weight / weights for c in classes},
        classes,
        workbooks=workbooks,
        publishes=publishes,
        site=site,
    )
    requests = anonymous + sum(n * REQUESTS_PER_KIND[k] for k, n in per_kind.items())
    counted = site.first_view_share * (pages["detail_hit"] + pages["build_detail"])
    return Load(
        arrivals=arrivals,
        kinds={"cdn_pass": requests, **builds_of(pages), "view_counted": counted, **per_kind},
        builds_on_primary=on_primary(pages),
        cdn_hits=pages["cdn_hits"],
        cdn_cacheable=pages["cdn_cacheable"],
        cached_pages=pages["cached_pages"],
        publishes=publishes,
    )


# --- Tiers ----------------------------------------------------------------------------------------------------


@dataclass
class TierLoad:
    cores: dict[str, float]  # CPU cores busy per tier
    statements_primary: float  # per second
    statements_replica: float
    redis_commands: float

    @property
    def replica_share(self) -> float:
        total = self.statements_primary + self.statements_replica
        return self.statements_replica / total if total else 0.0


def tier_load(load: Load, costs: Costs, *, seconds: float = 1.0, background: bool = True) -> TierLoad:
    """CPU per tier (cores, or CPU seconds over ``seconds``), statements and Redis commands of a load. A build
    reads the replica unless it reads the primary (``builds_on_primary``): its replica CPU and statements move
    to the primary then."""
    cores = dict.fromkeys(TIERS, 0.0)
    statements = {"primary": 0.0, "replica": 0.0}
    redis = 0.0
    for kind, rate in load.kinds.items():
        if rate <= 0:
            continue
        if kind == "view_counted" and kind not in costs.kinds:
            continue  # a point measured before it was its own kind: the detail costs include their views
        cost = costs.kinds[kind]
        for tier, cpu in cost.cpu.items():
            cores[tier] += rate * cpu
        redis += rate * cost.redis
        statements["primary"] += rate * (cost.statements - cost.replica_statements)
        statements["replica"] += rate * cost.replica_statements
        if kind in load.builds_on_primary:  # measured on the replica; these builds read the primary instead
            on_primary = load.builds_on_primary[kind]
            statements["primary"] += on_primary * cost.replica_statements
            statements["replica"] -= on_primary * cost.replica_statements
            moved = on_primary * cost.cpu.get("replica", 0.0)
            cores["replica"] -= moved
            cores["primary"] += moved
    if background:
        for tier in TIERS:
            cores[tier] += costs.background.get(tier, 0.0)
        statements["primary"] += costs.background.get("statements_primary", 0.0)
        statements["replica"] += costs.background.get("statements_replica", 0.0)
        redis += costs.background.get("redis_commands", 0.0)
    return TierLoad(
        cores={t: v * seconds for t, v in cores.items()},
        statements_primary=statements["primary"] * seconds,
        statements_replica=statements["replica"] * seconds,
        redis_commands=redis * seconds,
    )


@dataclass
class Sizing:
    requests: float
    workbooks: float
    load: Load
    tiers: TierLoad
    nodes: dict[str, int]  # web, worker, replica, redis, cdn
    primary_cores: float
    primary_fits: bool
    redis_memory_gb: float
    db_size_gb: float
    egress_gbit: float  # response bodies leaving the CDN
    connections_direct: int  # to each database server without a pooler
    saturated: list[str]  # tiers past what one node of their kind can take (primary, Redis memory...)

    @property
    def cdn_hit_ratio(self) -> float:
        return self.load.cdn_hits / self.load.requests if self.load.requests else 0.0


def size(
    requests_per_s: float,
    mix: Mapping[str, float],
    *,
    workbooks: float,
    costs: Costs,
    nodes: Nodes | None = None,
    site: Site | None = None,
    classes: Iterable[PageClass] = PRODUCTION_CLASSES,
) -> Sizing:
    """How many of each tier ``requests_per_s`` of the mix need at ``workbooks``, at the SLA's CPU target."""
    nodes = nodes or Nodes()
    site = site or Site()
    load = load_at(requests_per_s, mix, workbooks=workbooks, classes=classes, site=site)
    tiers = tier_load(load, costs)
    target = nodes.cpu_target

    def count(cores: float, per_node: int) -> int:
        return max(1, math.ceil(cores / (per_node * target) - 1e-9)) if cores > 0 else 0

    web = count(tiers.cores["proxy"] + tiers.cores["web"], nodes.web_cores)
    cached_gb = load.cached_pages * costs.page_bytes / 1e9
    counted = {
        "web": web,
        "worker": count(tiers.cores["worker"], nodes.worker_cores),
        "replica": count(tiers.cores["replica"], nodes.db_cores),
        "redis": max(
            count(tiers.cores["redis"], nodes.redis_cores),
            math.ceil(cached_gb / nodes.redis_memory_gb - 1e-9),
        ),
        "cdn": count(tiers.cores["cdn"], nodes.cdn_cores),
    }
    primary_cores = tiers.cores["primary"] / target
    saturated = []
    if primary_cores > nodes.max_db_cores:
        saturated.append("primary CPU")
    db_size_gb = workbooks * costs.db_bytes_per_workbook / 1e9
    if db_size_gb > nodes.db_memory_gb:
        saturated.append("DB memory")  # the data no longer fits in one machine's memory: reads go to disk
    web_processes = web * (2 * nodes.web_cores + 1)
    return Sizing(
        requests=requests_per_s,
        workbooks=workbooks,
        load=load,
        tiers=tiers,
        nodes=counted,
        primary_cores=primary_cores,
        primary_fits=primary_cores <= nodes.max_db_cores,
        redis_memory_gb=cached_gb,
        db_size_gb=db_size_gb,
        egress_gbit=requests_per_s * costs.response_bytes * 8 / 1e9,
        connections_direct=web_processes * site.pool_per_alias,
        saturated=saturated,
    )


def first_to_saturate(
    mix: Mapping[str, float],
    *,
    workbooks: float,
    costs: Costs,
    nodes: Nodes | None = None,
    site: Site | None = None,
    classes: Iterable[PageClass] = PRODUCTION_CLASSES,
    deployment: Mapping[str, float] | None = None,
) -> list[tuple[str, float]]:
    """For a deployment of one of each (``deployment``: cores per tier; by default one web machine, one worker
    machine, a primary of ``db_cores`` with no replica, one Redis and one CDN machine), the request rate at
    which each tier reaches the CPU target, lowest first. Found by bisection (the caches make the load
    non-linear in the rate)."""
    nodes = nodes or Nodes()
    site = site or Site()
    classes = tuple(classes)
    capacity = dict(
        deployment
        or {
            "cdn": nodes.cdn_cores,
            "web": nodes.web_cores,  # proxy and web share the web machine
            "worker": nodes.worker_cores,
            "primary": nodes.db_cores,  # with no replica, the primary takes every read
            "redis": nodes.redis_cores,
        }
    )

    @functools.cache
    def used(rate: float) -> dict[str, float]:
        tiers = tier_load(load_at(rate, mix, workbooks=workbooks, classes=classes, site=site), costs)
        c = tiers.cores
        return {
            "cdn": c["cdn"],
            "web": c["proxy"] + c["web"],
            "worker": c["worker"],
            "primary": c["primary"] + c["replica"],
            "redis": c["redis"],
        }

    found = []
    for tier, cores in capacity.items():
        limit = cores * nodes.cpu_target
        low, high = 0.0, 1.0
        while used(high)[tier] < limit and high < 1e9:
            low, high = high, high * 2
        if high >= 1e9:
            found.append((tier, math.inf))
            continue
        for _ in range(40):  # to a millionth of the rate
            middle = (low + high) / 2
            low, high = (middle, high) if used(middle)[tier] < limit else (low, middle)
        found.append((tier, low))
    return sorted(found, key=lambda item: item[1])


# --- The measured point ---------------------------------------------------------------------------------------


def costs_from(point: Mapping) -> Costs:
    """The unit costs recorded by bench/scaling_point.py."""
    unit = point["unit_costs"]
    return Costs(
        kinds={
            name: Cost(
                cpu=dict(k["cpu"]),
                statements=k["statements"],
                redis=k["redis"],
                replica_statements=k.get("statements_replica", 0.0),
            )
            for name, k in unit.items()
        },
        background=dict(point.get("background", {})),
        page_bytes=point["sizes"]["page_bytes"],
        response_bytes=point["sizes"]["response_bytes"],
        db_bytes_per_workbook=point["sizes"]["db_bytes_per_workbook"],
    )


def point_classes(catalogue: Mapping[str, float]) -> tuple[PageClass, ...]:
    """The load test's own anonymous pages: a uniform pick among the catalogue's pages of each class (the
    driver's ``rng.choice``), with its weights."""
    from_catalogue = {"detail": "details", "tag": "tags", "profile": "profiles"}
    fixed = {"list": len(SORTS), "home": 1, "search": len(SEARCH_WORDS)}
    return tuple(
        PageClass(
            name,
            weight,
            fixed=catalogue[from_catalogue[name]] if name in from_catalogue else fixed[name],
            cdn_cached=name != "detail",
            build="build_list" if name == "home" else "",
        )
        for name, weight in ANONYMOUS_WEIGHTS.items()
    )


def predict_run(run: Mapping, costs: Costs, *, site: Site | None = None) -> tuple[Load, TierLoad]:
    """What the model predicts for a measured load-test run, from what the generator sent (``run``: seconds,
    anonymous page views per class, sign-ins, member pages, publishes, the catalogue)."""
    site = site or Site()
    seconds = run["seconds"]
    classes = point_classes(run["catalogue"])
    views = run["anonymous_views"]
    publishes = run["publishes"] / seconds
    pages = anonymous_pages(
        {name: count / seconds for name, count in views.items()},
        classes,
        workbooks=0,
        publishes=publishes,
        site=site,
    )
    kinds = {
        "cdn_pass": run["requests"] / seconds,
        **builds_of(pages),
        "login": run["logins"] / seconds,
        "member_page": run["member_pages"] / seconds,
        "publish": publishes,
    }
    if "view_counted" in costs.kinds:
        # Points measured before view counting was a kind of its own (2026-11-29 17:36) priced a detail build
        # with its view counted, as the cost measurement's builds were.
        kinds["view_counted"] = (
            first_views_from_one_address(run["detail_windows"], run["catalogue"]["details"]) / seconds
        )
    load = Load(
        arrivals={},
        kinds=kinds,
        builds_on_primary=on_primary(pages),
        cdn_hits=pages["cdn_hits"],
        cdn_cacheable=pages["cdn_cacheable"],
        cached_pages=pages["cached_pages"],
        publishes=publishes,
    )
    return load, tier_load(load, costs, seconds=seconds)


@dataclass(frozen=True)
class Check:
    what: str
    predicted: float
    measured: float
    margin: float  # relative (0.25: within 25 %) or, with ``points``, absolute percentage points
    points: bool = False

    @property
    def error(self) -> float:
        if self.points:
            return 100 * (self.predicted - self.measured)
        return (self.predicted - self.measured) / self.measured if self.measured else math.inf

    @property
    def holds(self) -> bool:
        return abs(self.error) <= (100 * self.margin if self.points else self.margin)


# Margins stated before the run (docs/scaling.md, "The measured point").
CPU_MARGIN = 0.25
COUNT_MARGIN = 0.25
SHARE_MARGIN = 0.10  # 10 percentage points
MIN_CORES = 0.05  # a tier using less than this over the run is reported, not judged


def check_run(point: Mapping, *, site: Site | None = None) -> list[Check]:
    """Predicted against measured for the point's load-test run."""
    costs = costs_from(point)
    run = point["run"]
    load, tiers = predict_run(run, costs, site=site)
    measured = run["measured"]
    seconds = run["seconds"]
    checks = []
    for tier in TIERS:
        cores_measured = measured["cpu"][tier] / seconds
        check = Check(
            f"{TIER_NAMES[tier]} CPU (cores)", tiers.cores[tier] / seconds, cores_measured, CPU_MARGIN
        )
        checks.append(
            check if max(cores_measured, check.predicted) >= MIN_CORES else replace(check, margin=math.inf)
        )
    total_measured = measured["statements_primary"] + measured["statements_replica"]
    checks += [
        Check(
            "statements on the primary",
            tiers.statements_primary,
            measured["statements_primary"],
            COUNT_MARGIN,
        ),
        Check(
            "statements on the replica",
            tiers.statements_replica,
            measured["statements_replica"],
            COUNT_MARGIN,
        ),
        Check(
            "replica's share of statements",
            tiers.replica_share,
            measured["statements_replica"] / total_measured if total_measured else 0.0,
            SHARE_MARGIN,
            points=True,
        ),
        Check("Redis commands", tiers.redis_commands, measured["redis_commands"], COUNT_MARGIN),
        Check("page builds", load.builds * seconds, measured["page_builds"], COUNT_MARGIN),
        Check(
            "CDN hit ratio (all requests)",
            load.cdn_hits / load.requests if load.requests else 0.0,
            measured["cdn_hits"] / run["requests"] if run["requests"] else 0.0,
            SHARE_MARGIN,
            points=True,
        ),
    ]
    return checks


# --- Printing -------------------------------------------------------------------------------------------------


def _n(value: float) -> str:
    if math.isinf(value):
        return "∞"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def render_checks(checks: Iterable[Check]) -> str:
    lines = ["| quantity | model | measured | difference | margin | holds |", "|---|---|---|---|---|---|"]
    for c in checks:
        if math.isinf(c.margin):
            lines.append(
                f"| {c.what} | {_n(c.predicted)} | {_n(c.measured)} | - | not judged (< {MIN_CORES} cores) | - |"
            )
            continue
        if c.points:
            row = f"| {c.what} | {100 * c.predicted:.1f} % | {100 * c.measured:.1f} % | {c.error:+.1f} points | ±{100 * c.margin:.0f} points"
        else:
            row = f"| {c.what} | {_n(c.predicted)} | {_n(c.measured)} | {100 * c.error:+.0f} % | ±{100 * c.margin:.0f} %"
        lines.append(f"{row} | {'yes' if c.holds else 'NO'} |")
    return "\n".join(lines)


def render_costs(costs: Costs) -> str:
    lines = [
        "| request kind | " + " | ".join(TIER_NAMES[t] for t in TIERS) + " | statements | Redis commands |",
        "|---|" + "---|" * (len(TIERS) + 2),
    ]
    for name, cost in costs.kinds.items():
        cells = [f"{1000 * cost.cpu.get(t, 0.0):.3f}" for t in TIERS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {cost.statements:.1f} | {cost.redis:.1f} |")
    return "\n".join(lines)


def render_sizing(rows: Iterable[Sizing], nodes: Nodes) -> str:
    lines = [
        "| requests/s | workbooks | CDN hits (egress) | origin req/s | web machines | worker machines | primary "
        f"cores (one machine: {nodes.max_db_cores}) | replicas | replica share of statements | Redis instances "
        "(page cache) | DB size | beyond one machine |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in rows:
        lines.append(
            f"| {s.requests:,.0f} | {s.workbooks / 1e6:,.0f}M | {100 * s.cdn_hit_ratio:.0f} % "
            f"({s.egress_gbit:.2g} Gbit/s) | {s.load.origin_requests:,.0f} | {s.nodes['web']} | {s.nodes['worker']} "
            f"| {s.primary_cores:,.0f} | {s.nodes['replica']} | {100 * s.tiers.replica_share:.0f} % "
            f"| {s.nodes['redis']} ({_size(s.redis_memory_gb)}) | {s.db_size_gb:,.0f} GB "
            f"| {', '.join(s.saturated) or '-'} |"
        )
    return "\n".join(lines)


def _size(gb: float) -> str:
    return f"{gb:,.1f} GB" if gb >= 1 else f"{1000 * gb:,.0f} MB"


def render_saturation(found: list[tuple[str, float]]) -> str:
    return "\n".join(f"  {i + 1}. {tier}: {_n(rate)} requests/s" for i, (tier, rate) in enumerate(found))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling_model", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--costs", type=Path, default=DEFAULT_POINT, help="a measured point (bench/scaling_point.py)"
    )
    parser.add_argument("--check", type=Path, help="print that point's run, predicted against measured")
    parser.add_argument("--requests", type=float, nargs="*", default=list(TRAFFIC))
    parser.add_argument("--workbooks", type=float, nargs="*", default=list(SIZES))
    parser.add_argument(
        "--replica-check", type=float, default=Site().replica_check, help="REPLICA_CHECK_SECONDS"
    )
    parser.add_argument(
        "--lists-bump-seconds",
        type=float,
        default=60.0,
        help="the what-if table: lists bumped at most this often (0: no such table)",
    )
    args = parser.parse_args(argv)
    site = Site(replica_check=args.replica_check)
    if args.check:
        point = json.loads(args.check.read_text())
        print(render_checks(check_run(point, site=site)))
        return 0
    point = json.loads(args.costs.read_text())
    costs = costs_from(point)
    nodes = Nodes()
    print(f"Unit costs (CPU ms per request kind), measured {point['measured_at']} ({args.costs}):\n")
    print(render_costs(costs))
    cases = [(name, mix, site, "") for name, mix in MIXES.items()]
    if args.lists_bump_seconds:
        what_if = replace(site, lists_bump_seconds=args.lists_bump_seconds)
        note = f", if lists were bumped at most every {args.lists_bump_seconds:g} s (not the site today)"
        cases.append(("gallery", MIXES["gallery"], what_if, note))
    for name, mix, case_site, note in cases:
        print(f"\nMix '{name}' ({', '.join(f'{k} {v:g}' for k, v in mix.items())} of arrivals){note}:\n")
        rows = [
            size(r, mix, workbooks=n, costs=costs, nodes=nodes, site=case_site)
            for r in args.requests
            for n in args.workbooks
        ]
        print(render_sizing(rows, nodes))
        for n in args.workbooks:
            found = first_to_saturate(mix, workbooks=n, costs=costs, nodes=nodes, site=case_site)
            print(
                f"\n  one of each ({nodes.web_cores}-core web, {nodes.db_cores}-core primary, no replica, "
                f"one Redis) at {n / 1e6:,.0f}M workbooks: saturates at"
            )
            print(render_saturation(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
