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
    "options": db.get("OPTIONS", {}), "cache": s.CACHES["default"]["BACKEND"],
    "cache_location": s.CACHES["default"].get("LOCATION"), "broker": s.CELERY_BROKER_URL,
    "eager": s.CELERY_TASK_ALWAYS_EAGER, "session": s.SESSION_ENGINE, "debug": s.DEBUG,
    "durable_location": s.CACHES.get("durable", {}).get("LOCATION"),
}))
"""


def probe(env: dict[str, str]) -> dict:
    base = {
        "DATABASE_URL": "",
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
        "REDIS_URL": "",
        "REDIS_DURABLE_URL": "",
        "DJANGO_SETTINGS_MODULE": "sigma_playground.settings",
    }
    result = run(["-c", "import django; django.setup()"], {**base, **env})
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgres_connections_come_from_the_pool_with_timeouts():
    connection.ensure_connection()
    assert connection.pool is not None
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "30s"
        cursor.execute("SHOW idle_in_transaction_session_timeout")
        assert cursor.fetchone()[0] == "1min"


@pytest.mark.redis
def test_redis_cache_round_trips():
    from django_redis import get_redis_connection

    cache.set("settings-test", {"a": 1}, 10)
    assert cache.get("settings-test") == {"a": 1}
    assert get_redis_connection("default").ping() is True
