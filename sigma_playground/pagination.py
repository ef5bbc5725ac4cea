"""Pagination that stays flat, and totals that do not count a million rows.

Keyset (seek) pagination: a page is "the next N rows after this one in sort order", found with
``WHERE (key, id) < (%s, %s) ORDER BY key DESC, id DESC LIMIT N + 1``, one index range scan whatever the
depth, so page 500 costs what page 1 costs, and rows inserted while someone walks the pages can never
make an earlier row appear twice. The position travels in an opaque ``cursor`` URL parameter (base64 of
the boundary row's sort values, the direction and the page number shown). The ordering must end with a
unique column (``id``) so that rows tied on the sort key are neither skipped nor repeated.

Totals: ``count_for_display`` counts exactly up to ``EXACT_COUNT_LIMIT`` rows (a bounded scan) and above
that takes PostgreSQL's planner estimate, shown as "about 1.2 million".
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import F, Field, QuerySet
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan, TupleLessThan
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import render
from django.utils.functional import cached_property

from sigma_playground.caching.pages import cached_fragment

CURSOR_PARAM = "cursor"
# Gallery totals are exact up to here and "about …" above. A bounded count costs up to the limit in rows, and
# more where PostgreSQL builds a bitmap of every match first (full-text search): 1,000 keeps a total's cost from
# growing with the table (bench-db: 13 ms for a word in 5% of a million rows with 10,000, 1 ms now), and
# nobody paging through 20 cards at a time needs to know whether there are 2,310 or "about 2,300".
EXACT_COUNT_LIMIT = 1_000
# Admin changelists number their pages from the count, so they stay exact further (and are staff-only).
ADMIN_EXACT_COUNT_LIMIT = 10_000


class InvalidCursor(Http404):
    pass


# --- Cursors ----------------------------------------------------------------------------------------------


def _encode_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {"t": value.isoformat()}
    if isinstance(value, dt.date):
        return {"d": value.isoformat()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot put {type(value).__name__} in a cursor")


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        ((kind, text),) = value.items()
        if kind == "t" and isinstance(text, str):
            return dt.datetime.fromisoformat(text)
        if kind == "d" and isinstance(text, str):
            return dt.date.fromisoformat(text)
        raise ValueError("bad typed value")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise ValueError("bad value")


def encode_cursor(values: Sequence[Any], *, forward: bool, page: int) -> str:
    payload = {"v": [_encode_value(v) for v in values], "f": forward, "p": page}
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclass(frozen=True)
class Cursor:
    values: tuple[Any, ...]
    forward: bool
    page: int


def decode_cursor(text: str, *, width: int) -> Cursor:
    """Parse a cursor; anything malformed or of the wrong shape is an ``InvalidCursor`` (a 404)."""
    try:
        if len(text) > 1000:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        payload = json.loads(raw)
        values = tuple(_decode_value(v) for v in payload["v"])
        forward, page = payload["f"], payload["p"]
        if len(values) != width or not isinstance(forward, bool) or not isinstance(page, int) or page < 1:
            raise ValueError("wrong shape")
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursor("That page link is not valid.") from exc
    return Cursor(values=values, forward=forward, page=page)


# --- Keyset pages -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeysetPage:
    object_list: list[Any]
    number: int
    has_next: bool
    has_previous: bool
    next_cursor: str | None
    previous_cursor: str | None

    def __iter__(self):
        return iter(self.object_list)

    def __len__(self) -> int:
        return len(self.object_list)

    def has_other_pages(self) -> bool:
        return self.has_next or self.has_previous


def _parse_ordering(ordering: Sequence[str]) -> tuple[list[str], bool]:
    fields = [o.lstrip("-") for o in ordering]
    descending = {o.startswith("-") for o in ordering}
    if len(descending) != 1:
        raise ValueError("keyset ordering must be all ascending or all descending")
    if fields[-1] not in {"id", "pk"}:
        raise ValueError("keyset ordering must end with the unique id")
    return fields, descending.pop()


def _key(obj: Any, field: str) -> Any:
    value = obj
    for part in field.split("__"):
        value = getattr(value, part)
    return value


# ``narrow(queryset, boundary, forward, limit)``: what to take the page from instead of ``queryset``: the
# ``limit`` rows that follow ``boundary`` (None: the first page) in the keyset order, ``forward`` or backward,
# or a superset of them. For lists whose rows no single index delivers in order (the feed: one index range
# per followed author).
Narrow = Callable[[QuerySet, tuple[Any, ...] | None, bool, int], QuerySet]


_BIGINT = (-(2**63), 2**63 - 1)
_INTEGER_FIELDS = frozenset(
    {
        "AutoField", "BigAutoField", "SmallAutoField", "IntegerField", "BigIntegerField", "SmallIntegerField",
        "PositiveIntegerField", "PositiveBigIntegerField", "PositiveSmallIntegerField",
    }
)  # fmt: skip
_TEXT_FIELDS = frozenset({"CharField", "TextField", "SlugField", "EmailField", "URLField"})


def _ordering_field(queryset: QuerySet, name: str) -> Field:
    """The model field (or annotation's output field) a keyset ordering column is."""
    annotation = queryset.query.annotations.get(name)
    if annotation is not None:
        return annotation.output_field
    model, *path, last = [queryset.model, *name.split("__")]
    for part in path:
        model = model._meta.get_field(part).related_model
    return model._meta.pk if last == "pk" else model._meta.get_field(last)


def _value_fits(field: Field, value: Any) -> bool:
    kind = field.get_internal_type()
    if kind == "DateTimeField":
        return isinstance(value, dt.datetime) and value.tzinfo is not None
    if kind == "DateField":
        return type(value) is dt.date
    if isinstance(value, bool):
        return kind == "BooleanField"
    if kind in _INTEGER_FIELDS or kind == "ForeignKey":
        return isinstance(value, int) and _BIGINT[0] <= value <= _BIGINT[1]
    if kind in {"FloatField", "DecimalField"}:
        return isinstance(value, int | float) and math.isfinite(value) and abs(value) < 1e300
    if kind in _TEXT_FIELDS:
        return isinstance(value, str) and "\x00" not in value
    return False


def check_cursor_types(queryset: QuerySet, fields: Sequence[str], values: Sequence[Any]) -> None:
    """A cursor decodes to plain JSON values, which a forger chooses freely: each must be of its ordering
    column's type (an aware datetime for a DateTimeField, an integer in bigint range for an id...), or the
    seek query would fail in the database (a DataError, a 500) instead of being a 404."""
    for name, value in zip(fields, values, strict=True):
        if not _value_fits(_ordering_field(queryset, name), value):
            raise InvalidCursor("That page link is not valid.")


def keyset_page(
    queryset: QuerySet,
    *,
    ordering: Sequence[str],
    cursor: str | None,
    per_page: int,
    narrow: Narrow | None = None,
) -> KeysetPage:
    """One page of ``queryset`` in ``ordering``: the first page, or the page a cursor points to.

    A forward cursor holds the last row of the page before; a backward one (a "previous" link) the first
    row of the page after. Each carries the number of the page it leads to, for display only. The link
    back to page 1 has no cursor at all.
    """
    fields, descending = _parse_ordering(ordering)
    position = decode_cursor(cursor, width=len(fields)) if cursor else None
    if position is not None:
        check_cursor_types(queryset, fields, position.values)
    qs, number, forward = queryset, 1, True
    if position is not None:
        number, forward = position.page, position.forward
        # Forward in a descending list means "smaller than the boundary"; backward flips it.
        beyond = TupleLessThan if descending == forward else TupleGreaterThan
        qs = qs.filter(beyond(Tuple(*(F(f) for f in fields)), position.values))
    if narrow is not None:
        qs = narrow(qs, position.values if position is not None else None, forward, per_page + 1)
    order = list(ordering) if forward else [o[1:] if o.startswith("-") else f"-{o}" for o in ordering]
    rows = list(qs.order_by(*order)[: per_page + 1])
    more = len(rows) > per_page
    rows = rows[:per_page]
    if position is not None and not rows:
        raise InvalidCursor("That page is empty; the list may have changed.")
    if forward:
        has_next, has_previous = more, number > 1
    else:
        rows.reverse()
        has_next, has_previous = True, more
        number = max(number, 2) if more else 1  # rows added or removed above us since the link was made
    next_cursor = (
        encode_cursor([_key(rows[-1], f) for f in fields], forward=True, page=number + 1)
        if has_next
        else None
    )
    previous_cursor = (
        encode_cursor([_key(rows[0], f) for f in fields], forward=False, page=number - 1)
        if has_previous and number > 2
        else None
    )
    return KeysetPage(
        object_list=rows,
        number=number,
        has_next=has_next,
        has_previous=has_previous,
        next_cursor=next_cursor,
        previous_cursor=previous_cursor,
    )


def keyset_page_from_request(
    request: HttpRequest,
    queryset: QuerySet,
    *,
    ordering: Sequence[str],
    per_page: int,
    narrow: Narrow | None = None,
) -> KeysetPage:
    return keyset_page(
        queryset,
        ordering=ordering,
        cursor=request.GET.get(CURSOR_PARAM) or None,
        per_page=per_page,
        narrow=narrow,
    )


# --- Counts -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Total:
    value: int
    exact: bool

    def __int__(self) -> int:
        return self.value


def planner_estimate(queryset: QuerySet) -> int | None:
    """PostgreSQL's estimate of the rows ``queryset`` returns (planning only, no execution)."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def has_statistics(queryset: QuerySet) -> bool:
    """Has the queryset's table been analyzed? Before that (a new or freshly loaded table; ``reltuples`` is
    -1 on PostgreSQL 14+) the planner guesses row counts from the table's size: a dozen rows can be
    estimated as thousands."""
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(
            "SELECT reltuples >= 0 FROM pg_class WHERE oid = %s::regclass", [queryset.model._meta.db_table]
        )
        row = cursor.fetchone()
    return bool(row and row[0])


# Above this many times the limit, the planner's estimate is trusted without counting at all: even an estimate
# twice too high then means more rows than the limit, so "about" is the right kind of answer.
ESTIMATE_TRUST_FACTOR = 2


def count_for_display(queryset: QuerySet, *, limit: int = EXACT_COUNT_LIMIT) -> Total:
    """Exact up to ``limit``, the planner's estimate above it.

    The estimate comes first (planning only, about a millisecond): when it is far above the limit the count
    is not run at all, since even a bounded count of limit + 1 matching rows can mean walking half a million
    index entries when matches are spread thin (bench-db: 70 ms for a tag on 2% of a million rows), or
    building a bitmap of every match (full-text search).
    Otherwise a count over at most limit + 1 rows decides between exact and "about".
    """
    if queryset.query.is_empty():
        return Total(0, exact=True)
    estimate = planner_estimate(queryset)
    if estimate is not None and estimate > limit * ESTIMATE_TRUST_FACTOR and has_statistics(queryset):
        return Total(estimate, exact=False)
    bounded = queryset.order_by().values("pk")[: limit + 1].count()
    if bounded <= limit:
        return Total(bounded, exact=True)
    # The planner can be far off for rare combinations; never show fewer than we know there are.
    return Total(max(estimate or 0, limit + 1), exact=False)


# --- Numbered pages (small lists and admin) -----------------------------------------------------------------


class EstimatedCountPaginator(Paginator):
    """A Paginator whose ``count`` is exact up to ``EXACT_COUNT_LIMIT`` and estimated above; for admin
    changelists over large tables, where an exact COUNT(*) on every page view is most of the cost."""

    @cached_property
    def count(self) -> int:
        if isinstance(self.object_list, QuerySet):
            return count_for_display(self.object_list, limit=ADMIN_EXACT_COUNT_LIMIT).value
        return super().count


def query_url(query: QueryDict, **changes: str | list[str] | None) -> str:
    """``?…`` for the current query string with ``changes`` applied (None removes a key), like Django's
    ``{% querystring %}`` tag but usable where a template has no request (cached fragments)."""
    params = query.copy()
    for name, value in changes.items():
        if value is None:
            params.pop(name, None)
        elif isinstance(value, list):
            params.setlist(name, value)
        else:
            params[name] = value
    return "?" + params.urlencode() if params else "?"


def page_links(query: QueryDict, page: KeysetPage) -> dict[str, str | None]:
    """The next and previous URLs of a keyset page, keeping every other parameter."""
    return {
        "next": query_url(query, cursor=page.next_cursor) if page.has_next else None,
        "previous": (query_url(query, cursor=page.previous_cursor or None) if page.has_previous else None),
    }


STALE_CURSOR_MESSAGE = (
    "That page link is no longer valid (the list may have changed), so here is the first page."
)


def cursor_fallback(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A view of a keyset-paged list: a stale or malformed cursor leads to the first page, with a message,
    instead of a 404 (a 302 to the same URL without the cursor; never cached)."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except InvalidCursor:
            if CURSOR_PARAM not in request.GET:
                raise
            messages.info(request, STALE_CURSOR_MESSAGE)
            return HttpResponseRedirect(request.path + query_url(request.GET, cursor=None).rstrip("?"))

    return wrapped


FRAGMENT_PARAM = "fragment"


def wants_list_fragment(request: HttpRequest) -> bool:
    """``?fragment=1``: "Load more" (static/js/gallery.js) asks for the list's HTML without the page around it."""
    return request.GET.get(FRAGMENT_PARAM) == "1"


class _CanonicalQuery(Protocol):
    def canonical(self, query: QueryDict) -> QueryDict: ...


def list_query(request: HttpRequest, spec: _CanonicalQuery) -> QueryDict:
    """The query a list is built from and its links are built from: the page's canonical query
    (sigma_playground.caching.pages.QuerySpec: only what the page understands, so junk parameters neither
    make cache entries nor reach the links) without ``fragment``, so that links in a fragment fetched by
    "Load more" are the page's own."""
    query = spec.canonical(request.GET).copy()
    query.pop(FRAGMENT_PARAM, None)
    return query


def fragment_variant(request: HttpRequest, spec: _CanonicalQuery) -> str:
    """The cached fragment's variant for a list URL: its canonical query, the same with or without
    ``?fragment=1``, so "Load more" reuses the fragment its page cached (and the other way round)."""
    encoded = list_query(request, spec).urlencode()
    return f"{request.path}?{encoded}" if encoded else request.path


def fragment_response(html: str) -> HttpResponse:
    response = HttpResponse(html)
    response["X-Robots-Tag"] = "noindex"
    return response


def fragment_page(
    request: HttpRequest,
    name: str,
    *,
    template: str,
    context: Callable[[], dict[str, Any]],
    namespaces: Iterable[str],
    spec: _CanonicalQuery,
    page_template: str,
    page_context: dict[str, Any],
) -> HttpResponse:
    """A list page whose shared part is a cached fragment: the fragment alone for "Load more"
    (``?fragment=1``), otherwise ``page_template`` around it."""
    fragment = cached_fragment(
        name,
        template=template,
        context=context,
        namespaces=namespaces,
        variant=fragment_variant(request, spec),
    )
    if wants_list_fragment(request):
        return fragment_response(fragment)
    return render(request, page_template, {"fragment": fragment, **page_context})
