"""Settings read from the environment, and the services they select."""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache
from django.db import connection

from tests.test_production_settings import run

SETTINGS_PROBE = """
import json, django
django.setup()
from django.conf import settings as s
db = s.DATABASES["default"]
print(json.dumps({
    "engine": db["ENGINE"], "conn_max_age": db.get("CONN_MAX_AGE"), "health": db.get("CONN_HEALTH_CHECKS"),
    "server_side_cursors": not db.get("DISABLE_SERVER_SIDE_CURSORS", False), "pooler": s.DATABASE_POOLER,
    "options": db.get("OPTIONS", {}), "cache": s.CACHES["default"]["BACKEND"],
    "cache_location": s.CACHES["default"].get("LOCATION"), "broker": s.CELERY_BROKER_URL,
    "eager": s.CELERY_TASK_ALWAYS_EAGER, "session": s.SESSION_ENGINE, "debug": s.DEBUG,
    "durable_location": s.CACHES.get("durable", {}).get("LOCATION"),
}))
"""


def probe(env: dict[str, str]) -> dict:
    base = {
        "DATABASE_URL": "",
        "DATABASE_POOLER": "",
        "REDIS_URL": "",
        "REDIS_DURABLE_URL": "",
        "DJANGO_SETTINGS_MODULE": "sigma_playground.settings",
    }
    result = run(["-c", SETTINGS_PROBE], {**base, **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_durable_redis_defaults_to_the_cache_one_and_carries_the_broker():
    same = probe({"REDIS_URL": "redis://cache.internal:6380/2"})
    assert same["durable_location"] == "redis://cache.internal:6380/2"
    assert same["broker"] == "redis://cache.internal:6380/3"
    two = probe(
        {"REDIS_URL": "redis://cache.internal:6380/0", "REDIS_DURABLE_URL": "redis://durable.internal:6381/4"}
    )
    assert two["cache_location"] == "redis://cache.internal:6380/0"
    assert two["durable_location"] == "redis://durable.internal:6381/4"
    assert (
        two["broker"] == "redis://durable.internal:6381/5"
    )  # the broker lives with what must not be evicted


def test_embedded_defaults_with_nothing_set():
    data = probe({})
    assert data["engine"] == "django.db.backends.sqlite3"
    assert "journal_mode=WAL" in data["options"]["init_command"]
    assert data["cache"] == "django.core.cache.backends.locmem.LocMemCache"
    assert data["eager"] is True
    assert data["debug"] is True
    assert data["session"] == "sigma_playground.sessions"  # cached_db behind the cache breaker


def test_database_and_redis_urls_select_postgres_pool_and_redis():
    data = probe(
        {
            "DATABASE_URL": "postgres://app:pw@db.internal:5433/gallery",
            "REDIS_URL": "redis://cache.internal:6380/2",
            "DB_POOL_MAX_SIZE": "12",
        }
    )
    assert data["engine"] == "sigma_playground.postgresql"  # Django's, with the circuit breaker
    assert data["conn_max_age"] == 0 and data["health"] is True
    assert data["options"]["pool"] == {"min_size": 5, "max_size": 12, "timeout": 60.0}
    assert "statement_timeout=30000" in data["options"]["options"]
    assert data["cache"] == "django_redis.cache.RedisCache"
    assert data["cache_location"] == "redis://cache.internal:6380/2"
    assert data["broker"] == "redis://cache.internal:6380/3"  # a separate database number
    assert data["eager"] is False


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATABASE_URL": "mysql://x@y/z"}, "DATABASE_URL must be a postgres"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL must be a redis"),
        (
            {"DB_POOL_MAX_SIZE": "lots", "DATABASE_URL": "postgres://a@b/c"},
            "DB_POOL_MAX_SIZE must be an integer",
        ),
        ({"DEBUG": "maybe"}, "DEBUG must be a boolean"),
        ({"DJANGO_ENV": "staging"}, "DJANGO_ENV must be"),
    ],
)
def test_bad_environment_values_fail_with_a_clear_message(env, message):
    base = {
        "DATABASE_URL": "",
        "DATABASE_POOLER": "",
        "REDIS_URL": "",
        "REDIS_DURABLE_URL": "",
        "DJANGO_SETTINGS_MODULE": "sigma_playground.settings",
    }
    result = run(["-c", "import django; django.setup()"], {**base, **env})
    assert result.returncode != 0
    assert message in result.stderr


def test_pgbouncer_switches_together_everything_transaction_pooling_needs():
    direct = probe({"DATABASE_URL": "postgres://app@db.internal:5432/gallery"})
    assert direct["pooler"] == "none" and direct["server_side_cursors"] is True
    data = probe(
        {"DATABASE_URL": "postgres://app@pgbouncer.internal:6432/gallery", "DATABASE_POOLER": "pgbouncer"}
    )
    assert data["pooler"] == "pgbouncer"
    assert data["engine"] == "sigma_playground.postgresql"  # the circuit breaker stays
    assert "pool" not in data["options"]  # PgBouncer is the pool
    assert data["conn_max_age"] == 0
    assert "prepare_threshold" in data["options"] and data["options"]["prepare_threshold"] is None
    assert data["server_side_cursors"] is False
    assert "options" not in data["options"]  # PgBouncer refuses the startup parameter
    assert data["options"]["application_name"] == "sigma_playground"
    assert data["options"]["connect_timeout"] == 2


PGBOUNCER_PROD = {
    "DATABASE_URL": "postgres://app@pgbouncer.internal:6432/gallery",
    "REDIS_URL": "redis://cache.internal:6379/0",
    "DATABASE_POOLER": "pgbouncer",
    "DJANGO_SETTINGS_MODULE": "sigma_playground.settings",
    "DB_POOL_MIN_SIZE": "",
    "DB_POOL_MAX_SIZE": "",
    "DB_POOL_TIMEOUT": "",
    "DB_STATEMENT_TIMEOUT_MS": "",
    "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS": "",
}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATABASE_POOLER": "pgpool"}, "DATABASE_POOLER must be 'none' or 'pgbouncer'"),
        ({"DATABASE_URL": ""}, "DATABASE_POOLER=pgbouncer needs DATABASE_URL"),
        ({"DB_POOL_MAX_SIZE": "10"}, "unset DB_POOL_MAX_SIZE and size the pool in pgbouncer.ini"),
        (
            {"DB_STATEMENT_TIMEOUT_MS": "5000"},
            "so DB_STATEMENT_TIMEOUT_MS would do nothing: unset them and set the values on the role",
        ),
    ],
)
def test_production_refuses_what_would_do_nothing_behind_pgbouncer(env, message):
    from tests.test_production_settings import PROD_ENV

    result = run(["-c", "import django; django.setup()"], {**PROD_ENV, **PGBOUNCER_PROD, **env})
    assert result.returncode != 0
    assert message in result.stderr


def test_production_starts_behind_pgbouncer_when_nothing_contradicts():
    from tests.test_production_settings import PROD_ENV

    result = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], {**PROD_ENV, **PGBOUNCER_PROD}
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgres_connections_carry_the_timeouts(settings):
    """Without a pooler: Django's pool, each connection started with the options. Behind PgBouncer
    (DATABASE_POOLER=pgbouncer, `make test-pgbouncer`): no pool of ours, and the same values come from the
    server-side settings (ALTER ROLE/DATABASE ... SET: deploy/pgbouncer.py sets them on the test database)."""
    connection.ensure_connection()
    if settings.DATABASE_POOLER == "pgbouncer":
        assert connection.pool is None
    else:
        assert connection.pool is not None
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "30s"
        cursor.execute("SHOW idle_in_transaction_session_timeout")
        assert cursor.fetchone()[0] == "1min"
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == "off"


@pytest.mark.redis
def test_redis_cache_round_trips():
    from django_redis import get_redis_connection

    cache.set("settings-test", {"a": 1}, 10)
    assert cache.get("settings-test") == {"a": 1}
    assert get_redis_connection("default").ping() is True
