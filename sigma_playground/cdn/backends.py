"""Purge backends, chosen by ``CDN_PURGE_BACKEND``: none, varnish, fastly, cloudflare.

Each takes surrogate keys (``lists``, ``wb-12``, ``user-ada``) or a URL and makes one HTTP request per
batch of keys its API accepts, raising :class:`PurgeError` when the CDN did not confirm it. Every request
is counted in ``sigma_cdn_purge_requests_total{backend,result}``: the alert rule ``CDNPurgeFailing`` watches
it.

- varnish: ``PURGE /`` with ``xkey-purge: <keys>`` to every instance in ``CDN_VARNISH_URLS``
  (deploy/varnish/default.vcl answers 200 after ``xkey.purge``); a URL is ``PURGE <path>`` with its Host.
- fastly: ``POST {api}/service/{service_id}/purge`` with ``Fastly-Key`` and the JSON body
  ``{"surrogate_keys": [...]}`` (at most 256 keys a request); a URL is ``POST {api}/purge/<host/path>``.
- cloudflare: ``POST {api}/zones/{zone_id}/purge_cache`` with ``Authorization: Bearer`` and ``{"tags":
  [...]}`` (30 a request; purge by tag is an Enterprise feature: the origin also sends ``Cache-Tag``), or
  ``{"files": [url]}``; the answer must say ``"success": true``.

Purges are hard (the object is gone, not marked stale): a stale copy of a page that just turned private must
never be served while the CDN asks the origin again.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from urllib.parse import quote, urlsplit

from django.conf import settings

from sigma_playground.telemetry import metrics

logger = logging.getLogger(__name__)

BACKENDS = ("none", "varnish", "fastly", "cloudflare")
PURGE_REQUESTS = metrics.counter(
    "sigma_cdn_purge_requests_total",
    "Purge requests sent to the CDN, by backend and result (ok, error).",
    labels={"backend": BACKENDS, "result": ("ok", "error")},
    # At zero from the start, so CDNPurgeFailing always has its series (the monitoring stack test checks that
    # every metric a rule uses has data) and the first failures count in increase().
    initialize=True,
)
PURGED_KEYS = metrics.counter(
    "sigma_cdn_purged_keys_total",
    "Surrogate keys the CDN confirmed purged, by backend.",
    labels={"backend": BACKENDS},
)


class PurgeError(Exception):
    """The CDN did not confirm a purge (unreachable, timed out, or answered an error)."""


def _chunks(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


class Backend:
    name = "none"
    max_keys = 256

    def purge_keys(self, keys: Sequence[str]) -> None:
        """Purge every object tagged with any of ``keys``."""

    def purge_url(self, url: str) -> None:
        """Purge the object(s) cached for one absolute URL."""

    def _send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        body: bytes | None = None,
        confirmed: Callable[[bytes], bool] | None = None,
    ) -> None:
        """One request; a 2xx answer (that ``confirmed`` accepts, when given) is a success."""
        request = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310 (http(s) URLs from settings)
        try:
            with urllib.request.urlopen(request, timeout=settings.CDN_PURGE_TIMEOUT) as response:  # noqa: S310
                status, content = response.status, response.read()
        except urllib.error.HTTPError as exc:
            PURGE_REQUESTS.inc(backend=self.name, result="error")
            raise PurgeError(f"{self.name}: {method} {url} answered {exc.code}") from exc
        except OSError as exc:  # refused, reset, timed out, DNS
            PURGE_REQUESTS.inc(backend=self.name, result="error")
            raise PurgeError(f"{self.name}: {method} {url} failed: {exc}") from exc
        if not 200 <= status < 300 or (confirmed is not None and not confirmed(content)):
            PURGE_REQUESTS.inc(backend=self.name, result="error")
            raise PurgeError(f"{self.name}: {method} {url} answered {status}: {content[:200]!r}")
        PURGE_REQUESTS.inc(backend=self.name, result="ok")


class NoneBackend(Backend):
    name = "none"


class VarnishBackend(Backend):
    name = "varnish"
    max_keys = 100  # keeps the header well under Varnish's http_req_hdr_len (8 KB)

    def __init__(self, urls: Sequence[str]) -> None:
        self.urls = [u.rstrip("/") for u in urls]

    def purge_keys(self, keys: Sequence[str]) -> None:
        for chunk in _chunks(sorted(set(keys)), self.max_keys):
            for base in self.urls:
                self._send("PURGE", base + "/", headers={"xkey-purge": " ".join(chunk)})
            PURGED_KEYS.inc(len(chunk), backend=self.name)

    def purge_url(self, url: str) -> None:
        parts = urlsplit(url)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        for base in self.urls:
            self._send("PURGE", base + path, headers={"Host": parts.netloc})


class FastlyBackend(Backend):
    name = "fastly"
    max_keys = 256  # Fastly's limit for one batch purge

    def __init__(self, api_url: str, service_id: str, token: str) -> None:
        self.api_url, self.service_id, self.token = api_url.rstrip("/"), service_id, token

    def _headers(self) -> dict[str, str]:
        return {"Fastly-Key": self.token, "Accept": "application/json"}

    def purge_keys(self, keys: Sequence[str]) -> None:
        url = f"{self.api_url}/service/{quote(self.service_id, safe='')}/purge"
        for chunk in _chunks(sorted(set(keys)), self.max_keys):
            body = json.dumps({"surrogate_keys": chunk}).encode()
            headers = {**self._headers(), "Content-Type": "application/json"}
            self._send("POST", url, headers=headers, body=body)
            PURGED_KEYS.inc(len(chunk), backend=self.name)

    def purge_url(self, url: str) -> None:
        parts = urlsplit(url)
        target = parts.netloc + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._send("POST", f"{self.api_url}/purge/{target}", headers=self._headers())


class CloudflareBackend(Backend):
    name = "cloudflare"
    max_keys = 30  # tags (or files) per purge_cache request

    def __init__(self, api_url: str, zone_id: str, token: str) -> None:
        self.api_url, self.zone_id, self.token = api_url.rstrip("/"), zone_id, token

    def _purge(self, payload: dict) -> None:
        url = f"{self.api_url}/zones/{quote(self.zone_id, safe='')}/purge_cache"
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self._send(
            "POST", url, headers=headers, body=json.dumps(payload).encode(), confirmed=_cloudflare_success
        )

    def purge_keys(self, keys: Sequence[str]) -> None:
        for chunk in _chunks(sorted(set(keys)), self.max_keys):
            self._purge({"tags": chunk})
            PURGED_KEYS.inc(len(chunk), backend=self.name)

    def purge_url(self, url: str) -> None:
        self._purge({"files": [url]})


def _cloudflare_success(content: bytes) -> bool:
    try:
        answer = json.loads(content)
    except ValueError:
        return False
    return isinstance(answer, dict) and answer.get("success") is True


def get_backend(name: str | None = None) -> Backend:
    name = name or settings.CDN_PURGE_BACKEND
    if name == "varnish":
        return VarnishBackend(settings.CDN_VARNISH_URLS)
    if name == "fastly":
        return FastlyBackend(
            settings.CDN_FASTLY_API_URL, settings.CDN_FASTLY_SERVICE_ID, settings.CDN_FASTLY_API_TOKEN
        )
    if name == "cloudflare":
        return CloudflareBackend(
            settings.CDN_CLOUDFLARE_API_URL,
            settings.CDN_CLOUDFLARE_ZONE_ID,
            settings.CDN_CLOUDFLARE_API_TOKEN,
        )
    return NoneBackend()
