"""Email through a real SMTP server: aiosmtpd, started by the test on a free local port, receives what
Django's SMTP backend sends; the tests follow the password-reset and the email-change links in the received
mails to the end."""

from __future__ import annotations

import email
import email.policy
import json
import re
import socket

import pytest
from django.urls import reverse

from tests.factories import TEST_PASSWORD, UserFactory
from tests.test_production_settings import run

pytestmark = pytest.mark.django_db


class Inbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 Message accepted"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server(settings):
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.EMAIL_USE_TLS, settings.EMAIL_TIMEOUT = False, 10
    try:
        yield inbox
    finally:
        controller.stop()


def test_password_reset_mail_goes_through_smtp_and_its_link_works(browser, smtp_server):
    user = UserFactory(username="erin", email="erin@example.com")
    response = browser.submit(reverse("accounts:password_reset"), {"email": "erin@example.com"})
    assert response["Location"] == reverse("accounts:password_reset_done")
    (message,) = smtp_server.messages
    assert message["To"] == "erin@example.com"
    assert message["From"] == "Sigma Playground <noreply@localhost>"
    assert message["Subject"] == "Reset your Sigma Playground password"
    body = message.get_content()
    link = re.search(r"http://testserver(/accounts/password/reset/[^\s]+)", body).group(1)
    form_url = browser.get(link)["Location"]
    done = browser.submit(
        form_url, {"new_password1": "smtp-tested-passphrase", "new_password2": "smtp-tested-passphrase"}
    )
    assert done["Location"] == reverse("accounts:password_reset_complete")
    login = browser.submit(
        reverse("accounts:login"), {"username": "erin", "password": "smtp-tested-passphrase"}
    )
    assert login.status_code == 302
    user.refresh_from_db()
    assert user.check_password("smtp-tested-passphrase")


def test_email_change_mails_go_through_smtp_and_the_link_changes_the_address(
    browser, smtp_server, django_capture_on_commit_callbacks
):
    user = UserFactory(username="fay", email="fay@example.com")
    browser.force_login(user)
    with django_capture_on_commit_callbacks(execute=True):
        response = browser.submit(
            reverse("accounts:email_change"), {"email": "fay@new.example", "password": TEST_PASSWORD}
        )
    assert response["Location"] == reverse("accounts:email_change_sent")
    notice, confirm = smtp_server.messages
    assert (notice["To"], confirm["To"]) == ("fay@example.com", "fay@new.example")
    assert notice["Subject"] == "A change of your email address on Sigma Playground was requested"
    assert "fay@new.example" in notice.get_content()
    assert confirm["Subject"] == "Confirm your new email address for Sigma Playground"
    link = re.search(r"http://testserver(/accounts/email/confirm/\S+)", confirm.get_content()).group(1)
    user.refresh_from_db()
    assert user.email == "fay@example.com"
    done = browser.submit(link, {})
    assert done["Location"] == reverse("accounts:profile_edit")
    user.refresh_from_db()
    assert user.email == "fay@new.example" and user.email_verified
    assert browser.get(link).status_code == 400


PROBE = """
import json, django
django.setup()
from django.conf import settings as s
print(json.dumps({k: getattr(s, k) for k in ("EMAIL_BACKEND", "EMAIL_HOST", "EMAIL_PORT", "EMAIL_USE_TLS",
      "EMAIL_TIMEOUT", "DEFAULT_FROM_EMAIL", "EMAIL_HOST_USER")}))
"""


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend", "EMAIL_PORT": 587,
              "EMAIL_USE_TLS": True, "EMAIL_TIMEOUT": 10,
              "DEFAULT_FROM_EMAIL": "Sigma Playground <noreply@localhost>"}),
        ({"EMAIL_HOST": "smtp.example.com", "EMAIL_PORT": "2525", "EMAIL_USE_TLS": "0", "EMAIL_HOST_USER": "u"},
         {"EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend", "EMAIL_HOST": "smtp.example.com",
          "EMAIL_PORT": 2525, "EMAIL_USE_TLS": False, "EMAIL_HOST_USER": "u"}),
    ],
    ids=["console-by-default", "smtp-when-configured"],
)  # fmt: skip
def test_email_settings_from_the_environment(env, expected):
    base = {"DATABASE_URL": "", "REDIS_URL": "", "DJANGO_SETTINGS_MODULE": "sigma_playground.settings"}
    result = run(["-c", PROBE], {**base, **env})
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert {k: data[k] for k in expected} == expected
