"""TRUSTED_PROXY_NETWORKS: X-Forwarded-For is believed only from our own proxies (issue 13, section 8)."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from sigma_playground.client_ip import client_address


def request(remote: str, forwarded: str | None = None):
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return RequestFactory().get("/", REMOTE_ADDR=remote, **extra)


def test_by_default_no_forwarded_header_is_trusted(settings):
    settings.TRUSTED_PROXY_NETWORKS = []
    assert client_address(request("198.51.100.9", "203.0.113.5")) == "198.51.100.9"


def test_a_peer_outside_the_proxy_networks_is_the_client(settings):
    settings.TRUSTED_PROXY_NETWORKS = ["10.0.0.0/8"]
    assert client_address(request("198.51.100.9", "203.0.113.5")) == "198.51.100.9"


@pytest.mark.parametrize(
    ("forwarded", "client"),
    [
        ("203.0.113.5", "203.0.113.5"),
        # Whatever the client wrote left of the address our proxy appended is ignored.
        ("1.1.1.1, 2.2.2.2, 203.0.113.5", "203.0.113.5"),
        # Proxies appending to each other: the rightmost address that is not ours.
        ("203.0.113.5, 10.1.2.3", "203.0.113.5"),
        ("2001:db8::1", "2001:db8::1"),
        # Garbage where our proxy writes, or nothing at all: the peer itself.
        ("203.0.113.5, not-an-address", "10.0.0.2"),
        ("", "10.0.0.2"),
        ("10.9.9.9", "10.0.0.2"),
    ],
)
def test_behind_a_trusted_proxy_the_rightmost_untrusted_address(settings, forwarded, client):
    settings.TRUSTED_PROXY_NETWORKS = ["10.0.0.0/8", "::1/128"]
    assert client_address(request("10.0.0.2", forwarded)) == client


def test_a_malformed_network_is_refused_at_start(monkeypatch):
    import importlib

    from django.core.exceptions import ImproperlyConfigured

    import sigma_playground.settings as settings_module

    monkeypatch.setenv("TRUSTED_PROXY_NETWORKS", "10.0.0.0/8, nonsense")
    with pytest.raises(ImproperlyConfigured, match="TRUSTED_PROXY_NETWORKS"):
        importlib.reload(settings_module)
    monkeypatch.delenv("TRUSTED_PROXY_NETWORKS")
    importlib.reload(settings_module)
