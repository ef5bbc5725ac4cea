"""Cache warming: render the pages most visitors ask for before they ask.

The design's list (the 50 most popular workbooks, the 100 most active authors' profiles, featured content)
plus the first page of each sort, fetched through the whole stack as an anonymous visitor would, so they land
in the page cache exactly as a real request would put them there. Warming requests are made in-process
(Django's test client, not over HTTP) and carry the WSGI environ key ``sigma.warming``, which keeps them out
of the view counts, and the untracked environ key, which keeps them out of the request metrics and the
access log (they are not site traffic; the task and the command report a summary instead). A client cannot
forge either: every header a client sends reaches the environ as ``HTTP_<NAME>``, never as a key without
that prefix. (Warming used to be an ``X-Sigma-Warming: 1`` header, which any visitor could send to stay
uncounted.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import Count
from django.urls import reverse

from sigma_playground.request_id import UNTRACKED_ENVIRON
from workbooks import selectors
from workbooks.models import Workbook

WARMING_ENVIRON = "sigma.warming"
POPULAR_WORKBOOKS = 50
ACTIVE_AUTHORS = 100
RECENT_WINDOW = 2000  # "most active": most workbooks among the newest RECENT_WINDOW listed ones


@dataclass
class WarmResult:
    written: int = 0
    already_fresh: int = 0
    failed: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, float]:
        data = asdict(self)
        data.pop("failures")
        return data


def is_warming(request) -> bool:
    return request.META.get(WARMING_ENVIRON) is True


def first_pages() -> list[str]:
    """Home and the first page of the list in each sort: what a ``lists`` bump empties that most visitors
    ask for next."""
    paths = [reverse("home"), reverse("workbooks:list")]
    return paths + [
        f"{reverse('workbooks:list')}?sort={sort}"
        for sort in selectors.SORTS
        if sort != selectors.DEFAULT_SORT
    ]


def warm_paths() -> list[str]:
    listed = Workbook.objects.listed()
    paths = first_pages()
    popular = listed.order_by(*selectors.SORTS["popular"]).only("pk", "slug")[:POPULAR_WORKBOOKS]
    featured = listed.filter(is_featured=True).order_by(*selectors.SORTS["newest"]).only("pk", "slug")[:20]
    paths += list(dict.fromkeys(w.get_absolute_url() for w in [*popular, *featured]))
    recent_ids = listed.order_by(*selectors.SORTS["newest"]).values("pk")[:RECENT_WINDOW]
    authors = (
        Workbook.objects.filter(pk__in=recent_ids)
        .values("author__username")
        .annotate(n=Count("pk"))
        .order_by("-n", "author__username")[:ACTIVE_AUTHORS]
    )
    paths += [reverse("profiles:detail", args=[row["author__username"]]) for row in authors]
    return paths


def warm(*, paths: list[str] | None = None, progress: Callable[[int, int], None] | None = None) -> WarmResult:
    # Imported here: django.test is large and web workers import this module (is_warming) at boot.
    from django.test import Client

    started = time.perf_counter()
    result = WarmResult()
    host = next((h for h in settings.ALLOWED_HOSTS if h and not h.startswith(".") and h != "*"), "localhost")
    client = Client(HTTP_HOST=host, raise_request_exception=False)
    paths = warm_paths() if paths is None else paths
    environ: dict[str, Any] = {WARMING_ENVIRON: True, UNTRACKED_ENVIRON: True}  # Client.get's **extra
    for done, path in enumerate(paths, start=1):
        response = client.get(path, secure=settings.SECURE_SSL_REDIRECT, **environ)
        if response.status_code != 200:
            result.failed += 1
            result.failures.append(f"{path}: {response.status_code}")
        elif response.get("X-Cache") == "hit":
            result.already_fresh += 1
        else:
            result.written += 1
        if progress:
            progress(done, len(paths))
    result.seconds = time.perf_counter() - started
    return result
