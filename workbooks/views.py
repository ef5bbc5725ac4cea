"""Gallery views. Thin: selectors read, services write, sigma_playground.caching caches.

Public pages are cached twice over (sigma_playground/caching/pages.py): whole pages for anonymous visitors,
the shared fragment for everyone else, with personal parts (favorite state, owner actions, CSRF tokens)
rendered per request.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts import selectors as account_selectors
from accounts.http import AuthenticatedHttpRequest
from sigma_playground import client_ip
from sigma_playground.caching import keys
from sigma_playground.caching.pages import (
    QuerySpec,
    cache_anonymous_page,
    cached_fragment,
    choice,
    fill_personal,
    integer,
    many,
    one,
)
from sigma_playground.charts import Point, sparkline_svg, time_series_svg
from sigma_playground.pagination import (
    FRAGMENT_PARAM,
    cursor_fallback,
    fragment_page,
    keyset_page,
    keyset_page_from_request,
    list_query,
    page_links,
    query_url,
)
from sigma_playground.site import absolute
from workbooks import analytics, counters, search, selectors, services, sharing, warming
from workbooks.embed import iframe_src
from workbooks.forms import WorkbookForm


def page_size(request: HttpRequest, query: QueryDict | None = None) -> int:
    """``per_page`` from the URL, within 1..MAX_PAGE_SIZE; anything unparsable means the default."""
    try:
        size = int((request.GET if query is None else query).get("per_page", ""))
    except ValueError:
        return settings.PAGE_SIZE
    return max(1, min(size, settings.MAX_PAGE_SIZE))


# The query parameters each cached list understands (sigma_playground.caching.pages: the canonical query).
PAGE_PARAMS = {
    "sort": choice(*selectors.SORTS, selectors.RELEVANCE),
    "cursor": one(),
    "per_page": integer(1, settings.MAX_PAGE_SIZE, default=lambda: settings.PAGE_SIZE),
    FRAGMENT_PARAM: choice("1"),  # "Load more" (sigma_playground.pagination.wants_list_fragment)
}
LIST_QUERY = QuerySpec(
    {
        **PAGE_PARAMS,
        "q": one(selectors.normalise_query),
        "tag": many(selectors.normalise_tag, limit=selectors.MAX_TAG_FILTERS),
        "featured": choice("1"),
    }
)
TAG_QUERY = QuerySpec(PAGE_PARAMS)


def _lists(request: HttpRequest, **kwargs: Any) -> list[str]:
    return [keys.LISTS]


def _list_namespaces(request: HttpRequest, **kwargs: Any) -> list[str]:
    """A search page also shows matching people."""
    return [keys.LISTS, keys.PEOPLE] if request.GET.get("q", "").strip() else [keys.LISTS]


@cache_anonymous_page("home", namespaces=_lists)
def home(request: HttpRequest) -> HttpResponse:
    return _gallery_page(
        request, "home", context=lambda: {"sections": selectors.home_sections()}, page_template="home.html"
    )


def _gallery_page(
    request: HttpRequest, name: str, *, context: Callable[[], dict[str, Any]], page_template: str
) -> HttpResponse:
    """A page of one shared fragment (``workbooks/fragments/<name>.html``) cached with the lists."""
    fragment = cached_fragment(
        name, template=f"workbooks/fragments/{name}.html", context=context, namespaces=[keys.LISTS]
    )
    return render(request, page_template, {"fragment": fragment})


def _list_context(query: QueryDict, params: selectors.ListParams, per_page: int) -> dict[str, Any]:
    """Everything a list fragment shows, from the query string alone (no request, no user)."""
    listing = selectors.workbook_list(params=params)
    page = keyset_page(
        listing.queryset, ordering=listing.ordering, cursor=query.get("cursor") or None, per_page=per_page
    )
    if params.q:
        search.attach_headlines(page.object_list, params.q)
    total = selectors.workbook_list_total(params=params)
    popular = selectors.popular_tags(exclude=params.tags)
    return {
        "page": page,
        "links": page_links(query, page),
        "total": total,
        "params": params,
        "active_tags": params.tag_objects,
        "sort_links": [
            {"name": s, "url": query_url(query, sort=s, cursor=None), "active": s == params.sort}
            for s in selectors.sort_names(params)
        ],
        "clear_tags_url": query_url(query, tag=None, cursor=None),
        "tag_filters": [
            {"tag": tag, "url": query_url(query, tag=[*params.tags, tag.slug], cursor=None)}
            for tag in popular
        ],
        "people": account_selectors.people_matching(q=params.q) if params.q else [],
        "clear_search_url": query_url(query, q=None, cursor=None, sort=None),
    }


@cache_anonymous_page("list", namespaces=_list_namespaces, query=LIST_QUERY)
@cursor_fallback
def workbook_list(request: HttpRequest) -> HttpResponse:
    query = list_query(request, LIST_QUERY)
    params = selectors.parse_list_params(
        q=query.get("q"),
        tags=query.getlist("tag"),
        sort=query.get("sort"),
        featured=query.get("featured") == "1",
    )
    per_page = page_size(request, query)
    title = f"Search: {params.q}" if params.q else ("Featured workbooks" if params.featured else "")
    return fragment_page(
        request,
        "list",
        template="workbooks/fragments/list.html",
        context=lambda: _list_context(query, selectors.resolve_tags(params), per_page),
        namespaces=_list_namespaces(request),
        spec=LIST_QUERY,
        page_template="workbooks/list.html",
        page_context={"title": title},
    )


@cache_anonymous_page("tags", namespaces=_lists)
def tag_list(request: HttpRequest) -> HttpResponse:
    return _gallery_page(
        request,
        "tags",
        context=lambda: {"tags": selectors.tag_directory()},
        page_template="workbooks/tags.html",
    )


@cache_anonymous_page("tag", namespaces=_lists, query=TAG_QUERY)
@cursor_fallback
def tag_detail(request: HttpRequest, slug: str) -> HttpResponse:
    tag = selectors.tag_get(slug=slug)
    query = list_query(request, TAG_QUERY)
    per_page = page_size(request, query)

    def context() -> dict[str, Any]:
        params = selectors.resolve_tags(
            selectors.parse_list_params(q=None, tags=[tag.slug], sort=query.get("sort")), known=[tag]
        )
        return {"tag": tag, **_list_context(query, params, per_page)}

    return fragment_page(
        request,
        "tag",
        template="workbooks/fragments/tag.html",
        context=context,
        namespaces=[keys.LISTS],
        spec=TAG_QUERY,
        page_template="workbooks/tag.html",
        page_context={"title": tag.name, "tag_slug": tag.slug},
    )


def workbook_redirect(request: HttpRequest, pk: int) -> HttpResponse:
    return redirect(selectors.workbook_get_for_viewer(pk=pk, user=request.user), permanent=True)


def _count_view(request: HttpRequest, pk: int, slug: str = "", *, author_id: int | None = None) -> None:
    """A view counts for a GET (not HEAD), not by the warming task, not by the author, and once per visitor
    (their user id, or their client address) per workbook per VIEW_DEDUP_SECONDS (workbooks.counters).
    Called on a cache hit too, where the visitor is anonymous (``request.user`` may not exist there)."""
    if request.method != "GET" or warming.is_warming(request):
        return
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        if user.pk == author_id:
            return
        visitor = f"user:{user.pk}"
    else:
        visitor = f"addr:{client_ip.client_address(request)}"
    counters.record_view(workbook_id=pk, visitor=visitor)


@cache_anonymous_page(
    "detail",
    namespaces=lambda request, pk, slug: [keys.LISTS, keys.ns_workbook(pk)],
    on_hit=_count_view,
    # Every view is counted at the origin: the CDN keeps the page but revalidates each request (a 304 from
    # the page cache, which counts the view), so it saves bandwidth, not requests (docs/edge.md).
    shared_max_age=0,
)
def workbook_detail(request: HttpRequest, pk: int, slug: str) -> HttpResponse:
    workbook = selectors.workbook_get_for_viewer(pk=pk, user=request.user)
    if slug != workbook.slug:
        return redirect(workbook, permanent=True)
    return _detail_page(request, workbook)


@never_cache
@require_http_methods(["GET", "HEAD"])
def workbook_shared(request: HttpRequest, token: str) -> HttpResponse:
    """An unlisted workbook through its share link. Not in the anonymous page cache (its namespaces need
    the workbook's id, which only the database knows here); the shared fragment is cached as usual."""
    workbook = selectors.workbook_get_shared(token=token, user=request.user)
    response = _detail_page(request, workbook)
    response["X-Robots-Tag"] = "noindex"
    return response


def _detail_page(request: HttpRequest, workbook) -> HttpResponse:
    _count_view(request, workbook.pk, author_id=workbook.author_id)
    fragment = cached_fragment(
        "detail",
        template="workbooks/fragments/detail.html",
        context=lambda: {
            "workbook": workbook,
            "embed_src": iframe_src(workbook.sigma_embed_url),
            "related": selectors.related_workbooks(workbook=workbook),
        },
        namespaces=[keys.LISTS, keys.ns_workbook(workbook.pk)],
        variant=str(workbook.pk),
    )
    actions = render_to_string(
        "workbooks/includes/detail_actions.html",
        {
            "workbook": workbook,
            "is_favorited": selectors.is_favorited(user=request.user, workbook=workbook),
            "is_owner": request.user.is_authenticated and workbook.author_id == request.user.pk,
        },
        request=request,
    )
    page = fill_personal(fragment, {"actions": actions})
    image = sharing.share_image(workbook)
    share = {
        "image": {**image, "url": absolute(request, image["url"])} if image else None,
        "oembed": sharing.oembed_link(request, workbook) if workbook.is_listed else None,
    }
    return render(request, "workbooks/detail.html", {"fragment": page, "workbook": workbook, "share": share})


def _workbook_fields(form: WorkbookForm) -> dict[str, Any]:
    """What the publish and edit forms give the services."""
    data = form.cleaned_data
    return {
        "title": data["title"],
        "description": data["description"],
        "sigma_embed_url": data["sigma_embed_url"],
        "tags": data["tags"],
        "visibility": data["visibility"],
        "publish": data["publish"],
        "thumbnail": form.processed_thumbnail,
    }


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def workbook_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = WorkbookForm(request.POST or None, request.FILES or None, uploader_id=request.user.pk)
    if request.method == "POST" and form.is_valid():
        workbook = services.workbook_publish(author=request.user, **_workbook_fields(form))
        messages.success(
            request, "Published." if workbook.published_at else "Saved as a draft. Only you can see it."
        )
        return redirect(workbook)
    return render(request, "workbooks/form.html", {"form": form, "workbook": None})


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def workbook_edit(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    workbook = selectors.workbook_get_for_author(pk=pk, user=request.user)
    form = WorkbookForm(
        request.POST or None, request.FILES or None, instance=workbook, uploader_id=request.user.pk
    )
    if request.method == "POST" and form.is_valid():
        services.workbook_update(
            workbook=workbook,
            clear_thumbnail=form.cleaned_data.get("clear_thumbnail", False),
            **_workbook_fields(form),
        )
        messages.success(request, "Saved.")
        return redirect(workbook)
    return render(request, "workbooks/form.html", {"form": form, "workbook": workbook})


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def workbook_delete(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """GET: a page that names the workbook and asks; POST (from that page): delete."""
    workbook = selectors.workbook_get_for_author(pk=pk, user=request.user)
    if request.method == "GET":
        return render(request, "workbooks/delete.html", {"workbook": workbook})
    title = workbook.title
    services.workbook_delete(workbook=workbook)
    messages.success(request, f"Deleted “{title}”.")
    return redirect(request.user.get_absolute_url())


def wants_fragment(request: HttpRequest) -> bool:
    """The in-place script (static/js/gallery.js) asks for the new button instead of a redirect."""
    return request.headers.get("X-Requested-With") == "fetch"


def _safe_next(request: HttpRequest) -> str | None:
    target = request.POST.get("next", "")
    ok = url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=False)
    return target if target and ok else None


def _favorite_answer(request: HttpRequest, workbook, *, is_favorited: bool) -> HttpResponse:
    next_url = _safe_next(request)
    if wants_fragment(request):
        count = selectors.favorite_count(workbook_id=workbook.pk)
        html = render_to_string(
            "workbooks/includes/favorite_form.html",
            {"workbook": workbook, "is_favorited": is_favorited, "next": next_url},
            request=request,
        )
        message = "Added to your favorites." if is_favorited else "Removed from your favorites."
        return JsonResponse({"html": html, "count": count, "message": message})
    return redirect(next_url or workbook.get_absolute_url())


@login_required
@require_POST
def favorite(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    return _set_favorite(request, pk, on=True)


@login_required
@require_POST
def unfavorite(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    return _set_favorite(request, pk, on=False)


def _set_favorite(request: AuthenticatedHttpRequest, pk: int, *, on: bool) -> HttpResponse:
    workbook = selectors.workbook_get_for_viewer(
        pk=pk, user=request.user, share_token=request.POST.get("token")
    )
    (services.favorite_add if on else services.favorite_remove)(user=request.user, workbook=workbook)
    return _favorite_answer(request, workbook, is_favorited=on)


@login_required
@cursor_fallback
def feed(request: AuthenticatedHttpRequest) -> HttpResponse:
    listing = selectors.feed_for(user=request.user)
    page = keyset_page_from_request(
        request,
        listing.queryset,
        ordering=listing.ordering,
        per_page=page_size(request),
        narrow=listing.narrow,
    )
    return render(request, "workbooks/feed.html", {"page": page, "links": page_links(request.GET, page)})


@login_required
@cursor_fallback
def favorites(request: AuthenticatedHttpRequest) -> HttpResponse:
    listing = selectors.favorites_of(user=request.user)
    page = keyset_page_from_request(
        request, listing.queryset, ordering=listing.ordering, per_page=page_size(request)
    )
    return render(request, "workbooks/favorites.html", {"page": page, "links": page_links(request.GET, page)})


# --- Author analytics (workbooks.analytics) -------------------------------------------------------------


def _sparks(series: analytics.Series) -> dict[str, Any]:
    days = len(series.dates)
    return {
        "views": sparkline_svg(
            values=series.views, label=f"Views, last {days} days: {series.total_views} in total"
        ),
        "favorites": sparkline_svg(
            values=series.favorites,
            label=f"Favorites, last {days} days: {series.total_favorites} in total",
            tone="none",
        ),
    }


@never_cache
@login_required
def my_workbooks(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The author's own workbooks with their 30-day numbers. Personal: never in a shared cache."""
    sort, number = analytics.parse_mine_params(sort=request.GET.get("sort"), page=request.GET.get("page"))
    mine = analytics.author_workbooks(user=request.user, sort=sort, page=number)
    query = request.GET
    context = {
        "mine": mine,
        "rows": [(workbook, series, _sparks(series)) for workbook, series in mine.rows],
        "overall": _sparks(mine.daily),
        "sort_links": [
            {"name": s, "url": query_url(query, sort=s, page=None), "active": s == sort}
            for s in analytics.MINE_SORTS
        ],
        "next_url": query_url(query, page=str(number + 1)) if mine.has_next else None,
        "previous_url": query_url(query, page=str(number - 1) if number > 2 else None)
        if number > 1
        else None,
    }
    return render(request, "workbooks/mine.html", context)


def _chart(workbook_id: int, metric: str, series: analytics.Series) -> Any:
    values = series.views if metric == "views" else series.favorites
    end = datetime.combine(series.dates[-1], time(12), tzinfo=UTC)
    start = datetime.combine(series.dates[0], time(12), tzinfo=UTC)
    days = len(series.dates)
    return time_series_svg(
        chart_id=f"chart-{metric}",
        title=f"{metric.capitalize()} per day, last {days} days",
        description=f"{metric.capitalize()} of workbook {workbook_id} per UTC day: {sum(values)} in {days} days, "
        f"at most {max(values, default=0)} on one day.",
        history=[
            Point(datetime.combine(d, time(12), tzinfo=UTC), float(v))
            for d, v in zip(series.dates, values, strict=True)
        ],
        start=start,
        end=end,
        now=end,
        y_range=(0.0, max(1.0, max(values, default=0) * 1.1)),
        format_y=lambda v: f"{v:,.0f}",
        tone="ok" if metric == "views" else "none",
        tick_days={7: 1, 30: 7, 90: 30, 365: 90}.get(days, 30),
    )


@never_cache
def workbook_stats(request: HttpRequest, pk: int) -> HttpResponse:
    """Views and favorites per day of one workbook: its author and staff only (404 for anyone else)."""
    workbook = analytics.workbook_for_stats(pk=pk, user=request.user)
    try:
        days = int(request.GET.get("days", analytics.WINDOW_DAYS))
    except ValueError:
        days = analytics.WINDOW_DAYS
    if days not in analytics.PERIODS:
        days = analytics.WINDOW_DAYS
    year = analytics.workbook_days(workbook=workbook)
    series = analytics.last(year, days)
    context = {
        "workbook": workbook,
        "days": days,
        "series": series,
        "periods": [
            {"days": p, "url": query_url(request.GET, days=str(p)), "active": p == days}
            for p in analytics.PERIODS
        ],
        "totals": {p: analytics.last(year, p) for p in analytics.PERIODS},
        "charts": [_chart(workbook.pk, "views", series), _chart(workbook.pk, "favorites", series)],
        "trending_rank": analytics.trending_rank(workbook=workbook),
        "trending_limit": analytics.TRENDING_RANK_LIMIT,
        "author_rank": analytics.rank_among_author(workbook=workbook),
    }
    return render(request, "workbooks/stats.html", context)
