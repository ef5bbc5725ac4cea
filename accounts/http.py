"""The request a login-required view receives, for the type checker.

``request.user`` is ``User | AnonymousUser`` on a plain ``HttpRequest``. Behind ``@login_required`` it is always a
signed-in ``User``: views so decorated annotate ``request: AuthenticatedHttpRequest`` (the pattern django-stubs
documents). Django still passes its own ``HttpRequest``; this class is never instantiated.
"""

from __future__ import annotations

from django.http import HttpRequest

from accounts.models import User


class AuthenticatedHttpRequest(HttpRequest):
    user: User
