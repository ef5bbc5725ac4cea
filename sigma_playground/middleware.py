"""Cross-cutting middleware."""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import BadRequest
from django.http import HttpRequest, HttpResponse
from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise with a one-year lifetime for hashed files: RFC 9111 advises at most a year, and a
    content hash in the name makes "immutable" true whatever the number."""

    FOREVER = 365 * 24 * 60 * 60


class NulCharacterMiddleware:
    """The one guard for request text that reaches the database: a NUL character.

    PostgreSQL text cannot hold U+0000, so a NUL in a path segment (``/users/%00/``), a query parameter
    (``?q=%00``, an admin changelist filter), a cookie (the session key) or a header (a stored User-Agent) made the query fail with a
    DataError, a 500. Forms already refuse NUL (Django's CharField validator); this refuses it everywhere else
    a request carries text, with a 400 and before any view, cache or session reads it. Other control
    characters are harmless to the database; user-facing text fields refuse them (sigma_playground.text).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _has_nul(request):
            raise BadRequest("The request contains a NUL character.")
        return self.get_response(request)


def _has_nul(request: HttpRequest) -> bool:
    if "\x00" in request.path_info:
        return True
    for key, values in request.GET.lists():
        if "\x00" in key or any("\x00" in value for value in values):
            return True
    if any("\x00" in key or "\x00" in value for key, value in request.COOKIES.items()):
        return True
    # Headers some code stores (the User-Agent of a failed log-in, django-axes).
    return any("\x00" in value for name, value in request.META.items() if name.startswith("HTTP_"))
