"""Who may read /metrics and /monitoring/health.json, and which client a request comes from."""

from __future__ import annotations

import functools
import hmac
import re
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse

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


def is_staff(user: Any) -> bool:
    """An active staff account (what the operations pages and staff profiling need)."""
    return user is not None and user.is_active and user.is_staff


def staff_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A page for active staff: an anonymous visitor is sent to log in, anyone else gets a 404 (whether the
    page exists is nobody else's business)."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not is_staff(request.user):
            raise Http404
        return view(request, *args, **kwargs)

    return wrapped


def health_allowed(request: HttpRequest) -> bool:
    if is_staff(getattr(request, "user", None)):
        return True
    return bearer_token_matches(request, settings.HEALTH_BEARER_TOKEN)


def client_address(request: HttpRequest) -> str:
    """The client's address for rate limiting (see sigma_playground.client_ip: TRUSTED_PROXY_NETWORKS)."""
    return client_ip.client_address(request)
