"""Who may read /metrics and /monitoring/health.json, and which client a request comes from."""

from __future__ import annotations

import hmac
import re

from django.conf import settings
from django.http import HttpRequest

from sigma_playground import client_ip

_FORWARDED_FOR = re.compile(r'for="?\[?([^\]";,]+)', re.I)
_networks = client_ip.networks
_parse = client_ip.parse_address


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
    """The client's address for rate limiting (see sigma_playground.client_ip: TRUSTED_PROXY_NETWORKS)."""
    return client_ip.client_address(request)
