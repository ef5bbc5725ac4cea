"""DATABASE_REPLICA_URLS and its companions in settings.py (issue 20, section 1)."""

from __future__ import annotations

import json

import pytest

from tests.test_production_settings import run

PROBE = """
import json, django
django.setup()
from django.conf import settings as s
print(json.dumps({
    "replicas": s.DATABASE_REPLICAS, "routers": getattr(s, "DATABASE_ROUTERS", []),
    "middleware": s.MIDDLEWARE, "databases": {k: {
        "ENGINE": v["ENGINE"], "HOST": v.get("HOST"), "PORT": v.get("PORT"), "NAME": v.get("NAME"),
        "OPTIONS": v.get("OPTIONS"), "TEST": v.get("TEST"), "CONN_MAX_AGE": v.get("CONN_MAX_AGE"),
        "DISABLE_SERVER_SIDE_CURSORS": v.get("DISABLE_SERVER_SIDE_CURSORS", False),
    } for k, v in s.DATABASES.items()},
}))
"""
PRIMARY = "postgres://app@db-primary.internal:5432/sigma"
BASE = {
    "DATABASE_URL": "",
    "DATABASE_REPLICA_URLS": "",
    "DATABASE_POOLER": "",
    "REDIS_URL": "",
    "REDIS_DURABLE_URL": "",
    "DJANGO_SETTINGS_MODULE": "sigma_playground.settings",
}


def probe(env: dict[str, str]) -> dict:
    result = run(["-c", PROBE], {**BASE, **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def refused(env: dict[str, str]) -> str:
    result = run(["-c", PROBE], {**BASE, **env})
    assert result.returncode != 0
    return result.stderr


def test_no_replicas_by_default_and_nothing_is_installed():
    for env in ({}, {"DATABASE_URL": PRIMARY}):
        data = probe(env)
        assert data["replicas"] == [] and data["routers"] == [] and list(data["databases"]) == ["default"]
        assert not any("replicas" in name for name in data["middleware"])


def test_each_replica_is_an_alias_with_the_primarys_engine_and_options():
    data = probe(
        {
            "DATABASE_URL": PRIMARY,
            "DATABASE_REPLICA_URLS": "postgres://app@db-r1.internal:5433/sigma, postgres://app@db-r2.internal/sigma",
        }
    )
    assert data["replicas"] == ["replica_0", "replica_1"]
    assert data["routers"] == ["sigma_playground.replicas.router.ReplicaRouter"]
    primary, first, second = (data["databases"][k] for k in ("default", "replica_0", "replica_1"))
    assert first["ENGINE"] == second["ENGINE"] == primary["ENGINE"] == "sigma_playground.postgresql"
    assert (first["HOST"], first["PORT"], second["HOST"]) == ("db-r1.internal", 5433, "db-r2.internal")
    assert first["OPTIONS"]["pool"] == primary["OPTIONS"]["pool"]
    assert first["OPTIONS"]["options"] == primary["OPTIONS"]["options"]  # statement timeout, jit off
    assert first["OPTIONS"]["application_name"] == "sigma_playground:replica_0"
    assert primary["OPTIONS"]["application_name"] == "sigma_playground"
    assert first["TEST"]["MIRROR"] == "default" and first["CONN_MAX_AGE"] == 0
    middleware = data["middleware"]
    at = middleware.index("sigma_playground.replicas.middleware.ReplicaRoutingMiddleware")
    assert middleware[at - 1] == "sigma_playground.caching.pages.AnonymousPageCacheMiddleware"
    assert at < middleware.index("django.contrib.sessions.middleware.SessionMiddleware")


def test_behind_pgbouncer_the_replicas_switch_with_the_primary():
    """DATABASE_POOLER=pgbouncer (docs/operations.md, "PgBouncer") applies to every PostgreSQL alias: each
    replica URL then names the PgBouncer in front of that replica."""
    data = probe(
        {
            "DATABASE_URL": PRIMARY,
            "DATABASE_POOLER": "pgbouncer",
            "DATABASE_REPLICA_URLS": "postgres://app@pgbouncer-r1.internal:6432/sigma",
        }
    )
    for alias in ("default", "replica_0"):
        db = data["databases"][alias]
        assert "pool" not in db["OPTIONS"] and "options" not in db["OPTIONS"], alias
        assert db["OPTIONS"]["prepare_threshold"] is None and db["DISABLE_SERVER_SIDE_CURSORS"], alias
    assert data["databases"]["replica_0"]["OPTIONS"]["application_name"] == "sigma_playground:replica_0"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATABASE_REPLICA_URLS": "postgres://a@b/c"}, "needs DATABASE_URL"),
        ({"DATABASE_URL": PRIMARY, "DATABASE_REPLICA_URLS": "mysql://a@b/c"}, "not a postgres:// URL"),
        (
            {
                "DATABASE_URL": PRIMARY,
                "DATABASE_REPLICA_URLS": "postgres://a@b/c",
                "REPLICA_PIN_SECONDS": "5",
            },
            "REPLICA_PIN_SECONDS must be at least",
        ),
        (
            {
                "DATABASE_URL": PRIMARY,
                "DATABASE_REPLICA_URLS": "postgres://a@b/c",
                "REPLICA_CHECK_SECONDS": "3",
            },
            "REPLICA_CHECK_SECONDS must be",
        ),
    ],
)
def test_inconsistent_replica_settings_are_refused(env, message):
    assert message in refused(env)
