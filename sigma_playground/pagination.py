from __future__ import annotations

from django.conf import settings
from django.core.paginator import InvalidPage, Page, Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest


def paginate(request: HttpRequest, queryset: QuerySet, *, per_page: int | None = None) -> Page:
    """The requested page of ``queryset``; a malformed or out-of-range ``page`` is a 404, never a 500."""
    paginator = Paginator(queryset, per_page or getattr(settings, "PAGE_SIZE", 20))
    raw = request.GET.get("page", "1")
    try:
        number = int(raw)
    except (TypeError, ValueError):
        raise Http404("That page number is not valid.") from None
    try:
        return paginator.page(number)
    except InvalidPage:
        raise Http404("That page does not exist.") from None
