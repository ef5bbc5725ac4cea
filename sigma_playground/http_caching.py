"""Cache-Control for HTML by class of page.

- Anonymous pages served through the page cache: ``public, max-age=HTTP_CACHE_MAX_AGE,
  stale-while-revalidate=…``, with ``Vary: Cookie`` (set where the page is cached) so a CDN keeps the
  cookie-less copy apart from anything personal.
- Every other HTML page (logged in, or not cacheable): ``private, no-cache``: a browser may keep it but must
  revalidate (the ETag from ConditionalGetMiddleware makes that a 304); shared caches never store it.
- Forms set their own ``no-store`` (``never_cache``); static files and media set theirs too; a response that
  already has Cache-Control is left alone.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_cache_control

from sigma_playground.caching.pages import PUBLIC


class CacheControlMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.has_header("Cache-Control") or not response.get("Content-Type", "").startswith(
            "text/html"
        ):
            return response
        if getattr(response, "sigma_cache_class", None) == PUBLIC and response.status_code == 200:
            patch_cache_control(
                response,
                public=True,
                max_age=settings.HTTP_CACHE_MAX_AGE,
                stale_while_revalidate=settings.HTTP_CACHE_STALE_WHILE_REVALIDATE,
            )
        else:
            patch_cache_control(response, private=True, no_cache=True)
        return response
