from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from sigma_playground.pagination import keyset_page_from_request
from workbooks import selectors, services
from workbooks.embed import iframe_src
from workbooks.forms import WorkbookForm


def page_size(request: HttpRequest) -> int:
    """``per_page`` from the URL, within 1..MAX_PAGE_SIZE; anything unparsable means the default."""
    try:
        size = int(request.GET.get("per_page", ""))
    except ValueError:
        return settings.PAGE_SIZE
    return max(1, min(size, settings.MAX_PAGE_SIZE))


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html", {"sections": selectors.home_sections()})


def workbook_list(request: HttpRequest) -> HttpResponse:
    params = selectors.resolve_tags(
        selectors.parse_list_params(
            q=request.GET.get("q"), tags=request.GET.getlist("tag"), sort=request.GET.get("sort")
        )
    )
    listing = selectors.workbook_list(params=params)
    page = keyset_page_from_request(
        request, listing.queryset, ordering=listing.ordering, per_page=page_size(request)
    )
    context = {
        "page": page,
        "total": selectors.workbook_list_total(params=params),
        "params": params,
        "active_tags": params.tag_objects,
        "sorts": [*selectors.SORTS, *([selectors.RELEVANCE] if params.q else [])],
    }
    return render(request, "workbooks/list.html", context)


def tag_detail(request: HttpRequest, slug: str) -> HttpResponse:
    tag = selectors.tag_get(slug=slug)
    params = selectors.resolve_tags(
        selectors.parse_list_params(q=None, tags=[tag.slug], sort=request.GET.get("sort")), known=[tag]
    )
    listing = selectors.workbook_list(params=params)
    page = keyset_page_from_request(
        request, listing.queryset, ordering=listing.ordering, per_page=page_size(request)
    )
    context = {
        "tag": tag,
        "page": page,
        "total": selectors.workbook_list_total(params=params),
        "params": params,
        "sorts": list(selectors.SORTS),
    }
    return render(request, "workbooks/tag.html", context)


def workbook_redirect(request: HttpRequest, pk: int) -> HttpResponse:
    return redirect(selectors.workbook_get_for_viewer(pk=pk, user=request.user), permanent=True)


def workbook_detail(request: HttpRequest, pk: int, slug: str) -> HttpResponse:
    workbook = selectors.workbook_get_for_viewer(pk=pk, user=request.user)
    if slug != workbook.slug:
        return redirect(workbook, permanent=True)
    services.workbook_record_view(workbook_id=workbook.pk)
    context = {
        "workbook": workbook,
        "embed_src": iframe_src(workbook.sigma_embed_url),
        "related": selectors.related_workbooks(workbook=workbook),
        "is_favorited": selectors.is_favorited(user=request.user, workbook=workbook),
        "is_owner": request.user.is_authenticated and workbook.author_id == request.user.pk,
    }
    return render(request, "workbooks/detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def workbook_create(request: HttpRequest) -> HttpResponse:
    form = WorkbookForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        workbook = services.workbook_publish(
            author=request.user,
            title=data["title"],
            description=data["description"],
            sigma_embed_url=data["sigma_embed_url"],
            tags=data["tags"],
            visibility=data["visibility"],
            publish=data["publish"],
            thumbnail=form.processed_thumbnail,
        )
        messages.success(
            request, "Published." if workbook.published_at else "Saved as a draft. Only you can see it."
        )
        return redirect(workbook)
    return render(request, "workbooks/form.html", {"form": form, "workbook": None})


@login_required
@require_http_methods(["GET", "POST"])
def workbook_edit(request: HttpRequest, pk: int) -> HttpResponse:
    workbook = selectors.workbook_get_for_author(pk=pk, user=request.user)
    form = WorkbookForm(request.POST or None, request.FILES or None, instance=workbook)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        services.workbook_update(
            workbook=workbook,
            title=data["title"],
            description=data["description"],
            sigma_embed_url=data["sigma_embed_url"],
            tags=data["tags"],
            visibility=data["visibility"],
            publish=data["publish"],
            thumbnail=form.processed_thumbnail,
            clear_thumbnail=data.get("clear_thumbnail", False),
        )
        messages.success(request, "Saved.")
        return redirect(workbook)
    return render(request, "workbooks/form.html", {"form": form, "workbook": workbook})


@login_required
@require_POST
def workbook_delete(request: HttpRequest, pk: int) -> HttpResponse:
    workbook = selectors.workbook_get_for_author(pk=pk, user=request.user)
    title = workbook.title
    services.workbook_delete(workbook=workbook)
    messages.success(request, f"Deleted “{title}”.")
    return redirect(request.user.get_absolute_url())


@login_required
@require_POST
def favorite(request: HttpRequest, pk: int) -> HttpResponse:
    workbook = selectors.workbook_get_for_viewer(pk=pk, user=request.user)
    services.favorite_add(user=request.user, workbook=workbook)
    return redirect(workbook)


@login_required
@require_POST
def unfavorite(request: HttpRequest, pk: int) -> HttpResponse:
    workbook = selectors.workbook_get_for_viewer(pk=pk, user=request.user)
    services.favorite_remove(user=request.user, workbook=workbook)
    return redirect(workbook)


@login_required
def feed(request: HttpRequest) -> HttpResponse:
    listing = selectors.feed_for(user=request.user)
    page = keyset_page_from_request(
        request, listing.queryset, ordering=listing.ordering, per_page=page_size(request)
    )
    return render(request, "workbooks/feed.html", {"page": page})


@login_required
def favorites(request: HttpRequest) -> HttpResponse:
    listing = selectors.favorites_of(user=request.user)
    page = keyset_page_from_request(
        request, listing.queryset, ordering=listing.ordering, per_page=page_size(request)
    )
    return render(request, "workbooks/favorites.html", {"page": page})
