"""The database circuit breaker (issue 12): with PostgreSQL unreachable, a styled 503 in milliseconds."""

from __future__ import annotations

import time

import pytest
from django.db import OperationalError, connection
from django.test import Client

from sigma_playground import db_breaker
from sigma_playground.db_breaker import BREAKER


@pytest.fixture(autouse=True)
def _closed_breaker():
    BREAKER.reset()
    yield
    BREAKER.reset()


def test_outages_are_told_from_other_database_errors():
    import psycopg
    from psycopg import errors
    from psycopg_pool import PoolTimeout

    def wrapped(exc: Exception) -> OperationalError:
        django_exc = OperationalError(str(exc))
        django_exc.__cause__ = exc
        return django_exc

    assert db_breaker.is_outage(wrapped(psycopg.OperationalError("connection refused")))
    assert db_breaker.is_outage(wrapped(errors.AdminShutdown("terminating connection")))
    assert db_breaker.is_outage(
        wrapped(PoolTimeout("cannot connect: the pool's connection attempts are failing"))
    )
    assert db_breaker.is_outage(db_breaker.DatabaseUnavailable("open"))
    assert not db_breaker.is_outage(wrapped(errors.QueryCanceled("statement timeout")))
    assert not db_breaker.is_outage(wrapped(PoolTimeout("couldn't get a connection after 10.00 sec")))
    assert not db_breaker.is_outage(ValueError("no"))


def test_the_breaker_fails_fast_then_lets_one_probe_through(settings):
    settings.DB_BREAKER_SECONDS = 0.2
    BREAKER.failed(OperationalError("down"))
    with pytest.raises(db_breaker.DatabaseUnavailable):
        BREAKER.before_connect()
    time.sleep(0.25)
    BREAKER.before_connect()  # the probe
    with pytest.raises(db_breaker.DatabaseUnavailable):
        BREAKER.before_connect()  # everyone else, while the probe runs
    BREAKER.succeeded()
    BREAKER.before_connect()
    BREAKER.before_connect()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_page_needing_the_database_gets_the_styled_503_with_retry_after(monkeypatch, settings):
    settings.DB_BREAKER_SECONDS = 30
    BREAKER.failed(OperationalError("down"))
    connection.close()  # the next query asks for a new connection, as the next request would
    started = time.perf_counter()
    response = Client().get("/workbooks/")
    elapsed = time.perf_counter() - started
    print(f"503 while the breaker is open: {elapsed * 1000:.1f} ms")
    assert response.status_code == 503
    assert 1 <= int(response["Retry-After"]) <= 30
    assert b"We&#x27;ll be right back" in response.content or b"We'll be right back" in response.content
    assert b"site.css" in response.content  # styled, not the bare 500 page
    assert elapsed < 1.0


@pytest.mark.django_db
def test_an_outage_raised_outside_a_view_also_gets_the_503(monkeypatch, settings):
    """The session or the user lookup (middleware, not the view) hits the database first."""
    from django.contrib.sessions.middleware import SessionMiddleware

    def broken(self, request, response):
        raise db_breaker.DatabaseUnavailable("open")

    monkeypatch.setattr(SessionMiddleware, "process_response", broken)
    response = Client(raise_request_exception=False).get("/workbooks/")
    assert response.status_code == 503 and response["Retry-After"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_healthz_answers_and_readyz_names_the_database_at_once(settings):
    settings.DB_BREAKER_SECONDS = 30
    BREAKER.failed(OperationalError("down"))
    connection.close()
    assert Client().get("/healthz").status_code == 200
    started = time.perf_counter()
    ready = Client().get("/readyz")
    elapsed = time.perf_counter() - started
    print(f"/readyz with the breaker open: {elapsed * 1000:.1f} ms")
    assert ready.status_code == 503
    assert ready.json()["failing"] == ["database"]
    assert ready.json()["checks"]["database"]["detail"] == "DatabaseUnavailable"
    assert elapsed < 1.0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_unreachable_server_trips_the_breaker_without_waiting_for_the_pool_timeout(settings):
    """A pool whose connection attempts fail answers at once, not after DB_POOL_TIMEOUT (60 s)."""
    from sigma_playground.postgresql.base import DatabaseWrapper

    params = {**connection.settings_dict, "PORT": "1"}  # nothing listens there
    params["OPTIONS"] = {**params["OPTIONS"], "pool": {"min_size": 1, "max_size": 2, "timeout": 60.0}}
    wrapper = DatabaseWrapper(params, alias="breaker_test")
    try:
        started = time.perf_counter()
        with pytest.raises(OperationalError) as failed:
            wrapper.ensure_connection()
        elapsed = time.perf_counter() - started
        print(f"unreachable server detected in {elapsed * 1000:.0f} ms (pool timeout 60 s)")
        assert elapsed < 1.0
        assert db_breaker.is_outage(failed.value)
        assert db_breaker.alias_of(failed.value) == "breaker_test"
        # Each alias has its own breaker (issue 20: a replica's outage is not the primary's).
        assert db_breaker.breaker("breaker_test").is_open()
        assert not BREAKER.is_open()
        started = time.perf_counter()
        with pytest.raises(db_breaker.DatabaseUnavailable):
            wrapper.ensure_connection()
        assert time.perf_counter() - started < 0.05
    finally:
        pool = DatabaseWrapper._connection_pools.pop("breaker_test", None)
        if pool is not None:
            pool.close()


def test_readyz_warns_when_the_durable_redis_could_evict(monkeypatch):
    from sigma_playground import health
    from sigma_playground.caching import service

    class FakeClient:
        def __init__(self, info):
            self._info = info

        def info(self, section):
            return self._info

    class FakeBackend:
        is_redis = True

        def __init__(self, info):
            self.client = FakeClient(info)

    monkeypatch.setattr(service, "durable", lambda: FakeBackend({"maxmemory_policy": "allkeys-lru"}))
    [warning] = health.durable_redis_warnings()
    assert "allkeys-lru" in warning
    full = {"maxmemory_policy": "noeviction", "maxmemory": 1000, "used_memory": 950}
    monkeypatch.setattr(service, "durable", lambda: FakeBackend(full))
    [warning] = health.durable_redis_warnings()
    assert "95%" in warning
    fine = {"maxmemory_policy": "noeviction", "maxmemory": 1000, "used_memory": 100}
    monkeypatch.setattr(service, "durable", lambda: FakeBackend(fine))
    assert health.durable_redis_warnings() == []
