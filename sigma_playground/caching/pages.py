"""Page and fragment caching for views.

Anonymous visitors (no session cookie, no pending messages) get whole pages from the cache: a hit runs no
SQL at all and never touches the session. Everyone else gets the page's shared fragment from the cache and
their personal parts (header, favorite and follow state, CSRF tokens) rendered per request: a fragment is
built from a context that holds no user and no request, so it cannot contain personal data. Personal parts
that sit inside a fragment are marked with ``personal_marker(name)`` and filled in per request.

Keys embed the generations of the namespaces a page depends on (keys.py), so invalidation is exact: a
write bumps the namespaces it affects (invalidate.py) and the next request builds a fresh page.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils.cache import patch_vary_headers
from django.utils.safestring import SafeString, mark_safe

from sigma_playground.caching import keys, service

PUBLIC = "public"  # response attribute read by sigma_playground.http_caching


def personal_marker(name: str) -> str:
    # An HTML comment: escaped user text can never produce one ("<" becomes "&lt;").
    return f"<!--sigma:personal:{name}-->"


def fill_personal(html: str, parts: dict[str, str]) -> SafeString:
    for name, part in parts.items():
        html = html.replace(personal_marker(name), part)
    return mark_safe(html)  # noqa: S308 (rendered by our templates with autoescape on)


def anonymous_request(request: HttpRequest) -> bool:
    """True when the request can only be an anonymous visitor's, decided without the session store."""
    return (
        request.method in ("GET", "HEAD")
        and settings.SESSION_COOKIE_NAME not in request.COOKIES
        and "messages" not in request.COOKIES
        and "profile" not in request.GET
    )


def _stored(response: HttpResponse) -> dict[str, Any]:
    return {"content": response.content, "content_type": response["Content-Type"]}


def _response(value: dict[str, Any]) -> HttpResponse:
    response = HttpResponse(value["content"], content_type=value["content_type"])
    response["X-Cache"] = "hit"
    return response


def cache_anonymous_page(
    view_name: str,
    *,
    namespaces: Callable[..., Iterable[str]],
    on_hit: Callable[..., None] | None = None,
    ttl: float | None = None,
):
    """Serve anonymous GETs of this view from the cache. ``namespaces(request, **kwargs)`` names what the
    page shows; ``on_hit(request, **kwargs)`` runs on a cache hit (view counting)."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not (settings.PAGE_CACHE_ENABLED and anonymous_request(request)):
                return view(request, *args, **kwargs)
            gens = service.generations(namespaces(request, **kwargs))
            key = keys.page(view_name, request.get_full_path(), gens)
            hit = True

            def build() -> service.Built:
                nonlocal hit
                hit = False
                response = view(request, *args, **kwargs)
                storable = response.status_code == 200 and not response.streaming and not response.cookies
                return service.Built(
                    result=response, value=_stored(response) if storable else None, store=storable
                )

            response = service.get_or_build(
                keys.KIND_PAGE, key, build, ttl=ttl or settings.PAGE_CACHE_TTL, from_entry=_response
            )
            if hit and on_hit is not None:
                on_hit(request, **kwargs)
            if response.status_code == 200:
                response.sigma_cache_class = PUBLIC
            # The same URL is a personal page with a session cookie: shared caches must key on it.
            patch_vary_headers(response, ["Cookie"])
            return response

        return wrapped

    return decorator


def cached_fragment(
    name: str,
    *,
    template: str,
    context: Callable[[], dict[str, Any]],
    namespaces: Iterable[str],
    variant: str = "",
    ttl: float | None = None,
) -> SafeString:
    """The rendered shared part of a page. ``context()`` runs only on a miss; it must hold no personal data
    (the template is rendered without a request, so it cannot reach the user, the session or a CSRF token)."""
    if not settings.PAGE_CACHE_ENABLED:
        return mark_safe(render_to_string(template, context()))  # noqa: S308
    gens = service.generations(namespaces)
    key = keys.fragment(name, variant, gens)

    def build() -> service.Built:
        html = render_to_string(template, context())
        return service.Built(result=html, value=html)

    html = service.get_or_build(keys.KIND_FRAGMENT, key, build, ttl=ttl or settings.PAGE_CACHE_TTL)
    return mark_safe(html)  # noqa: S308
