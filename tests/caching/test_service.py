"""The cache service: metrics, generations, the @cached decorator, stampede control, the in-process LRU."""

from __future__ import annotations

import threading
import time

import pytest

from sigma_playground.caching import keys, service
from sigma_playground.caching.local import LocalLRUCache
from tests.caching.conftest import cache_hits


def test_hits_and_misses_are_counted_by_kind():
    before_miss, before_hit = cache_hits("function", "miss"), cache_hits("function", "hit")
    calls = []

    @service.cached("square", ttl=30, key=lambda n: str(n))
    def square(n: int) -> int:
        calls.append(n)
        return n * n

    assert square(4) == 16 and square(4) == 16 and square(5) == 25
    assert calls == [4, 5]
    assert cache_hits("function", "miss") - before_miss == 2
    assert cache_hits("function", "hit") - before_hit == 1


def test_latency_is_observed_by_operation_and_kind():
    from prometheus_client import REGISTRY

    def count() -> float:
        return (
            REGISTRY.get_sample_value(
                "sigma_cache_operation_seconds_count", {"op": "get", "kind": "function"}
            )
            or 0
        )

    before = count()
    service.get_entry(keys.KIND_FUNCTION, keys.function("x", "1"))
    assert count() == before + 1


def test_generations_invalidate_with_one_increment():
    calls = []

    @service.cached("lists_thing", ttl=30, key=lambda: "", namespaces=lambda: [keys.LISTS])
    def thing() -> int:
        calls.append(1)
        return len(calls)

    assert thing() == 1 and thing() == 1
    service.bump(keys.LISTS)
    assert thing() == 2
    gens = service.generations([keys.LISTS])
    service.bump(keys.LISTS)
    assert service.generations([keys.LISTS]) == {keys.LISTS: gens[keys.LISTS] + 1}


def _delete_generation(namespace: str) -> None:
    """As an eviction or a Redis restart would."""
    from django.core.cache import cache

    if service.backend().is_redis:
        service.durable().client.delete(keys.generation(namespace))
    else:
        cache.delete(keys.generation(namespace))


def test_a_missing_generation_comes_back_with_a_value_never_used_before():
    """Issue 12: a generation key evicted (or lost with a Redis restart) is recreated from the clock, by a
    read or by a bump, so nothing cached under an earlier value can become current again."""
    seen = []
    for _ in range(3):
        seen.append(service.generations(["wb"])["wb"])
        service.bump("wb")
    seen.append(service.generations(["wb"])["wb"])
    assert seen == sorted(set(seen)) and seen[0] > 10**15  # microseconds since the epoch
    _delete_generation("wb")
    recreated = service.generations(["wb"])["wb"]  # a read recreates it ...
    print(f"generation before deletion {seen[-1]}, recreated as {recreated}")
    assert recreated > max(seen)
    _delete_generation("wb")
    service.bump("wb")  # ... and so does a bump
    assert service.generations(["wb"])["wb"] > recreated


def test_an_old_fragment_never_becomes_current_after_its_generation_is_lost():
    """The issue's failure: entries embedding generation 1..5 stayed in the cache, the key was evicted and
    counted up again from 0, and the entry built at 5 came back as current (7 favorites against 9)."""
    shown = {"favorites": 7}

    @service.cached("favs", ttl=60, key=lambda: "", namespaces=lambda: ["workbook:1"])
    def favorites() -> int:
        return shown["favorites"]

    for _ in range(5):
        service.bump("workbook:1")
    assert favorites() == 7  # cached under the current generation
    shown["favorites"] = 9
    service.bump("workbook:1")
    assert favorites() == 9
    _delete_generation("workbook:1")
    for _ in range(7):  # far enough to pass every value used before, had the key restarted from 0
        assert favorites() == 9
        service.bump("workbook:1")


def test_keys_are_versioned_and_never_contain_raw_input():
    key = keys.page("list", "/workbooks/?q=<script>", secure=False)
    assert key.startswith(f"sp:{keys.KEY_VERSION}:page:list:")
    assert "<script>" not in key and len(key) < 80


def _stampede(build_seconds: float, *, stale: bool) -> tuple[list[str], int]:
    key = keys.function("hot", f"stampede-{stale}-{time.time()}")
    if stale:
        service.set_entry(keys.KIND_FUNCTION, key, "old", ttl=0.01)  # expired, still within its grace
        time.sleep(0.05)
    builds = []
    lock = threading.Lock()

    def build() -> service.Built:
        with lock:
            builds.append(1)
        time.sleep(build_seconds)
        return service.Built(result="new", value="new")

    results: list[str] = []
    barrier = threading.Barrier(50)

    def reader() -> None:
        barrier.wait()
        value = service.get_or_build(keys.KIND_FUNCTION, key, build, ttl=30)
        with lock:
            results.append(value)

    threads = [threading.Thread(target=reader) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, len(builds)


def test_stampede_on_an_expired_hot_key_rebuilds_once_and_serves_stale_meanwhile():
    results, builds = _stampede(0.3, stale=True)
    assert builds == 1
    assert len(results) == 50 and set(results) <= {"old", "new"} and "old" in results


def test_stampede_on_a_missing_key_rebuilds_once_and_the_others_wait():
    results, builds = _stampede(0.3, stale=False)
    assert builds == 1
    assert results == ["new"] * 50


@pytest.mark.redis
def test_stampede_against_redis():
    assert service.backend().is_redis
    results, builds = _stampede(0.2, stale=True)
    assert builds == 1 and len(results) == 50


# --- In-process LRU -----------------------------------------------------------------------------------------


def test_local_cache_is_bounded_and_evicts_least_recently_used():
    lru = LocalLRUCache("test_lru", max_entries=3, ttl=60)
    for k in "abc":
        lru.set(k, k.upper())
    assert lru.get("a") == "A"  # a is now the most recently used
    lru.set("d", "D")  # evicts b, the least recently used
    assert lru.get("b") is None
    assert [lru.get(k) for k in "acd"] == ["A", "C", "D"]
    assert len(lru) == 3


def test_local_cache_expires_entries():
    lru = LocalLRUCache("test_ttl", max_entries=10, ttl=0.05)
    lru.set("k", 1)
    assert lru.get("k") == 1
    time.sleep(0.08)
    assert lru.get("k") is None and len(lru) == 0


def test_local_cache_is_thread_safe_and_counts_hits():
    from prometheus_client import REGISTRY

    lru = LocalLRUCache("test_threads", max_entries=50, ttl=60)

    def work(seed: int) -> None:
        for i in range(2000):
            key = str((seed * 7 + i) % 80)
            if lru.get(key) is None:
                lru.set(key, i)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(lru) <= 50
    hits = REGISTRY.get_sample_value(
        "sigma_local_cache_requests_total", {"cache": "test_threads", "result": "hit"}
    )
    misses = REGISTRY.get_sample_value(
        "sigma_local_cache_requests_total", {"cache": "test_threads", "result": "miss"}
    )
    assert hits + misses == 8 * 2000 and hits > 0


def test_local_cache_rejects_nonsense_sizes():
    with pytest.raises(ValueError):
        LocalLRUCache("bad", max_entries=0)


def test_outage_warnings_are_rate_limited():
    import logging

    from sigma_playground.log_filters import RateLimitFilter

    flt = RateLimitFilter(per_seconds=60)
    records = [
        logging.LogRecord("sigma_playground.cache", logging.WARNING, "", 0, "cache down %s", ("x",), None)
    ]
    records += [
        logging.LogRecord("sigma_playground.cache", logging.WARNING, "", 0, "cache down %s", ("x",), None)
        for _ in range(99)
    ]
    assert sum(flt.filter(r) for r in records) == 1


def test_a_dead_redis_costs_milliseconds_not_a_timeout_per_request(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.25, "SOCKET_TIMEOUT": 0.25, "IGNORE_EXCEPTIONS": True},
        }
    }
    service.reset_backend()
    started = time.perf_counter()
    for i in range(200):
        assert (
            service.get_or_build(keys.KIND_FUNCTION, f"k{i}", lambda: service.Built("v", "v"), ttl=5) == "v"
        )
    assert time.perf_counter() - started < 1.0
    assert service.is_degraded()


def test_a_failed_rebuild_serves_the_stale_copy_in_hand():
    """Issue 12: a rebuild that raises, or builds an error page, hands the reader the stale copy, not the error."""
    key = keys.function("stale", "1")
    service.set_entry(keys.KIND_FUNCTION, key, "old", ttl=-1)  # stored already stale (kept for the grace)

    def raising() -> service.Built:
        raise RuntimeError("the database is down")

    assert service.get_or_build(keys.KIND_FUNCTION, key, raising, ttl=30) == "old"
    failed = service.Built(result="503 page", value=None, store=False, failed=True)
    assert service.get_or_build(keys.KIND_FUNCTION, key, lambda: failed, ttl=30) == "old"
    fresh = service.Built(result="new", value="new")
    assert service.get_or_build(keys.KIND_FUNCTION, key, lambda: fresh, ttl=30) == "new"
    with pytest.raises(RuntimeError):  # with no copy in hand the error stands
        service.get_or_build(keys.KIND_FUNCTION, keys.function("stale", "2"), raising, ttl=30)
