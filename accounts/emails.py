"""The emails accounts send. Rendered from templates/accounts/email/, sent through Django's mail backend
(SMTP in production, the console by default: see settings EMAIL_*), after the transaction commits."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts.models import User
from accounts.tokens import email_verification_token


def _send(template: str, *, to: str, context: dict) -> None:
    subject = " ".join(render_to_string(f"accounts/email/{template}_subject.txt", context).split())
    body = render_to_string(f"accounts/email/{template}.txt", context)
    transaction.on_commit(lambda: send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [to]))


def verification_link(user: User, *, base_url: str) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = email_verification_token.make_token(user)
    return base_url + reverse("accounts:verify_email", kwargs={"uidb64": uid, "token": token})


def send_verification(user: User, *, base_url: str) -> None:
    """ "Confirm your address": the link marks the address verified and signs its owner in."""
    _send(
        "verify",
        to=user.email,
        context={
            "user": user,
            "link": verification_link(user, base_url=base_url),
            "site_name": settings.SITE_NAME,
        },
    )


def send_already_registered(user: User, *, base_url: str) -> None:
    """Someone signed up with an address that has an account: tell its owner, not the person signing up."""
    _send(
        "already_registered",
        to=user.email,
        context={
            "user": user,
            "login": base_url + reverse("accounts:login"),
            "reset": base_url + reverse("accounts:password_reset"),
            "site_name": settings.SITE_NAME,
        },
    )
