"""A small HTTP client for tests against real servers (gunicorn, nginx, Varnish): its own cookie jar that keeps
the site's Secure cookies over plain http on loopback, no redirects followed, and forms posted with the CSRF
token of the page they came from, as a browser would."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.cookies import SimpleCookie


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)
_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: str
    seconds: float


@dataclass
class Browser:
    base: str
    cookies: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, data: dict | None = None, timeout: float = 20) -> Answer:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        request = urllib.request.Request(self.base + path, data=body, headers=headers, method=method)
        started = time.perf_counter()
        try:
            with _OPENER.open(request, timeout=timeout) as response:
                status, head, content = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, head, content = error.code, error.headers, error.read()
        elapsed = time.perf_counter() - started
        for raw in head.get_all("Set-Cookie") or []:
            cookie = SimpleCookie()
            cookie.load(raw)
            for name, morsel in cookie.items():
                self.cookies[name] = morsel.value
        return Answer(status, dict(head.items()), content.decode(errors="replace"), elapsed)

    def get(self, path: str, **kwargs) -> Answer:
        return self.request("GET", path, **kwargs)

    def post_form(self, path: str, data: dict, *, page: Answer | None = None) -> Answer:
        """POST ``data`` with the CSRF token of ``page`` (default: a GET of ``path``)."""
        page = page or self.get(path)
        token = _CSRF.search(page.body)
        assert token, f"no CSRF token on the form page ({page.status})"
        return self.request("POST", path, {**data, "csrfmiddlewaretoken": token.group(1)})
