"""Route names: the URL names in the resolver (``home``, ``workbooks:detail``), the only page labels metrics use."""

from __future__ import annotations

from functools import lru_cache

from django.urls import URLPattern, URLResolver, get_resolver

UNNAMED = "<unnamed view>"  # django-prometheus's label for requests that resolved to no named view
SHED = "<shed>"  # requests answered 503 before routing because they waited too long (sigma_playground.queue_time)


def _walk(resolver: URLResolver, prefix: str, skip: frozenset[str]) -> set[str]:
    names: set[str] = set()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            if entry.namespace in skip:
                continue
            names |= _walk(entry, f"{prefix}{entry.namespace}:" if entry.namespace else prefix, skip)
        elif isinstance(entry, URLPattern) and entry.name:
            names.add(prefix + entry.name)
    return names


@lru_cache(maxsize=4)
def route_names(*, include_admin: bool = True) -> frozenset[str]:
    """Every named URL. Pages that load rum.js are never admin pages, so RUM asks without them."""
    return frozenset(_walk(get_resolver(), "", frozenset() if include_admin else frozenset({"admin"})))


def page_route_names() -> frozenset[str]:
    return route_names(include_admin=False)


def server_route_names() -> frozenset[str]:
    return route_names(include_admin=True) | {UNNAMED, SHED}
