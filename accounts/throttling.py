"""Log-in lockouts (django-axes, configured in settings) and the sign-up, password-reset and email-change
limits.

django-axes records failed log-ins in the database and, after AXES_FAILURE_LIMIT failures for one account or
from one client address, refuses further tries for AXES_COOLOFF_TIME before any password is hashed (its
backend comes first in AUTHENTICATION_BACKENDS). This module gives it our username normalisation, the
lockout page (429 with Retry-After) and the log line and metric of each refused try.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from sigma_playground import client_ip, ratelimit
from sigma_playground.telemetry import metrics

logger = logging.getLogger("accounts.throttling")

LOGIN_LOCKOUTS = metrics.counter(
    "sigma_login_lockouts_total",
    "Log-in attempts refused because the account or the client address is locked out (django-axes).",
)


def username_key(request: HttpRequest, credentials: dict[str, Any] | None) -> str | None:
    """Log-in accepts "Alice" for "alice", so failures count against one account whatever the case."""
    username = (credentials or {}).get("username") or request.POST.get("username")
    return username.strip().lower()[:150] if isinstance(username, str) else None


def cool_off_seconds() -> int:
    return int(settings.AXES_COOLOFF_TIME.total_seconds())


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict | None = None
) -> HttpResponse:
    seconds = cool_off_seconds()
    response = render(
        request,
        "registration/locked_out.html",
        {"minutes": max(1, round(seconds / 60))},
        status=settings.AXES_HTTP_RESPONSE_CODE,
    )
    response["Retry-After"] = str(seconds)
    return response


def _locked_out(
    sender: Any, request: HttpRequest | None = None, username: str | None = None, **kwargs
) -> None:
    LOGIN_LOCKOUTS.inc()
    logger.warning(
        "login refused: locked out (account %r, client %s) for up to %d s",
        username,
        client_ip.client_address(request) if request is not None else "?",
        cool_off_seconds(),
        extra={"lockout_username": username},
    )


def connect_signals() -> None:
    from axes.signals import user_locked_out

    receiver(user_locked_out, dispatch_uid="accounts.throttling.locked_out")(_locked_out)


def signup_allowed(request: HttpRequest) -> ratelimit.Decision:
    return ratelimit.hit(
        "signup",
        client_ip.client_address(request),
        limit=settings.SIGNUP_LIMIT_PER_HOUR,
        window_seconds=3600,
    )


def email_change_allowed(user_id: int) -> ratelimit.Decision:
    """Counted on every submitted email-change form, before the password is checked: the form must not
    become a way to guess the password of a session left open (log-in lockouts do not see it)."""
    return ratelimit.hit(
        "email_change", f"user:{user_id}", limit=settings.EMAIL_CHANGES_PER_HOUR, window_seconds=3600
    )


def password_reset_allowed(request: HttpRequest) -> ratelimit.Decision:
    """Reset requests from one client address (the visitor is told: 429)."""
    return ratelimit.hit(
        "password_reset",
        client_ip.client_address(request),
        limit=settings.PASSWORD_RESETS_PER_HOUR,
        window_seconds=3600,
    )


def password_reset_mail_allowed(email: str) -> bool:
    """Reset mails to one address, from any number of client addresses. Counted whether or not an account has
    the address, and refused silently (the same "check your email" page), so it tells nobody which addresses
    have accounts."""
    subject = f"email:{email.strip().lower()}"
    return ratelimit.hit(
        "password_reset", subject, limit=settings.PASSWORD_RESETS_PER_HOUR, window_seconds=3600
    ).allowed
