"""The scaling model's pure functions (bench/scaling_model.py): the cache formulas against simulations of the
same caches, the sums over millions of pages, the traffic's request kinds, the tiers and their sizes, which
tier saturates first, and the check of a measured point."""

from __future__ import annotations

import json
import math
import random

import pytest

from bench import scaling_model as m

TIERS_ZERO = dict.fromkeys(m.TIERS, 0.0)


def costs(**overrides: m.Cost) -> m.Costs:
    """Round numbers: every request 0.05 ms of CDN; a detail hit 1 ms of gunicorn; a build of any page 30 ms of
    gunicorn and 6 statements (5 of them reads a replica can take, 2 ms of its CPU), a sign-in 50 ms, a
    logged-in page 15 ms, a publish 60 ms of gunicorn and 20 ms of Celery."""
    kinds = {
        "cdn_pass": m.Cost({**TIERS_ZERO, "cdn": 0.00005}),
        "detail_hit": m.Cost({**TIERS_ZERO, "proxy": 0.0001, "web": 0.001}, redis=2),
        **{
            f"build_{name}": m.Cost(
                {**TIERS_ZERO, "proxy": 0.0001, "web": 0.030, "replica": 0.002},
                statements=6,
                redis=15,
                replica_statements=5,
            )
            for name in ("detail", "list", "tag", "profile", "search")
        },
        "view_counted": m.Cost({**TIERS_ZERO, "web": 0.0002, "primary": 0.0005}, statements=0.5, redis=7),
        "login": m.Cost({**TIERS_ZERO, "web": 0.050, "primary": 0.001}, statements=10, redis=3),
        "member_page": m.Cost({**TIERS_ZERO, "web": 0.015, "primary": 0.001}, statements=4, redis=4),
        "publish": m.Cost(
            {**TIERS_ZERO, "web": 0.060, "worker": 0.020, "primary": 0.003}, statements=20, redis=60
        ),
    }
    kinds.update(overrides)
    return m.Costs(kinds=kinds, page_bytes=20_000, response_bytes=6_000, db_bytes_per_workbook=20_000)


# --- The cache formulas, against simulations ---------------------------------------------------------------


def simulate_page(
    rate: float, ttl: float, publishes: float, *, check: float, margin: float, seconds: float = 40_000
):
    """One page in a cache: Poisson requests at ``rate``, entries kept ``ttl`` seconds from the build and
    dropped by every publish (Poisson at ``publishes``); a build reads the primary when the last publish is less
    than W ago, W uniform on [margin, margin + check]. Returns (hit ratio, share of builds on the primary)."""
    rng = random.Random(5)
    t = 0.0
    next_publish = rng.expovariate(publishes) if publishes else math.inf
    last_publish = -math.inf
    built_at = None
    hits = builds = primary = 0
    while t < seconds:
        t += rng.expovariate(rate)
        while next_publish <= t:
            last_publish = next_publish
            built_at = None if built_at is not None and built_at < last_publish else built_at
            next_publish += rng.expovariate(publishes)
        if built_at is not None and t - built_at < ttl and built_at >= last_publish:
            hits += 1
            continue
        builds += 1
        built_at = t
        if t - last_publish < margin + rng.random() * check:
            primary += 1
    return hits / (hits + builds), primary / builds if builds else 0.0


@pytest.mark.parametrize(
    ("rate", "ttl", "publishes"),
    [(0.05, 54, 0.0), (0.5, 54, 0.3), (5.0, 54, 0.5), (0.02, 54, 2.0), (20.0, 54, 3.0), (1.0, 10, 0.1)],
)
def test_hit_ratio_and_primary_share_match_a_simulated_cache(rate, ttl, publishes):
    simulated_hits, simulated_primary = simulate_page(rate, ttl, publishes, check=1.0, margin=0.1)
    hits = m.hit_ratio(rate, m.effective_ttl(ttl, publishes))
    primary = m.primary_share(rate, publishes, ttl=ttl, check=1.0, margin=0.1)
    # Exponential lifetimes stand in for fixed ones (a fixed TTL and Poisson purges): a few points at most.
    assert hits == pytest.approx(simulated_hits, abs=0.04)
    assert primary == pytest.approx(simulated_primary, abs=0.04)


def test_cache_formulas_at_their_limits():
    assert m.hit_ratio(0, 60) == 0 and m.hit_ratio(5, 0) == 0 and m.hit_ratio(1, math.inf) == 1
    assert m.hit_ratio(1, 1) == 0.5
    assert m.effective_ttl(60, 0) == 60 and m.effective_ttl(60, 1 / 60) == pytest.approx(30)
    assert m.primary_share(3, 0, ttl=54, check=1, margin=0.1) == 0  # no publish: every build on a replica
    # A hot page is rebuilt at once after a publish: on the primary. (Expiries, 1/54 of the builds here, come at
    # any time: on the primary only if a publish was in the last W.)
    assert m.primary_share(1e6, 1, ttl=1e12, check=1, margin=0.1) == pytest.approx(1)
    assert m.primary_share(1e6, 1, ttl=54, check=1, margin=0.1) == pytest.approx(
        (1 + (1 / 54) * (1 - (math.exp(-0.1) - math.exp(-1.1)))) / (1 + 1 / 54)
    )
    assert m.primary_share(1e-9, 1e-9, ttl=54, check=1, margin=0.1) == pytest.approx(0, abs=1e-6)
    # A shorter REPLICA_CHECK_SECONDS sends fewer rebuilds to the primary.
    assert m.primary_share(2, 1, ttl=54, check=0.1, margin=0.1) < m.primary_share(
        2, 1, ttl=54, check=1, margin=0.1
    )


def test_popularity_groups_sum_to_one_and_buckets_agree_with_every_rank():
    for pages, zipf in ((1, 0.9), (500, 0.0), (1_500, 0.9), (50_000, 1.0), (10**8, 0.9)):
        groups = m.popularity(pages, zipf)
        assert sum(count for count, _ in groups) == pytest.approx(pages)
        assert sum(count * p for count, p in groups) == pytest.approx(1)
    exact = m.popularity(50_000, 0.9, exact_up_to=50_000)
    bucketed = m.popularity(50_000, 0.9)
    assert len(bucketed) <= 500 + 300 < len(exact)
    for rate, ttl in ((100, 5), (1_000, 60), (50_000, 2)):
        ratio = [sum(n * p * m.hit_ratio(rate * p, ttl) for n, p in groups) for groups in (exact, bucketed)]
        assert ratio[1] == pytest.approx(ratio[0], abs=0.01)
    uniform = m.popularity(200, 0)
    assert uniform == ((200.0, 1 / 200),)


# --- Traffic and tiers ------------------------------------------------------------------------------------------


def test_arrivals_make_the_requests_asked_for():
    assert m.arrivals_for(1_000, {"design": 1}) == {"design": pytest.approx(200)}  # 5 requests each
    gallery = m.arrivals_for(3_280, m.MIXES["gallery"])  # 0.9 x 3 + 0.08 x 6 + 0.02 x 5 = 3.28 a arrival
    assert gallery == {
        "anonymous": pytest.approx(900),
        "logged_in": pytest.approx(80),
        "design": pytest.approx(20),
    }


def test_publishes_empty_the_caches_and_send_rebuilds_to_the_primary():
    quiet = m.load_at(10_000, {"anonymous": 1}, workbooks=1_000_000)
    busy = m.load_at(10_000, {"anonymous": 0.98, "design": 0.02}, workbooks=1_000_000)
    assert quiet.publishes == 0 and not any(quiet.builds_on_primary.values())
    assert busy.publishes > 0
    assert busy.cdn_hits / busy.cdn_cacheable < quiet.cdn_hits / quiet.cdn_cacheable
    assert busy.builds > quiet.builds
    assert busy.builds_on_primary["build_list"] > 0  # home and the lists: rebuilt right after each publish
    assert 0 < sum(busy.builds_on_primary.values()) < busy.builds
    assert set(busy.builds_on_primary) == {
        f"build_{n}" for n in ("detail", "list", "tag", "profile", "search")
    }
    # Every anonymous view is a CDN hit, a detail hit or a build.
    anonymous = 10_000 * 0.98 * 3 / (0.98 * 3 + 0.02 * 5)
    assert busy.cdn_hits + busy.kinds["detail_hit"] + busy.builds == pytest.approx(anonymous)
    # More workbooks, a longer tail: fewer hits.
    bigger = m.load_at(10_000, {"anonymous": 1}, workbooks=100_000_000)
    assert bigger.builds > quiet.builds


def test_tier_load_adds_the_kinds_and_moves_builds_that_read_the_primary():
    load = m.Load(
        arrivals={},
        kinds={"cdn_pass": 100, "build_detail": 10, "login": 2},
        builds_on_primary={"build_detail": 4},
        cdn_hits=80,
        cdn_cacheable=90,
        cached_pages=0,
        publishes=0,
    )
    background = {"web": 0.01, "statements_primary": 3, "redis_commands": 7}
    tiers = m.tier_load(load, m.Costs(kinds=costs().kinds, background=background))
    assert tiers.cores["cdn"] == pytest.approx(100 * 0.00005)
    assert tiers.cores["web"] == pytest.approx(10 * 0.030 + 2 * 0.050 + 0.01)
    assert tiers.cores["replica"] == pytest.approx(6 * 0.002)
    assert tiers.cores["primary"] == pytest.approx(4 * 0.002 + 2 * 0.001)
    # Each build: 1 statement on the primary whatever it reads, 5 reads on a replica or on the primary.
    assert tiers.statements_replica == pytest.approx(6 * 5)
    assert tiers.statements_primary == pytest.approx(10 * 1 + 4 * 5 + 2 * 10 + 3)
    assert tiers.replica_share == pytest.approx(30 / (30 + 53))
    assert tiers.redis_commands == pytest.approx(10 * 15 + 2 * 3 + 7)
    over_a_minute = m.tier_load(load, m.Costs(kinds=costs().kinds, background=background), seconds=60)
    assert over_a_minute.cores["web"] == pytest.approx(60 * tiers.cores["web"])


def test_sizes_count_machines_at_the_cpu_target_and_flag_a_primary_no_machine_holds():
    nodes = m.Nodes(web_cores=10, max_db_cores=8)
    small = m.size(100, {"design": 1}, workbooks=1_000, costs=costs(), nodes=nodes)
    # 20 arrivals/s: 20 x (50 + 15 + 60) ms of gunicorn = 2.5 cores; 7 cores a machine at 70 %.
    assert small.tiers.cores["web"] == pytest.approx(2.5)
    assert small.nodes["web"] == 1 and small.nodes["worker"] == 1 and small.nodes["replica"] == 0
    assert small.primary_fits and not small.saturated
    big = m.size(100_000, {"design": 1}, workbooks=1_000, costs=costs(), nodes=nodes)
    assert big.nodes["web"] == math.ceil(2_500 / 7)
    assert not big.primary_fits and big.saturated == ["primary CPU"]
    assert big.connections_direct == big.nodes["web"] * 21 * 3


def test_the_first_tier_to_saturate_is_the_one_with_the_least_headroom():
    found = dict(m.first_to_saturate({"design": 1}, workbooks=1_000, costs=costs()))
    # One 8-core web machine at 70 %: 5.6 cores / 0.125 CPU s per arrival = 44.8 arrivals/s = 224 requests/s.
    assert found["web"] == pytest.approx(224, rel=1e-3)
    assert found["cdn"] == pytest.approx(8 * 0.7 / 0.00005, rel=1e-3)
    assert found["redis"] == pytest.approx(math.inf)  # no CPU cost given: never
    order = [tier for tier, _ in m.first_to_saturate({"design": 1}, workbooks=1_000, costs=costs())]
    assert order[0] == "web"


# --- The measured point -----------------------------------------------------------------------------------------


def point(**measured: float) -> dict:
    unit = {
        name: {
            "cpu": dict(cost.cpu),
            "statements": cost.statements,
            "statements_replica": cost.replica_statements,
            "redis": cost.redis,
        }
        for name, cost in costs().kinds.items()
    }
    run = {
        "seconds": 60.0,
        "requests": 3_000,
        "anonymous_views": {
            "detail": 800,
            "list": 400,
            "home": 300,
            "tag": 200,
            "profile": 200,
            "search": 100,
        },
        "logins": 60,
        "member_pages": 200,
        "publishes": 20,
        "catalogue": {"details": 300, "tags": 60, "profiles": 90},
        "detail_windows": [
            {"window": 1, "before": "inf", "views": 500},
            {"window": 2, "before": 100, "views": 300},
        ],
    }
    load, tiers = m.predict_run(
        run,
        m.Costs(kinds=costs().kinds, background={}, page_bytes=1, response_bytes=1, db_bytes_per_workbook=1),
    )
    run["measured"] = {
        "cpu": dict(tiers.cores),
        "statements_primary": tiers.statements_primary,
        "statements_replica": tiers.statements_replica,
        "redis_commands": tiers.redis_commands,
        "page_builds": load.builds * 60,
        "cdn_hits": load.cdn_hits * 60,
        **measured,
    }
    return {
        "measured_at": "2026-11-29 18:00 UTC",
        "unit_costs": unit,
        "background": {},
        "sizes": {"page_bytes": 20_000, "response_bytes": 6_000, "db_bytes_per_workbook": 20_000},
        "run": run,
    }


def test_a_run_that_behaves_as_predicted_holds_and_one_that_does_not_fails():
    checks = m.check_run(point())
    judged = [c for c in checks if not math.isinf(c.margin)]
    assert judged and all(c.holds for c in judged)
    assert {c.what for c in checks} >= {
        "replica's share of statements",
        "page builds",
        "CDN hit ratio (all requests)",
    }

    exact = point()
    slow = point(cpu={**exact["run"]["measured"]["cpu"], "web": exact["run"]["measured"]["cpu"]["web"] * 1.5})
    failing = {c.what: c for c in m.check_run(slow)}
    assert not failing["gunicorn CPU (cores)"].holds
    assert failing["gunicorn CPU (cores)"].error == pytest.approx(1 / 1.5 - 1)
    shifted = point(statements_replica=0.0)
    share = {c.what: c for c in m.check_run(shifted)}["replica's share of statements"]
    assert share.points and not share.holds and share.measured == 0


def test_distinct_pages_match_uniform_picks_and_only_first_views_from_one_address_count():
    rng = random.Random(9)
    for views, pages in ((10, 250), (250, 250), (1_000, 250), (40, 3)):
        mean = sum(len({rng.randrange(pages) for _ in range(views)}) for _ in range(2_000)) / 2_000
        assert m.distinct_pages(views, pages) == pytest.approx(mean, rel=0.01)
    assert m.distinct_pages(math.inf, 250) == 250 and m.distinct_pages(0, 250) == 0
    # A window in which the address had viewed every page already counts nothing; a fresh one counts the
    # pages first viewed in the interval, not those of the views before it.
    assert m.first_views_from_one_address([{"before": "inf", "views": 1_000}], 250) == 0
    fresh = m.first_views_from_one_address([{"before": 100, "views": 300}], 250)
    assert fresh == pytest.approx(m.distinct_pages(400, 250) - m.distinct_pages(100, 250))
    assert 0 < fresh < 250 - m.distinct_pages(100, 250) + 1


def test_counted_views_are_their_own_kind_in_production_and_in_the_run():
    load = m.load_at(10_000, {"anonymous": 1}, workbooks=1_000_000)
    assert load.kinds["view_counted"] == pytest.approx(load.kinds["detail_hit"] + load.kinds["build_detail"])
    half = m.load_at(10_000, {"anonymous": 1}, workbooks=1_000_000, site=m.Site(first_view_share=0.5))
    assert half.kinds["view_counted"] == pytest.approx(load.kinds["view_counted"] / 2)
    with_counting = m.tier_load(load, costs())
    without = m.tier_load(half, costs())
    assert with_counting.redis_commands - without.redis_commands == pytest.approx(
        7 * load.kinds["view_counted"] / 2
    )
    run = point()["run"]
    predicted, tiers = m.predict_run(run, costs())
    expected = m.distinct_pages(400, 300) - m.distinct_pages(100, 300)  # window 1 counts nothing
    assert predicted.kinds["view_counted"] * run["seconds"] == pytest.approx(expected)
    # A point measured before view counting had a kind of its own: its detail costs include the counting.
    older = m.Costs(kinds={k: v for k, v in costs().kinds.items() if k != "view_counted"})
    _, old_tiers = m.predict_run(run, older)
    assert tiers.redis_commands - old_tiers.redis_commands == pytest.approx(7 * expected)


def test_the_tables_print_from_a_point_file(tmp_path, capsys):
    path = tmp_path / "point.json"
    path.write_text(json.dumps(point()))
    assert m.main(["--costs", str(path), "--requests", "1000", "--workbooks", "1000000"]) == 0
    out = capsys.readouterr().out
    assert "Mix 'design'" in out and "Mix 'gallery'" in out and "saturates at" in out
    assert m.main(["--check", str(path)]) == 0
    assert "replica's share of statements" in capsys.readouterr().out


def test_the_point_solves_a_detail_hit_and_a_counted_view_net_of_the_pages_its_windows_rebuilt():
    from bench.scaling_point import hit_and_view

    def cost(web: float, redis: float, misses: float = 0.0) -> dict:
        return {
            "cpu": {"web": web, "primary": web / 10},
            "statements": redis / 2,
            "statements_replica": 0.0,
            "redis": redis,
            "page_misses": misses,
            "seconds": 1.0,
        }

    hit, view, built = (0.001, 2.0), (0.0005, 7.0), (0.030, 20.0)  # a build with its view counted
    # 2,000 seen views of which 20 were rebuilt (a build less its counting); 400 first views, 8 rebuilt.
    seen = [0.99 * h + 0.01 * (b - v) for h, v, b in zip(hit, view, built, strict=True)]
    first = [0.98 * (h + v) + 0.02 * b for h, v, b in zip(hit, view, built, strict=True)]
    h, v = hit_and_view(cost(*seen, misses=20), cost(*first, misses=8), cost(*built), 2_000, 400)
    assert h["cpu"]["web"] == pytest.approx(hit[0]) and h["redis"] == pytest.approx(hit[1])
    assert v["cpu"]["web"] == pytest.approx(view[0]) and v["redis"] == pytest.approx(view[1])
    assert v["statements"] == pytest.approx(view[1] / 2) and v["units"] == 400
    # Nothing rebuilt: the difference of the two windows.
    h, v = hit_and_view(cost(*hit), cost(hit[0] + view[0], hit[1] + view[1]), cost(*built), 2_000, 400)
    assert v["redis"] == pytest.approx(7.0) and h["redis"] == pytest.approx(2.0)
