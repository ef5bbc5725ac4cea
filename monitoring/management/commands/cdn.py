"""``manage.py cdn``: the CDN for operators.

    manage.py cdn status URL          # the design's getCacheStatus: cached or not, age, surrogate keys
    manage.py cdn purge --key lists --key wb-12
    manage.py cdn purge --url https://playground.example.com/workbooks/
    manage.py cdn pending             # keys whose purge is still owed (the CDN was unreachable)

``status`` asks the URL as an anonymous visitor would (so a miss fills the cache), with the debug headers
that make the CDN show its keys: ``X-Cache-Debug`` (deploy/varnish/default.vcl, from the purgers ACL) and
``Fastly-Debug`` (Fastly's ``Surrogate-Key``). Cloudflare never shows its ``Cache-Tag``s; its
``cf-cache-status`` is read instead. ``purge`` goes through ``CDN_PURGE_BACKEND`` at once (not queued).
"""

from __future__ import annotations

import urllib.error
import urllib.request

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from sigma_playground.cdn import purge
from sigma_playground.cdn.backends import PurgeError, get_backend


class Command(BaseCommand):
    help = "CDN cache status of a URL, purges by surrogate key or URL, and owed purges."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        status = sub.add_parser("status", help="is URL cached at the CDN, how old, under which keys")
        status.add_argument("url")
        status.add_argument("--timeout", type=float, default=10.0)
        purge_parser = sub.add_parser("purge", help="purge surrogate keys or URLs now")
        purge_parser.add_argument("--key", action="append", default=[], help="a surrogate key (repeatable)")
        purge_parser.add_argument("--url", action="append", default=[], help="an absolute URL (repeatable)")
        sub.add_parser("pending", help="keys whose purge is owed and not yet confirmed")

    def handle(self, *args, action: str, **options) -> None:
        if action == "status":
            self._status(options["url"], options["timeout"])
        elif action == "purge":
            self._purge(options["key"], options["url"])
        else:
            owed = purge.pending_keys()
            self.stdout.write(f"pending keys: {' '.join(owed) if owed else '(none)'}")

    def _status(self, url: str, timeout: float) -> None:
        if not url.startswith(("http://", "https://")):
            raise CommandError("URL must be absolute (http:// or https://)")
        request = urllib.request.Request(  # noqa: S310 (checked just above)
            url, method="HEAD", headers={"X-Cache-Debug": "1", "Fastly-Debug": "1", "User-Agent": "sigma-cdn"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                status, headers = response.status, response.headers
        except urllib.error.HTTPError as exc:
            status, headers = exc.code, exc.headers
        except OSError as exc:
            raise CommandError(f"{url}: {exc}") from exc
        x_cache = headers.get("X-Cache") or headers.get("cf-cache-status") or ""
        cached = "HIT" in x_cache.upper()
        keys = headers.get("X-Cache-Keys") or headers.get("Surrogate-Key") or ""
        self.stdout.write(f"url: {url}")
        self.stdout.write(f"status: {status}")
        self.stdout.write(f"cached: {'yes' if cached else 'no'} (X-Cache: {x_cache or '-'})")
        self.stdout.write(f"age: {headers.get('Age', '-')} s")
        self.stdout.write(f"cache-control: {headers.get('Cache-Control', '-')}")
        self.stdout.write(f"keys: {keys or '(not shown by this CDN)'}")

    def _purge(self, keys: list[str], urls: list[str]) -> None:
        if not keys and not urls:
            raise CommandError("give --key and/or --url")
        if settings.CDN_PURGE_BACKEND == "none":
            raise CommandError("CDN_PURGE_BACKEND is none: there is no CDN to purge")
        backend = get_backend()
        try:
            if keys:
                backend.purge_keys(keys)
                self.stdout.write(f"purged keys: {' '.join(sorted(set(keys)))}")
            for url in urls:
                backend.purge_url(url)
                self.stdout.write(f"purged url: {url}")
        except PurgeError as exc:
            raise CommandError(str(exc)) from exc
