"""Which client a request comes from, for everything keyed by client address (rate limits, lockouts).

``X-Forwarded-For`` is only as trustworthy as whoever wrote it. It is read only when the connecting peer
(``REMOTE_ADDR``) is inside ``TRUSTED_PROXY_NETWORKS`` (our own reverse proxies: nginx, a load balancer).
Then the chain is walked from the right, skipping every address inside those networks (proxies appending to
each other), and the first address that is not one of ours is the client: everything left of it was written
by the client and can say anything. With the setting empty (the default) no forwarded header is trusted and
the client is ``REMOTE_ADDR``, so a site reached without a proxy cannot be fooled by a rotating header.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=8)
def networks(spec: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in spec)


def parse_address(address: str) -> IPAddress | None:
    address = address.strip()
    if address.count(":") == 1 and "." in address:  # "1.2.3.4:5678"
        address = address.split(":", 1)[0]
    try:
        return ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return None


def _trusted(address: IPAddress | None, trusted: tuple[IPNetwork, ...]) -> bool:
    return address is not None and any(address in net for net in trusted if net.version == address.version)


def client_address(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or, when REMOTE_ADDR is a trusted proxy, the rightmost entry of
    X-Forwarded-For that is not a trusted proxy (see the module docstring)."""
    remote = request.META.get("REMOTE_ADDR", "") or ""
    trusted = networks(tuple(settings.TRUSTED_PROXY_NETWORKS))
    if not trusted or not _trusted(parse_address(remote), trusted):
        return remote
    forwarded = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",")]
    for raw in reversed([part for part in forwarded if part]):
        address = parse_address(raw)
        if address is None:
            return remote  # garbage where a proxy writes: fall back to what we know is true
        if not _trusted(address, trusted):
            return str(address)
    return remote
