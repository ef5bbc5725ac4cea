"""The header's bell: the unread count of the logged-in person, computed only if the page shows it.

Rendered per request into base.html's header, which is never part of a shared cache entry: anonymous pages
(the only whole pages cached, by the middleware and the WSGI front) have no bell, and the shared fragments of
logged-in pages hold no header (sigma_playground/caching/pages.py).
"""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from notifications import selectors


def bell(request: HttpRequest) -> dict[str, object]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"notifications_unread": SimpleLazyObject(lambda: selectors.unread_count(user=user))}
