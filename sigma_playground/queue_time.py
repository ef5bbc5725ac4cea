"""Time a request spent waiting before the app saw it, and shedding the requests that waited too long.

The reverse proxy stamps each request's arrival: nginx's ``proxy_set_header X-Request-Start "t=${msec}";``
(seconds since the epoch with millisecond precision; ``deploy/nginx``, the edge issue). Between that stamp and
the WSGI front (``sigma_playground.caching.front``, the first code of ours a request meets) it waited in the
proxy's upstream queue, gunicorn's listen backlog and a worker's thread queue: time a client feels and that
no timer inside Django sees. Under overload that is nearly all of the latency (issue 15: clients saw p95
12.7 s while the request histogram said 19 ms).

For every request with a trusted stamp:

- the wait is observed in ``sigma_request_queue_seconds`` and added to the request's latency (the
  django-prometheus histogram that the SLA alert, the dashboard and ``load_test_verdict`` read, and the
  in-process window the health diagnosis reads), so the site reports the latency its users feel;
- a request that already waited longer than ``REQUEST_QUEUE_BUDGET_SECONDS`` is answered at once with a
  tiny 503 and ``Retry-After`` (nothing rendered, resolved, hashed or queried), counted in
  ``sigma_requests_shed_total`` and in the request metrics as a 503 of the route ``<shed>``. Its client has
  probably given up or soon will; working for it would only make every request behind it late too. Health
  probes and /metrics are never shed (a load balancer must still see the process alive, Prometheus must
  still see the overload).

Trust: a client could send its own ``X-Request-Start``. The stamp is read only when ``REQUEST_START_TRUSTED``
is on, and, when ``TRUSTED_PROXY_NETWORKS`` is set (the proxy issue's setting), only from a peer inside those
networks. Without that setting the deployment relies on the proxy overwriting any client-sent copy, which
nginx's ``proxy_set_header`` does (deploy/README.md). A stamp in the future (clock skew between hosts) counts
as no wait; one more than an hour old is ignored as garbage.
"""

from __future__ import annotations

import ipaddress
import time
from functools import lru_cache

from django.conf import settings

from sigma_playground.telemetry import metrics
from sigma_playground.telemetry.batched import BATCH

HEADER = "HTTP_X_REQUEST_START"
ENVIRON_KEY = "sigma.queue_seconds"  # the wait, in seconds, for the timers further in
SHED_ROUTE = "<shed>"  # the route label of shed requests in the request metrics
_MAX_PLAUSIBLE_SECONDS = 3600.0
# Paths never shed: liveness and readiness probes, and the metrics Prometheus scrapes.
NEVER_SHED = ("/healthz", "/readyz", "/metrics")

QUEUE_SECONDS = metrics.histogram(
    "sigma_request_queue_seconds",
    "Time requests waited between the proxy's X-Request-Start stamp and the app (proxy, backlog, threads).",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0),
)
SHED = metrics.counter(
    "sigma_requests_shed_total",
    "Requests answered 503 at once because they had waited longer than REQUEST_QUEUE_BUDGET_SECONDS.",
)

_SHED_BODY = b"The site is busy. Please try again in a moment.\n"


def parse_request_start(value: str) -> float | None:
    """Seconds since the epoch from ``t=1700000000.123`` (nginx) or a bare number; also the millisecond and
    microsecond integers other proxies send. None when unparsable."""
    value = value.strip()
    if value.startswith("t="):
        value = value[2:]
    try:
        stamp = float(value)
    except ValueError:
        return None
    if stamp != stamp or stamp <= 0:  # NaN
        return None
    if stamp > 1e14:  # microseconds (Apache's %t)
        return stamp / 1e6
    if stamp > 1e11:  # milliseconds
        return stamp / 1e3
    return stamp


@lru_cache(maxsize=8)
def _networks(names: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(name, strict=False) for name in names)


def _from_trusted_peer(environ: dict) -> bool:
    names = getattr(settings, "TRUSTED_PROXY_NETWORKS", None)
    if not names:
        return True  # the proxy overwrites the header (see the module docstring)
    try:
        peer = ipaddress.ip_address(environ.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(peer in network for network in _networks(tuple(names)))


def measure(environ: dict, *, now: float | None = None) -> float | None:
    """The request's wait in seconds (also left in ``environ[ENVIRON_KEY]``), or None without a trusted stamp."""
    raw = environ.get(HEADER)
    if not raw or not settings.REQUEST_START_TRUSTED or not _from_trusted_peer(environ):
        return None
    stamp = parse_request_start(raw)
    if stamp is None:
        return None
    waited = (time.time() if now is None else now) - stamp
    if waited > _MAX_PLAUSIBLE_SECONDS:
        return None
    waited = max(0.0, waited)
    environ[ENVIRON_KEY] = waited
    BATCH.observe(QUEUE_SECONDS.histogram, (), waited)
    return waited


def queued(environ: dict) -> float:
    """The wait measured for this request (0 without a trusted stamp)."""
    return environ.get(ENVIRON_KEY, 0.0)


def should_shed(environ: dict, waited: float | None) -> bool:
    budget = settings.REQUEST_QUEUE_BUDGET_SECONDS
    if waited is None or budget <= 0 or waited <= budget:
        return False
    return not environ.get("PATH_INFO", "").startswith(NEVER_SHED)


def shed_response() -> tuple[str, list[tuple[str, str]], bytes]:
    """Status line, headers and body of the cheap 503."""
    return (
        "503 Service Unavailable",
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(_SHED_BODY))),
            ("Retry-After", str(settings.OVERLOAD_RETRY_AFTER_SECONDS)),
            ("Cache-Control", "no-store"),
        ],
        _SHED_BODY,
    )
