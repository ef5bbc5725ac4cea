"""``?profile=1``: the staff request profiler (the request metrics are sigma_playground/request_metrics.py)."""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)

_INLINE = {
    "script": re.compile(r"<script>(.*?)</script>", re.S),
    "style": re.compile(r"<style>(.*?)</style>", re.S),
}


def _csp_hashes(html: str, tag: str) -> list[str]:
    return [
        f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
        for body in _INLINE[tag].findall(html)
    ]


class ProfileMiddleware:
    """``?profile=1`` on any page, for staff: the response is pyinstrument's profile of the request instead.

    For anyone else the parameter is ignored and the page is served as usual. The profile page's inline script
    and style are allowed by their hashes alone, so the Content-Security-Policy stays without 'unsafe-inline'
    (the Google Fonts stylesheet its script asks for is refused; the profile renders in system fonts).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if request.GET.get("profile") != "1" or not (user is not None and user.is_active and user.is_staff):
            return self.get_response(request)
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001, async_mode="disabled")
        profiler.start()
        try:
            response = self.get_response(request)
        finally:
            profiler.stop()
        html = profiler.output_html()
        profiled = HttpResponse(html, content_type="text/html; charset=utf-8")
        profiled["Cache-Control"] = "no-store"
        profiled["X-Profiled-Status"] = str(response.status_code)
        profiled._csp_update = {  # type: ignore[attr-defined]  # read by csp.middleware.CSPMiddleware
            "script-src": _csp_hashes(html, "script"),
            "style-src": _csp_hashes(html, "style"),
        }
        logger.info("profiled %s for staff (%s)", request.path, response.status_code)
        return profiled
