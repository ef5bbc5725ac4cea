"""Liveness and readiness probes.

``/healthz`` says the process is up and touches nothing. ``/readyz`` checks each dependency and answers
503 naming whichever failed, so a load balancer stops sending traffic and an operator sees why; it answers
within a second whatever the database does (the circuit breaker answers at once while it is open, and a
connection is waited for at most READINESS_DB_WAIT_SECONDS). It also warns, without failing, when the durable
Redis could drop what it holds: an evicting ``maxmemory-policy`` or memory near its limit, and when a read
replica is out of the rotation (lagging, unreachable: its reads go to the primary; from this process's last
measurements, no query).
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from sigma_playground.replicas.monitor import MONITOR as REPLICAS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    duration_ms: float


READINESS_DB_WAIT_SECONDS = 0.8


def check_database() -> CheckResult:
    started = time.perf_counter()
    try:
        if connection.vendor == "postgresql":
            from sigma_playground.postgresql.base import connect_wait

            wait: contextlib.AbstractContextManager[None] = connect_wait(READINESS_DB_WAIT_SECONDS)
        else:
            wait = contextlib.nullcontext()
        with wait, connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        ok, detail = True, connection.vendor
    except Exception as exc:  # any driver error means "not ready"
        ok, detail = False, f"{type(exc).__name__}"
        logger.warning("readiness: database check failed: %s", exc)
    return CheckResult("database", ok, detail, (time.perf_counter() - started) * 1000)


def check_cache() -> CheckResult:
    """Round-trip the cache without its fail-open wrapper, which would hide an outage as a miss."""
    started = time.perf_counter()
    try:
        client = getattr(cache, "client", None)
        if client is not None and hasattr(client, "get_client"):
            client.get_client(write=True).ping()
            detail = "redis"
        else:
            key = f"readyz:{uuid.uuid4().hex}"
            cache.set(key, "1", 5)
            if cache.get(key) != "1":
                raise RuntimeError("cache round-trip lost the value")
            cache.delete(key)
            detail = type(cache).__name__
        ok = True
    except Exception as exc:
        ok, detail = False, f"{type(exc).__name__}"
        logger.warning("readiness: cache check failed: %s", exc)
    return CheckResult("cache", ok, detail, (time.perf_counter() - started) * 1000)


READINESS_CHECKS = (check_database, check_cache)


def durable_redis_warnings() -> list[str]:
    """What could make the durable Redis (broker, view buffers, generations, beat lock) drop data: an
    evicting policy, or memory at CAPACITY_REDIS_MEMORY_PERCENT of its limit. Empty without Redis or when it
    cannot be read (the cache check reports an unreachable Redis)."""
    from sigma_playground.caching import service

    backend = service.durable()
    if not backend.is_redis:
        return []
    try:
        info = backend.client.info("memory")
    except Exception:
        return []
    warnings = []
    policy = info.get("maxmemory_policy", "noeviction")
    if policy != "noeviction":
        warnings.append(
            f"durable Redis has maxmemory-policy {policy}: it may evict the broker, view buffers and "
            "generation keys (set noeviction; see docs/operations.md, Redis)"
        )
    limit, used = int(info.get("maxmemory") or 0), int(info.get("used_memory") or 0)
    if limit and used >= limit * settings.CAPACITY_REDIS_MEMORY_PERCENT / 100:
        warnings.append(
            f"durable Redis memory at {100 * used / limit:.0f}% of maxmemory ({used} of {limit} bytes): "
            "writes will be refused when it is full"
        )
    return warnings


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@require_GET
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """The database is required; the cache fails open, so without it the site is "degraded": pages are
    built from the database. Whether degraded means "take me out of rotation" is READINESS_REQUIRES_CACHE
    (on: 503, the default; off: 200, for fleets where every process shares the one Redis and a 503 everywhere
    would turn a cache outage into a full outage)."""
    results = [check() for check in READINESS_CHECKS]
    failing = [r.name for r in results if not r.ok]
    if not failing:
        status = "ok"
    elif failing == ["cache"]:
        status = "degraded"
    else:
        status = "unavailable"
    body = {
        "status": status,
        "failing": failing,
        "checks": {r.name: {"ok": r.ok, "detail": r.detail, "ms": round(r.duration_ms, 1)} for r in results},
        "warnings": (durable_redis_warnings() if "cache" not in failing else []) + REPLICAS.warnings(),
    }
    unready = status == "unavailable" or (status == "degraded" and settings.READINESS_REQUIRES_CACHE)
    return JsonResponse(body, status=503 if unready else 200)
