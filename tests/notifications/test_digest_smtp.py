"""The daily digest through a real SMTP server (aiosmtpd on a free port of 127.0.0.1, started and stopped by
the test), with the mail settings as production reads them: EMAIL_HOST set -> Django's SMTP backend."""

from __future__ import annotations

import socket

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message

from notifications import services, tasks
from notifications.models import Kind
from tests.factories import UserFactory, WorkbookFactory

pytestmark = pytest.mark.django_db


class Inbox(Message):
    def __init__(self) -> None:
        super().__init__()
        self.messages = []

    def handle_message(self, message) -> None:
        self.messages.append(message)


@pytest.fixture
def smtp():
    with socket.socket() as probe:  # a free port, chosen now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, server_hostname="localhost")
    controller.start()
    try:
        yield controller, inbox
    finally:
        controller.stop()


def test_the_digest_is_delivered_over_smtp(settings, smtp):
    controller, inbox = smtp
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.EMAIL_USE_TLS = False  # the test server speaks plain SMTP; production's default is STARTTLS
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.DEFAULT_FROM_EMAIL = "Sigma Playground <noreply@localhost>"
    author = UserFactory(email="author@example.com")
    board = WorkbookFactory(author=author, title="Pipeline")
    services.notify(
        recipient_id=author.pk,
        kind=Kind.EMBED_BROKEN,
        group_key=f"embed_broken:{board.pk}",
        workbook_id=board.pk,
    )
    services.settings_update(user=author, digest_embed=True)
    assert tasks.send_digests() == 1
    assert len(inbox.messages) == 1
    message = inbox.messages[0]
    assert message["To"] == "author@example.com" and message["From"] == "Sigma Playground <noreply@localhost>"
    assert "The embed link of “Pipeline” is broken" in message.get_payload(decode=True).decode()
