"""Cache-Control for HTML by class of page.

- Anonymous pages served through the page cache (``public``): browsers revalidate every time
  (``max-age=HTTP_CACHE_MAX_AGE``, 0, with the ETag: a 304 from the CDN or the origin when unchanged); shared
  caches keep them for ``s-maxage`` (and ``Surrogate-Control: max-age``, Fastly's) ``CDN_SHARED_MAX_AGE``
  seconds, a day, because every write that changes them purges them by surrogate key (docs/edge.md). A
  page may ask for less (the detail page: 0, so every view reaches the origin and is counted). Without a
  purge backend (``CDN_PURGE_BACKEND=none``) there is no ``s-maxage``: ``max-age=0`` holds shared caches
  to revalidating too, since nothing could take a page back from them. ``Vary: Cookie`` (set where the page
  is cached) keeps the cookie-less copy apart from anything personal.
- Every other HTML page (logged in, or not cacheable): ``private, no-cache``: a browser may keep it but must
  revalidate (the ETag from ConditionalGetMiddleware makes that a 304); shared caches never store it.
- Cached pages that are not HTML (Atom feeds, the sitemap, oEmbed answers) are treated like the HTML ones.
- Forms set their own ``no-store`` (``never_cache``); static files and media set theirs too; a response that
  already has Cache-Control is left alone.

The design had ``public, max-age=60, stale-while-revalidate=30``: a CDN or browser could show a workbook for
90 s after its author made it private.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_cache_control

from sigma_playground.caching.pages import PUBLIC


def shared_lifetime(response: HttpResponse) -> int | None:
    """Seconds a shared cache may keep this public page, or None without a purge backend."""
    if settings.CDN_PURGE_BACKEND == "none":
        return None
    own = getattr(response, "sigma_shared_max_age", None)
    return settings.CDN_SHARED_MAX_AGE if own is None else min(own, settings.CDN_SHARED_MAX_AGE)


class CacheControlMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        public = getattr(response, "sigma_cache_class", None) == PUBLIC and response.status_code == 200
        html = response.get("Content-Type", "").startswith("text/html")
        # Cached pages that are not HTML (Atom feeds, sitemaps, oEmbed) get the same rule as the HTML ones.
        if response.has_header("Cache-Control") or not (html or public):
            return response
        if public:
            directives: dict[str, object] = {"public": True, "max_age": settings.HTTP_CACHE_MAX_AGE}
            if settings.HTTP_CACHE_STALE_WHILE_REVALIDATE:
                directives["stale_while_revalidate"] = settings.HTTP_CACHE_STALE_WHILE_REVALIDATE
            shared = shared_lifetime(response)
            if shared is not None:
                directives["s_maxage"] = shared
                response["Surrogate-Control"] = f"max-age={shared}"
            patch_cache_control(response, **directives)
        else:
            patch_cache_control(response, private=True, no_cache=True)
        return response
