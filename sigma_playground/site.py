"""Site-wide bits every page and machine reader needs: absolute URLs, robots.txt, the favicon."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django.utils.functional import lazy
from django.views.decorators.http import require_safe


def absolute(request: HttpRequest | None, path: str) -> str:
    """``path`` as an absolute URL: on SITE_URL when set, else on the request's scheme and host."""
    if path.startswith(("http://", "https://")):
        return path
    if settings.SITE_URL or request is None:
        return (settings.SITE_URL or "http://localhost") + path
    try:
        return request.build_absolute_uri(path)
    except DisallowedHost:  # the 400 page of a request with a bad Host header still renders
        return path


def share_context(request: HttpRequest) -> dict[str, Any]:
    """The canonical URL of the page (its path, no query) and the site name, for the head of every page."""
    canonical = lazy(lambda: absolute(request, request.path), str)()  # only built where a page uses it
    return {"canonical_url": canonical, "site_name": settings.SITE_NAME}


def public(response: HttpResponse, seconds: int | None = None) -> HttpResponse:
    """Cache-Control for responses that are the same for everyone (feeds, sitemaps, robots.txt)."""
    patch_cache_control(
        response, public=True, max_age=settings.HTTP_CACHE_MAX_AGE if seconds is None else seconds
    )
    return response


# Personal and operational paths crawlers have no business in (they are private or noindex anyway). The log-in
# and sign-up pages stay crawlable: people search for them.
ROBOTS_DISALLOW = (
    "/accounts/profile/",
    "/accounts/password/",
    "/accounts/verify/",
    "/accounts/logout/",
    "/admin/",
    "/monitoring/",
    "/feed/",
    "/favorites/",
    "/workbooks/new/",
    "/metrics",
    "/oembed",
)


@require_safe
def robots_txt(request: HttpRequest) -> HttpResponse:
    lines = ["User-agent: *", *(f"Disallow: {path}" for path in ROBOTS_DISALLOW)]
    lines.append(f"Sitemap: {absolute(request, reverse('sitemap_index'))}")
    return public(HttpResponse("\n".join(lines) + "\n", content_type="text/plain; charset=utf-8"), 3600)


@require_safe
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico before reading the page's icon link: point them at the real one."""
    return public(HttpResponsePermanentRedirect(static("favicon.svg")), 86400)
