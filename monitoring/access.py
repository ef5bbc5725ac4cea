"""Who may read /metrics and /monitoring/health.json, and which client a request comes from."""

from __future__ import annotations

import hmac
import ipaddress
import re
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_FORWARDED_FOR = re.compile(r'for="?\[?([^\]";,]+)', re.I)


@lru_cache(maxsize=8)
def _networks(spec: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in spec)


def _parse(address: str) -> IPAddress | None:
    address = address.strip()
    if address.count(":") == 1 and "." in address:  # "1.2.3.4:5678"
        address = address.split(":", 1)[0]
    try:
        return ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return None


def forwarding_chain(request: HttpRequest) -> list[str]:
    """Every address the request claims to have passed through, client first, REMOTE_ADDR last."""
    chain: list[str] = []
    for header in ("Forwarded",):
        value = request.headers.get(header)
        if value:
            chain += _FORWARDED_FOR.findall(value) or [value]
    for header in ("X-Forwarded-For", "X-Real-IP"):
        value = request.headers.get(header)
        if value:
            chain += [part for part in value.split(",")]
    chain.append(request.META.get("REMOTE_ADDR", ""))
    return chain


def bearer_token_matches(request: HttpRequest, expected: str) -> bool:
    if not expected:
        return False
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected.encode())


def from_allowed_network(request: HttpRequest) -> bool:
    """True when every address in the chain is inside METRICS_ALLOWED_NETWORKS.

    Requiring all of them (not only REMOTE_ADDR) means a public request relayed by a reverse proxy on an
    allowed address is still refused, and a client adding its own forwarding headers can only make the answer
    stricter.
    """
    networks = _networks(tuple(settings.METRICS_ALLOWED_NETWORKS))
    if not networks:
        return False
    for raw in forwarding_chain(request):
        address = _parse(raw)
        if address is None or not any(address in net for net in networks if net.version == address.version):
            return False
    return True


def metrics_allowed(request: HttpRequest) -> bool:
    return bearer_token_matches(request, settings.METRICS_BEARER_TOKEN) or from_allowed_network(request)


def health_allowed(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    if user is not None and user.is_active and user.is_staff:
        return True
    return bearer_token_matches(request, settings.HEALTH_BEARER_TOKEN)


def client_address(request: HttpRequest) -> str:
    """The client's address for rate limiting: REMOTE_ADDR, or the entry TRUSTED_PROXY_COUNT proxies appended.

    Entries left of the ones our proxies appended were written by the client and are not trusted.
    """
    remote = request.META.get("REMOTE_ADDR", "")
    hops = settings.TRUSTED_PROXY_COUNT
    if hops <= 0:
        return remote
    forwarded = [
        part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",") if part.strip()
    ]
    if len(forwarded) < hops:
        return forwarded[0] if forwarded else remote
    return forwarded[-hops]
