"""Page and fragment caching for views.

Anonymous visitors (no session cookie, no pending messages) get whole pages from the cache, served by
``AnonymousPageCacheMiddleware`` near the top of the middleware stack: a hit reads the page and the
generations it depends on in one ``MGET``, runs no SQL, never touches the session and skips the middleware
below it (the stored page already carries the headers they added: Cache-Control, Vary, ETag, CSP, the
security headers). Views opt in with ``@cache_anonymous_page``, which names the namespaces the page shows.

Everyone else gets the page's shared fragment from the cache and their personal parts (header, favorite and
follow state, CSRF tokens) rendered per request: a fragment is built from a context that holds no user and no
request, so it cannot contain personal data. Personal parts that sit inside a fragment are marked with
``personal_marker(name)`` and filled in per request.

Invalidation is exact: a write bumps the namespaces it affects (invalidate.py); a page stored under older
generations is a miss, and the next request builds a fresh one.

Pages never expire together (issue 15: pages stored at one moment, after warming or a deploy, all expired at
once and were rebuilt in request threads, p95 going from 3 ms to 10 s in waves):

- each page is stored fresh for a jittered lifetime, ``PAGE_CACHE_TTL`` times a random factor between
  ``1 - PAGE_CACHE_TTL_JITTER`` and 1 (never longer than the TTL: the documented bound on how far counters on
  cached pages lag still holds), so pages stored together fall due at different moments;
- refresh-ahead: a page hit in its last ``PAGE_REFRESH_AHEAD_SECONDS`` of freshness is rebuilt by exactly
  one request, the one that takes the page's short rebuild lock (``SET NX PX``), while every other reader
  keeps getting the stored copy from the front. A page that is read keeps being renewed before it expires;
  only pages nobody read for a whole lifetime ever miss.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, QueryDict
from django.template.loader import render_to_string
from django.urls import Resolver404, ResolverMatch, get_urlconf, resolve
from django.utils.cache import get_conditional_response, patch_vary_headers
from django.utils.safestring import SafeString, mark_safe

from sigma_playground import request_id as rid
from sigma_playground.caching import keys, service

# The cache's logger: rate-limited, so a database outage is a line every few seconds, not one per page.
logger = logging.getLogger("sigma_playground.cache")

PUBLIC = "public"  # response attribute read by sigma_playground.http_caching
# Surrogate keys of a cacheable page (Fastly's header; the Varnish VCL copies it to xkey), stripped by the CDN.
SURROGATE_KEY_HEADER = "Surrogate-Key"
CACHE_TAG_HEADER = "Cache-Tag"
# Request attribute: the page cache middleware is building this page for anonymous visitors.
CANDIDATE = "sigma_page_candidate"
# Headers that belong to one response, never to a stored page.
_PER_RESPONSE_HEADERS = frozenset({"x-request-id", "x-cache", "set-cookie"})
_CONDITIONAL = ("HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE", "HTTP_IF_MATCH", "HTTP_IF_UNMODIFIED_SINCE")


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


# --- The canonical query ------------------------------------------------------------------------------------
#
# A cached page is keyed on its path and its *canonical* query: only the parameters the page understands,
# each normalised, in a fixed (sorted) order. ``?a1=1``, ``?utm_source=x`` or ``?b=2&a=1`` then reuse the
# entry of the page they show instead of each adding one (1,000 random parameters made 1,000 to 2,000 Redis
# entries). The view renders from the same canonical query (the middleware replaces ``request.GET`` with it
# before building), so a stored page can never carry a parameter its key does not.

Normaliser = Callable[[list[str]], list[str]]


def one(transform: Callable[[str], str] = str.strip) -> Normaliser:
    """A single-valued parameter: the last value (what ``QueryDict.get`` reads), transformed; empty drops it."""

    def normalise(values: list[str]) -> list[str]:
        value = transform(values[-1]) if values else ""
        return [value] if value else []

    return normalise


def choice(*allowed: str) -> Normaliser:
    """One of ``allowed``, or nothing (the page's default)."""
    return lambda values: [values[-1]] if values and values[-1] in allowed else []


def many(transform: Callable[[str], str], *, limit: int) -> Normaliser:
    """A repeatable parameter: transformed, empty and duplicate values dropped, at most ``limit``, in order."""
    return lambda values: list(dict.fromkeys(v for v in map(transform, values) if v))[:limit]


def integer(low: int, high: int, default: Callable[[], int]) -> Normaliser:
    """A whole number clamped to [low, high]; unparsable or the default drops it."""

    def normalise(values: list[str]) -> list[str]:
        try:
            number = max(low, min(int(values[-1]), high)) if values else None
        except ValueError:
            return []
        return [] if number is None or number == default() else [str(number)]

    return normalise


@dataclass(frozen=True)
class QuerySpec:
    """The query parameters a page understands, with how each is normalised."""

    params: dict[str, Normaliser] = field(default_factory=dict)

    def canonical(self, query: QueryDict) -> QueryDict:
        out = QueryDict(mutable=True)
        for name in sorted(self.params):
            values = self.params[name](query.getlist(name))
            if values:
                out.setlist(name, values)
        out._mutable = False
        return out

    def full_path(self, request: HttpRequest) -> str:
        """The request's path with its canonical query: what keys its page and fragment."""
        query = self.canonical(request.GET).urlencode()
        return f"{request.path}?{query}" if query else request.path


NO_QUERY = QuerySpec()


@dataclass(frozen=True)
class PageSpec:
    view_name: str
    namespaces: Callable[..., Iterable[str]]
    on_hit: Callable[..., None] | None
    ttl: float | None
    shared_max_age: int | None
    query: QuerySpec = NO_QUERY


def cache_anonymous_page(
    view_name: str,
    *,
    namespaces: Callable[..., Iterable[str]],
    on_hit: Callable[..., None] | None = None,
    ttl: float | None = None,
    shared_max_age: int | None = None,
    query: QuerySpec = NO_QUERY,
):
    """Serve anonymous GETs of this view from the cache (through AnonymousPageCacheMiddleware).

    ``namespaces(request, **kwargs)`` names what the page shows, from the URL alone (no query: a hit runs
    none); ``on_hit(request, **kwargs)`` runs when a stored page is served instead of the view (view
    counting). The page's surrogate keys (``Surrogate-Key``, for the CDN) are those namespaces' keys.
    ``shared_max_age``: how long a CDN may keep the page (default ``CDN_SHARED_MAX_AGE``); 0 makes the CDN
    revalidate every request with the origin (a 304 when unchanged), for pages whose every view must reach
    the origin. ``query`` is the parameters the page understands (everything else is dropped from its key
    and from the request the view sees).
    """
    spec = PageSpec(
        view_name=view_name,
        namespaces=namespaces,
        on_hit=on_hit,
        ttl=ttl,
        shared_max_age=shared_max_age,
        query=query,
    )

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            response = view(request, *args, **kwargs)
            if getattr(request, CANDIDATE, False):
                if response.status_code == 200:
                    # Marks on the response, read back with getattr here and by CacheControlMiddleware.
                    response.sigma_cache_class = PUBLIC  # type: ignore[attr-defined]
                    response.sigma_shared_max_age = spec.shared_max_age  # type: ignore[attr-defined]
                    surrogate = keys.surrogate_keys(namespaces(request, *args, **kwargs))
                    response[SURROGATE_KEY_HEADER] = " ".join(surrogate)
                    if settings.CDN_PURGE_BACKEND == "cloudflare":
                        response[CACHE_TAG_HEADER] = ",".join(surrogate)  # Cloudflare's name for them
                # The same URL is a personal page with a session cookie: shared caches must key on it.
                patch_vary_headers(response, ["Cookie"])
            return response

        wrapped.sigma_page_cache = spec  # type: ignore[attr-defined]
        return wrapped

    return decorator


def _generations_of(entry: service.Entry | None) -> dict[str, int] | None:
    value = entry.value if entry is not None else None
    return value.get("generations") if isinstance(value, dict) else None


@dataclass
class PageLookup:
    """A request for a cached page, and what the cache holds for it."""

    match: ResolverMatch
    spec: PageSpec
    key: str
    namespaces: list[str]
    generations: dict[str, int] | None  # None: the cache could not be read
    entry: service.Entry | None  # only an entry stored under the current generations
    refresh: bool = False  # this request holds the page's rebuild lock: it rebuilds the page ahead of expiry

    @property
    def hit(self) -> bool:
        return self.entry is not None and self.entry.fresh and not self.refresh

    def refetch(self) -> service.Entry | None:
        self.generations, entry = service.get_entry_with_generations(
            keys.KIND_PAGE, self.key, self.namespaces
        )
        self.entry = (
            entry if self.generations is not None and _generations_of(entry) == self.generations else None
        )
        return self.entry


# The front (caching/front.py) leaves its lookup here for the middleware: a miss costs one round trip.
LOOKUP_ENVIRON = "sigma.page_lookup"
_NOT_LOOKED_UP = object()


def lookup_page(request: HttpRequest) -> PageLookup | None:
    """None when the request can't be answered from the page cache; otherwise the page's entry, from this
    process's recent copies or from Redis, counted as a hit or a miss."""
    found = _cacheable(request)
    if found is None:
        return None
    match, spec = found
    key = keys.page(spec.view_name, spec.query.full_path(request), secure=request.is_secure())
    namespaces = list(spec.namespaces(request, *match.args, **match.kwargs))
    lookup = PageLookup(match=match, spec=spec, key=key, namespaces=namespaces, generations=None, entry=None)
    recent = service.RECENT_PAGES.get(key) if settings.PAGE_LOCAL_SECONDS > 0 else None
    if recent is not None:
        lookup.entry = recent  # never refreshed from here: only the entry in Redis says whether it is due
        service.count_request(keys.KIND_PAGE, recent)
        return lookup
    entry = lookup.refetch()
    if entry is not None and lookup.hit:
        _refresh_ahead(request, lookup)
        service.count_request(keys.KIND_PAGE, None if lookup.refresh else entry)
        keep = min(settings.PAGE_LOCAL_SECONDS, entry.fresh_until - time.time())
        if keep > 0 and not lookup.refresh:
            service.RECENT_PAGES.set(key, entry, ttl=keep)
    return lookup


def _refresh_ahead(request: HttpRequest, lookup: PageLookup) -> None:
    """A hit in its page's last PAGE_REFRESH_AHEAD_SECONDS: the one request that takes the rebuild lock
    rebuilds it (``lookup.refresh``); everyone else is served the stored copy. Only a plain GET can refresh:
    a HEAD or a conditional GET would not produce a storable page."""
    ahead = refresh_ahead_seconds(lookup.spec)
    entry = lookup.entry
    if ahead <= 0 or entry is None or entry.fresh_until - time.time() > ahead:
        return
    if request.method != "GET" or any(name in request.META for name in _CONDITIONAL):
        return
    if not service.try_lock(lookup.key):
        return
    # Another request may have stored the renewed page between our read and our lock: look again.
    renewed = lookup.refetch()
    if renewed is not None and renewed.fresh_until - time.time() > ahead:
        service.unlock(lookup.key)
        return
    lookup.refresh = True


REFRESH_AHEAD_MAX_FRACTION = 0.25


def refresh_ahead_seconds(spec: PageSpec) -> float:
    """The refresh-ahead window of ``spec``'s pages: PAGE_REFRESH_AHEAD_SECONDS, but never more than a quarter
    of their lifetime. A window as long as the lifetime (10 s against a 5 s TTL) made every page due at once,
    so each request that found the lock free rebuilt the page and sequential readers never got a hit."""
    ttl = spec.ttl or settings.PAGE_CACHE_TTL
    return min(settings.PAGE_REFRESH_AHEAD_SECONDS, ttl * REFRESH_AHEAD_MAX_FRACTION)


def jittered_ttl(ttl: float) -> float:
    """``ttl`` shortened by a random fraction of up to PAGE_CACHE_TTL_JITTER: entries stored together expire
    apart. Not for security (S311): only spreads expiries."""
    jitter = min(max(settings.PAGE_CACHE_TTL_JITTER, 0.0), 0.9)
    return ttl * (1 - jitter * random.random())  # noqa: S311


def _cacheable(request: HttpRequest) -> tuple[ResolverMatch, PageSpec] | None:
    if not (settings.PAGE_CACHE_ENABLED and anonymous_request(request)):
        return None
    if settings.SECURE_SSL_REDIRECT and not request.is_secure():
        return None  # SecurityMiddleware, below, redirects it
    try:
        request.get_host()  # the ALLOWED_HOSTS check CommonMiddleware would make: a bad host gets its 400
    except DisallowedHost:
        return None
    return _resolve_cached_page(get_urlconf() or settings.ROOT_URLCONF, request.path_info)


@functools.lru_cache(maxsize=1024)
def _resolve_cached_page(urlconf: str, path: str) -> tuple[ResolverMatch, PageSpec] | None:
    """The view of ``path`` when it is a cached page. Remembered per URLconf and path (bounded): resolving
    walks the URL patterns and was a tenth of a hit's cost."""
    try:
        match = resolve(path, urlconf)
    except Resolver404:
        return None
    spec = getattr(match.func, "sigma_page_cache", None)
    return (match, spec) if isinstance(spec, PageSpec) else None


class AnonymousPageCacheMiddleware:
    """Whole anonymous pages from the cache, in front of the rest of the middleware stack.

    Most hits never get here: the WSGI front (caching/front.py) answers them before Django's handler. This
    middleware answers the ones the front leaves (conditional GETs, and everything when the front is off),
    and builds and stores every miss.

    A page served from Redis is also kept in this process for PAGE_LOCAL_SECONDS (0.5 s): requests for a hot
    page in that window make no round trip. That is the bound on how late a write shows on other processes
    (the issue allows a second); in the process that made the write, the bump empties the local copies.

    Sits below RequestIdMiddleware (every hit still gets a request id and its access-log line) and above
    everything else. On a hit it records the request metrics the view-level Prometheus middleware would
    have, answers conditional GETs from the stored ETag, and runs the page's ``on_hit``. On a miss the whole
    stack below builds the page once (stampede control in ``service.get_or_build``) and the response, with
    the headers every middleware added, is stored under the generations read before the build began: a
    write that lands during the build leaves the stored page already out of date, never wrongly current.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        from sigma_playground.request_metrics import PrometheusAfterMiddleware

        self.get_response = get_response
        self.request_metrics = PrometheusAfterMiddleware(get_response)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        found = request.META.pop(LOOKUP_ENVIRON, _NOT_LOOKED_UP)
        lookup: PageLookup | None = lookup_page(request) if found is _NOT_LOOKED_UP else found
        if lookup is None:
            return self.get_response(request)
        if lookup.entry is not None and lookup.hit:
            return self._serve(request, lookup, lookup.entry.value)
        setattr(request, CANDIDATE, True)
        # A failed rebuild (a 5xx) is answered with the copy in hand, and only that answer is recorded.
        setattr(request, rid.STALE_FALLBACK_ATTR, lookup.entry is not None)
        # The view sees only what the key holds (templates too: the search box reads request.GET.q).
        # An immutable QueryDict (canonical sets _mutable); the stubs' _ImmutableQueryDict exists only in them.
        request.GET = lookup.spec.query.canonical(request.GET)  # type: ignore[assignment]
        gens = lookup.generations
        ttl = jittered_ttl(lookup.spec.ttl or settings.PAGE_CACHE_TTL)

        def build() -> service.Built:
            response = self.get_response(request)
            storable = (
                gens is not None
                and request.method == "GET"  # ConditionalGetMiddleware adds no ETag to a HEAD response
                and getattr(response, "sigma_cache_class", None) == PUBLIC
                and response.status_code == 200
                and not response.streaming
                and not response.cookies
            )
            return service.Built(
                result=response,
                value=_stored(response, gens) if storable and gens is not None else None,
                store=storable,
                # A rebuild that failed (the database is down: a 503) serves the stale copy in hand, if any.
                failed=response.status_code >= 500,
            )

        if lookup.refresh:  # this request took the lock in lookup_page: rebuild ahead of expiry
            try:
                try:
                    built = build()
                except Exception:
                    logger.exception("page cache: rebuilding ahead of expiry failed, serving the stored copy")
                    return self._serve(request, lookup, lookup.entry.value)  # type: ignore[union-attr]
                if built.failed:  # the database is down (a 503): the stored copy is still fresh
                    logger.warning("page cache: rebuilding ahead of expiry failed, serving the stored copy")
                    return self._serve(request, lookup, lookup.entry.value)  # type: ignore[union-attr]
                if built.store:
                    service.set_entry(keys.KIND_PAGE, lookup.key, built.value, ttl)
                return built.result
            finally:
                service.unlock(lookup.key)
        return service.get_or_build(
            keys.KIND_PAGE,
            lookup.key,
            build,
            ttl=ttl,
            from_entry=lambda value: self._serve(request, lookup, value),
            entry=lookup.entry,
            fetch=lookup.refetch,
        )

    def _serve(self, request: HttpRequest, lookup: PageLookup, value: dict[str, Any]) -> HttpResponse:
        match = lookup.match
        request.resolver_match = match  # for the access log and the per-view metrics
        self.request_metrics.process_request(request)
        self.request_metrics.process_view(request, match.func, match.args, match.kwargs)
        response = HttpResponse(value["content"], status=value["status"])
        for name, header in value["headers"]:
            response.headers[name] = header
        # "stale": a copy past its freshness, served because its rebuild failed or is under way elsewhere.
        stale = lookup.entry is not None and value is lookup.entry.value and not lookup.entry.fresh
        response["X-Cache"] = "stale" if stale else "hit"
        # Never None when given a response; the stubs have no overload that says so.
        response = get_conditional_response(request, etag=response.get("ETag"), response=response)  # type: ignore[assignment]
        if lookup.spec.on_hit is not None:
            lookup.spec.on_hit(request, *match.args, **match.kwargs)
        return self.request_metrics.process_response(request, response)


def _stored(response: HttpResponse, generations: dict[str, int]) -> dict[str, Any]:
    return {
        "generations": generations,
        "status": response.status_code,
        "headers": [(str(k), str(v)) for k, v in response.items() if k.lower() not in _PER_RESPONSE_HEADERS],
        "content": response.content,
    }


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
    namespaces = list(namespaces)
    gens = service.generations(namespaces)
    key = keys.fragment(name, variant, gens)

    def build() -> service.Built:
        with service.replica_reads_after(namespaces):
            html = render_to_string(template, context())
        return service.Built(result=html, value=html)

    html = service.get_or_build(
        keys.KIND_FRAGMENT, key, build, ttl=jittered_ttl(ttl or settings.PAGE_CACHE_TTL)
    )
    return mark_safe(html)  # noqa: S308
