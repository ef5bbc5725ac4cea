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
from accounts.tokens import email_change_token, email_verification_token


def _send(template: str, *, to: str, context: dict) -> None:
    context = {
        "site_name": settings.SITE_NAME,
        "link_hours": max(1, settings.PASSWORD_RESET_TIMEOUT // 3600),
        **context,
    }
    subject = " ".join(render_to_string(f"accounts/email/{template}_subject.txt", context).split())
    body = render_to_string(f"accounts/email/{template}.txt", context)
    transaction.on_commit(lambda: send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [to]))


def verification_link(user: User, *, base_url: str) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = email_verification_token.make_token(user)
    return base_url + reverse("accounts:verify_email", kwargs={"uidb64": uid, "token": token})


def send_verification(user: User, *, base_url: str) -> None:
    """ "Confirm your address": the link marks the address verified and signs its owner in."""
    _send("verify", to=user.email, context={"user": user, "link": verification_link(user, base_url=base_url)})


def send_already_registered(user: User, *, base_url: str, change: bool = False) -> None:
    """Someone signed up with an address that has an account, or (``change``) asked to move their account to
    it: tell its owner, not the person who typed it."""
    _send(
        "already_registered",
        to=user.email,
        context={
            "user": user,
            "change": change,
            "login": base_url + reverse("accounts:login"),
            "reset": base_url + reverse("accounts:password_reset"),
        },
    )


def email_change_link(user: User, *, new_email: str, base_url: str) -> str:
    token = email_change_token(user, new_email)
    return base_url + reverse("accounts:email_change_confirm", kwargs={"token": token})


def send_email_change_link(user: User, *, new_email: str, base_url: str) -> None:
    """To the new address: the link that makes it the account's address."""
    _send(
        "email_change",
        to=new_email,
        context={
            "user": user,
            "new_email": new_email,
            "link": email_change_link(user, new_email=new_email, base_url=base_url),
        },
    )


def send_email_change_notice(user: User, *, new_email: str, base_url: str) -> None:
    """To the current address, whether or not the new one is free (the same mail either way, so this inbox
    learns nothing about other accounts): a change was asked for, and how to stop it."""
    _send(
        "email_change_notice",
        to=user.email,
        context={
            "user": user,
            "new_email": new_email,
            "reset": base_url + reverse("accounts:password_reset"),
        },
    )
