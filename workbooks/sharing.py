"""What other sites and machines read: Atom feeds, the sitemap, oEmbed, and the share image of a page.

Everything here starts from ``Workbook.objects.listed()``: a private, unlisted or draft workbook, or one by
a deactivated author, is never in a feed, a sitemap or an oEmbed answer (an unlisted workbook's page also
says ``noindex`` and offers no oEmbed link). Feeds, sitemaps and oEmbed answers are cached like pages
(``cache_anonymous_page``), under the namespaces whose writes change them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib.syndication.views import Feed
from django.core.files.storage import default_storage
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve, reverse
from django.utils.feedgenerator import Atom1Feed
from django.utils.html import escape
from django.views.decorators.http import require_safe

from accounts import selectors as account_selectors
from accounts.models import User
from sigma_playground.caching import keys
from sigma_playground.caching.pages import QuerySpec, cache_anonymous_page, one
from sigma_playground.site import absolute
from workbooks import selectors
from workbooks.embed import iframe_src
from workbooks.models import Tag, Workbook
from workbooks.templatetags.workbook_images import picture_context

FEED_SIZE = 20
# Workbooks per sitemap file: one primary-key range each (the protocol allows 50,000 URLs; 10,000 keeps a
# file near a megabyte and its build under a second).
SITEMAP_CHUNK = 10_000
SHARE_IMAGE_MAX_WIDTH = 1280


# --- The share image ----------------------------------------------------------------------------------------


def share_image(workbook: Workbook) -> dict[str, Any] | None:
    """The widest JPEG derivative up to 1280 px (what Open Graph and Twitter cards take), or None."""
    picture = picture_context(workbook.thumbnail_derivatives) if workbook.thumbnail else None
    if picture is None:
        return None
    jpegs = [
        e for e in workbook.thumbnail_derivatives["sources"]["image/jpeg"] if e[0] <= SHARE_IMAGE_MAX_WIDTH
    ]
    if not jpegs:
        return None
    width, height, name = max(jpegs)
    return {"url": default_storage.url(name), "width": width, "height": height}


# --- Atom feeds -------------------------------------------------------------------------------------------


class _WorkbookFeed(Feed):
    feed_type = Atom1Feed

    def item_title(self, item: Workbook) -> str:
        return item.title

    def item_description(self, item: Workbook) -> str:
        return item.description

    def item_link(self, item: Workbook) -> str:
        return item.get_absolute_url()

    def item_pubdate(self, item: Workbook):
        return item.published_at

    def item_updateddate(self, item: Workbook):
        return item.updated_at

    def item_author_name(self, item: Workbook) -> str:
        return item.author.display_name

    def item_author_link(self, item: Workbook) -> str:
        return item.author.get_absolute_url()

    def item_categories(self, item: Workbook) -> list[str]:
        return [tag.name for tag in item.tags.all()]


def _newest(qs) -> list[Workbook]:
    return list(
        qs.select_related("author").prefetch_related("tags").order_by(*selectors.SORTS["newest"])[:FEED_SIZE]
    )


class NewestFeed(_WorkbookFeed):
    title = f"{settings.SITE_NAME}: newest workbooks"
    subtitle = "Sigma workbooks published by the BI community, newest first."

    def link(self) -> str:
        return reverse("workbooks:list")

    def items(self) -> list[Workbook]:
        return _newest(Workbook.objects.listed())


class TagFeed(_WorkbookFeed):
    def get_object(self, request: HttpRequest, slug: str) -> Tag:
        return selectors.tag_get(slug=slug)

    def title(self, tag: Tag) -> str:
        return f"{settings.SITE_NAME}: workbooks tagged {tag.name}"

    def link(self, tag: Tag) -> str:
        return tag.get_absolute_url()

    def subtitle(self, tag: Tag) -> str:
        return f"Newest workbooks tagged {tag.name}."

    def items(self, tag: Tag) -> list[Workbook]:
        return _newest(Workbook.objects.listed().filter(tag_links__tag=tag))


class AuthorFeed(_WorkbookFeed):
    def get_object(self, request: HttpRequest, username: str) -> User:
        return account_selectors.user_get_public(username=username)

    def title(self, user: User) -> str:
        return f"{settings.SITE_NAME}: workbooks by {user.display_name}"

    def link(self, user: User) -> str:
        return user.get_absolute_url()

    def subtitle(self, user: User) -> str:
        return f"Newest workbooks published by {user.display_name}."

    def items(self, user: User) -> list[Workbook]:
        return _newest(Workbook.objects.listed().filter(author=user))


def _lists(request: HttpRequest, **kwargs: Any) -> list[str]:
    return [keys.LISTS]


def _author(request: HttpRequest, username: str) -> list[str]:
    return [keys.LISTS, keys.ns_user(username)]


newest_feed = cache_anonymous_page("feed_newest", namespaces=_lists)(NewestFeed())
tag_feed = cache_anonymous_page("feed_tag", namespaces=_lists)(TagFeed())
author_feed = cache_anonymous_page("feed_author", namespaces=_author)(AuthorFeed())


# --- Sitemaps -------------------------------------------------------------------------------------------


def sitemap_chunks() -> list[int]:
    """The numbers of the primary-key ranges (``SITEMAP_CHUNK`` ids each) that hold a listed workbook.

    Keyset-walked: each step is one probe for the lowest listed id at or after the next range's start, so
    the index costs a query per non-empty range (100 at a million workbooks), never a scan of every row.
    """
    chunks: list[int] = []
    start = 0
    listed = Workbook.objects.listed()
    while True:
        first = listed.filter(pk__gte=start).order_by("pk").values_list("pk", flat=True).first()
        if first is None:
            return chunks
        chunk = first // SITEMAP_CHUNK
        chunks.append(chunk)
        start = (chunk + 1) * SITEMAP_CHUNK


def _xml(body: str) -> HttpResponse:
    # Cache-Control, Surrogate-Key and Vary come from the page cache and CacheControlMiddleware, as for the
    # HTML pages: a CDN keeps them only until a write purges their keys.
    return HttpResponse('<?xml version="1.0" encoding="UTF-8"?>\n' + body, content_type="application/xml")


_NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'


@require_safe
@cache_anonymous_page("sitemap_index", namespaces=_lists, ttl=3600)
def sitemap_index(request: HttpRequest) -> HttpResponse:
    locations = [reverse("sitemap_pages")] + [
        reverse("sitemap_workbooks", kwargs={"chunk": chunk}) for chunk in sitemap_chunks()
    ]
    entries = "".join(
        f"<sitemap><loc>{escape(absolute(request, loc))}</loc></sitemap>\n" for loc in locations
    )
    return _xml(f"<sitemapindex {_NS}>\n{entries}</sitemapindex>\n")


def _urlset(request: HttpRequest, rows: list[tuple[str, Any]]) -> HttpResponse:
    entries = "".join(
        f"<url><loc>{escape(absolute(request, path))}</loc>"
        + (f"<lastmod>{lastmod.date().isoformat()}</lastmod>" if lastmod else "")
        + "</url>\n"
        for path, lastmod in rows
    )
    return _xml(f"<urlset {_NS}>\n{entries}</urlset>\n")


@require_safe
@cache_anonymous_page("sitemap_workbooks", namespaces=_lists, ttl=3600)
def sitemap_workbooks(request: HttpRequest, chunk: int) -> HttpResponse:
    """One primary-key range of listed workbooks: a range scan of the primary key."""
    rows = (
        Workbook.objects.listed()
        .filter(pk__gte=chunk * SITEMAP_CHUNK, pk__lt=(chunk + 1) * SITEMAP_CHUNK)
        .order_by("pk")
        .values_list("pk", "slug", "updated_at")
    )
    urls = [
        (reverse("workbooks:detail", kwargs={"pk": pk, "slug": slug}), updated) for pk, slug, updated in rows
    ]
    if not urls:
        raise Http404("No such sitemap.")
    return _urlset(request, urls)


@require_safe
@cache_anonymous_page("sitemap_pages", namespaces=_lists, ttl=3600)
def sitemap_pages(request: HttpRequest) -> HttpResponse:
    """The home page, the directories and every tag page that lists something."""
    paths = [reverse("home"), reverse("workbooks:list"), reverse("workbooks:tags"), reverse("profiles:list")]
    paths += [tag.get_absolute_url() for tag in selectors.tag_directory()]
    return _urlset(request, [(path, None) for path in paths])


# --- oEmbed ---------------------------------------------------------------------------------------------

OEMBED_DEFAULT_SIZE = (960, 540)


def _oembed_pk(request: HttpRequest) -> int | None:
    """The workbook id in ``?url=``, when it is one of our workbook pages; None otherwise."""
    url = request.GET.get("url", "")
    if len(url) > 2000:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return None
    try:
        match = resolve(parts.path)
    except Resolver404:
        return None
    if match.view_name not in ("workbooks:detail", "workbooks:redirect"):
        return None
    return int(match.kwargs["pk"])


def _oembed_namespaces(request: HttpRequest) -> list[str]:
    pk = _oembed_pk(request)
    return [keys.LISTS] + ([keys.ns_workbook(pk)] if pk is not None else [])


def _bounded(value: str | None, default: int, low: int = 200, high: int = 1920) -> int:
    try:
        return max(low, min(int(value or default), high))
    except ValueError:
        return default


# What the oEmbed answer depends on (everything else is dropped from its cache key).
OEMBED_QUERY = QuerySpec({"url": one(), "format": one(), "maxwidth": one(), "maxheight": one()})


@require_safe
@cache_anonymous_page("oembed", namespaces=_oembed_namespaces, query=OEMBED_QUERY)
def oembed(request: HttpRequest) -> HttpResponse:
    """oEmbed (https://oembed.com/) for listed workbook pages: a "rich" answer with the Sigma embed."""
    if request.GET.get("format", "json") != "json":
        return HttpResponse("Only format=json is supported.", status=501, content_type="text/plain")
    pk = _oembed_pk(request)
    if pk is None:
        return HttpResponse(
            "url must be a workbook page of this site.", status=404, content_type="text/plain"
        )
    workbook = Workbook.objects.listed().select_related("author").filter(pk=pk).first()
    if workbook is None:
        return HttpResponse("No such workbook.", status=404, content_type="text/plain")
    width = _bounded(request.GET.get("maxwidth"), OEMBED_DEFAULT_SIZE[0])
    height = min(_bounded(request.GET.get("maxheight"), OEMBED_DEFAULT_SIZE[1]), width * 9 // 16)
    src = escape(iframe_src(workbook.sigma_embed_url))
    data: dict[str, Any] = {
        "version": "1.0",
        "type": "rich",
        "provider_name": settings.SITE_NAME,
        "provider_url": absolute(request, reverse("home")),
        "title": workbook.title,
        "author_name": workbook.author.display_name,
        "author_url": absolute(request, workbook.author.get_absolute_url()),
        "width": width,
        "height": height,
        "cache_age": settings.HTTP_CACHE_MAX_AGE,
        "html": (
            f'<iframe src="{src}" title="{escape(workbook.title)} (Sigma workbook)" width="{width}" '
            f'height="{height}" referrerpolicy="strict-origin-when-cross-origin" allow="fullscreen" '
            'allowfullscreen loading="lazy" style="border:0"></iframe>'
        ),
    }
    image = share_image(workbook)
    if image is not None:
        data.update(
            thumbnail_url=absolute(request, image["url"]),
            thumbnail_width=image["width"],
            thumbnail_height=image["height"],
        )
    return JsonResponse(data, json_dumps_params={"ensure_ascii": False})


def oembed_link(request: HttpRequest, workbook: Workbook) -> str:
    """The discovery URL for a workbook page's ``<link rel="alternate" type="application/json+oembed">``."""
    query = urlencode({"url": absolute(request, workbook.get_absolute_url()), "format": "json"})
    return absolute(request, reverse("oembed") + "?" + query)
