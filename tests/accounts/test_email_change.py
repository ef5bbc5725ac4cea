"""Changing one's email address: asked for with the password, confirmed through a signed, expiring, single-use
link mailed to the new address, announced to the old one, and silent about addresses other accounts have."""

from __future__ import annotations

import re
from unittest import mock

import pytest
from django.core import signing
from django.urls import reverse
from prometheus_client import REGISTRY

from accounts import tokens
from accounts.models import User
from tests.conftest import BrowserClient
from tests.factories import TEST_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

CHANGE = reverse("accounts:email_change")
SENT = reverse("accounts:email_change_sent")
LINK_RE = re.compile(r"http://testserver(/accounts/email/confirm/\S+)")


@pytest.fixture
def erin(db) -> User:
    return UserFactory(username="erin", email="erin@example.com")


@pytest.fixture
def signed_in(browser, erin):
    browser.force_login(erin)
    return browser


@pytest.fixture
def ask(signed_in, django_capture_on_commit_callbacks):
    """Submit the change form (its mails are sent, as after a real commit)."""

    def ask(email: str, password: str = TEST_PASSWORD):
        with django_capture_on_commit_callbacks(execute=True):
            return signed_in.submit(CHANGE, {"email": email, "password": password})

    return ask


def link_in(mail) -> str:
    return LINK_RE.search(mail.body).group(1)


def test_the_profile_form_links_to_the_change_and_shows_the_address(signed_in):
    page = signed_in.get(reverse("accounts:profile_edit")).content.decode()
    assert f'href="{CHANGE}"' in page and "erin@example.com" in page


def test_the_new_address_gets_a_link_the_old_one_a_notice_and_nothing_changes_until_it_is_followed(
    ask, signed_in, erin, mailoutbox, client
):
    response = ask("Erin.New@Example.COM")
    assert response.status_code == 302 and response["Location"] == SENT
    assert "erin@example.com" in signed_in.get(SENT).content.decode()
    notice, confirm = mailoutbox
    assert notice.to == ["erin@example.com"] and "change of your email address" in notice.subject
    assert "Erin.New@example.com" in notice.body and "/accounts/password/reset/" in notice.body
    assert "/accounts/email/confirm/" not in notice.body  # the link goes to the new address only
    assert confirm.to == ["Erin.New@example.com"] and "Confirm your new email address" in confirm.subject
    erin.refresh_from_db()
    assert erin.email == "erin@example.com"

    link = link_in(confirm)
    page = signed_in.get(link)  # a mail scanner opening the link changes nothing
    assert page.status_code == 200 and "Erin.New@example.com" in page.content.decode()
    erin.refresh_from_db()
    assert erin.email == "erin@example.com"

    done = signed_in.submit(link, {})
    assert done.status_code == 302 and done["Location"] == reverse("accounts:profile_edit")
    erin.refresh_from_db()
    assert erin.email == "Erin.New@example.com" and erin.email_verified
    assert signed_in.get(link).status_code == 400  # once only
    assert client.post(link).status_code == 400


def test_the_link_works_without_being_signed_in(ask, erin, mailoutbox, client):
    ask("erin@new.example")
    link = link_in(mailoutbox[-1])
    response = client.post(link)
    assert response.status_code == 302 and response["Location"] == reverse("accounts:login")
    erin.refresh_from_db()
    assert erin.email == "erin@new.example"


def test_a_wrong_password_changes_nothing_and_sends_nothing(ask, erin, mailoutbox):
    response = ask("erin@new.example", password="not my password")
    assert response.status_code == 200
    assert response.context["form"].errors == {"password": ["That is not your password."]}
    assert mailoutbox == []


def test_the_current_address_is_refused_in_any_case(ask, mailoutbox):
    response = ask("ERIN@example.com")
    assert response.status_code == 200
    assert response.context["form"].errors == {"email": ["That is already your address."]}
    assert mailoutbox == []


def test_a_taken_address_is_not_revealed_its_owner_is_mailed_instead(ask, erin, mailoutbox):
    owner = UserFactory(username="frank", email="frank@example.com")
    taken = ask("FRANK@example.com")
    taken_mails = list(mailoutbox)
    mailoutbox.clear()
    fresh = ask("frank@elsewhere.example")
    # The same answer, and the same notice in erin's inbox: nothing tells her frank@example.com has an account.
    assert taken.status_code == fresh.status_code == 302 and taken["Location"] == fresh["Location"]
    assert [m.to for m in taken_mails] == [["erin@example.com"], ["frank@example.com"]]
    assert [m.to for m in mailoutbox] == [["erin@example.com"], ["frank@elsewhere.example"]]
    taken_notice, fresh_notice = taken_mails[0], mailoutbox[0]
    assert taken_notice.subject == fresh_notice.subject
    assert taken_notice.body.replace("FRANK@example.com", "X") == fresh_notice.body.replace(
        "frank@elsewhere.example", "X"
    )
    note = taken_mails[1]
    assert "nothing was changed" in note.body and "/accounts/password/reset/" in note.body
    assert "erin" not in note.body and not LINK_RE.search(note.body)
    erin.refresh_from_db()
    owner.refresh_from_db()
    assert (erin.email, owner.email) == ("erin@example.com", "frank@example.com")


def test_the_link_expires(clock, ask, erin, mailoutbox, client, settings):
    ask("erin@new.example")
    link = link_in(mailoutbox[-1])
    clock.shift(settings.PASSWORD_RESET_TIMEOUT - 60)
    assert client.get(link).status_code == 200  # still valid just before
    clock.shift(120)
    assert client.get(link).status_code == 400
    assert client.post(link).status_code == 400
    erin.refresh_from_db()
    assert erin.email == "erin@example.com"


def test_a_new_password_cancels_a_pending_change(ask, erin, mailoutbox, client):
    ask("erin@new.example")
    link = link_in(mailoutbox[-1])
    erin.set_password("a brand new passphrase")
    erin.save()
    assert client.post(link).status_code == 400
    erin.refresh_from_db()
    assert erin.email == "erin@example.com"


def test_confirming_one_change_voids_the_other_pending_links(ask, erin, mailoutbox, client):
    ask("first@new.example")
    first = link_in(mailoutbox[-1])
    ask("second@new.example")
    second = link_in(mailoutbox[-1])
    assert client.post(second).status_code == 302
    assert client.post(first).status_code == 400
    erin.refresh_from_db()
    assert erin.email == "second@new.example"


def test_an_address_taken_after_the_link_was_sent_is_not_stolen(ask, erin, mailoutbox, client):
    ask("erin@new.example")
    link = link_in(mailoutbox[-1])
    UserFactory(username="gina", email="ERIN@new.example")
    assert client.post(link).status_code == 400
    erin.refresh_from_db()
    assert erin.email == "erin@example.com" and User.objects.filter(email="ERIN@new.example").exists()


@pytest.mark.parametrize(
    "token",
    [
        "nonsense",
        "a:b:c",
        signing.dumps({"u": 1, "e": "x@example.com", "s": "0" * 32}, salt="another.salt"),
        signing.dumps([1, "x@example.com"], salt=tokens.EMAIL_CHANGE_SALT),
        signing.dumps({"u": "1", "e": "x@example.com", "s": "0" * 32}, salt=tokens.EMAIL_CHANGE_SALT),
    ],
    ids=["garbage", "unsigned", "other-salt", "not-a-dict", "uid-not-int"],
)
def test_forged_and_malformed_links_are_a_400(client, token):
    assert client.get(reverse("accounts:email_change_confirm", args=[token])).status_code == 400


def test_a_tampered_address_breaks_the_signature(erin, client):
    token = tokens.email_change_token(erin, "erin@new.example")
    assert tokens.read_email_change_token(token).new_email == "erin@new.example"
    payload = signing.loads(token, salt=tokens.EMAIL_CHANGE_SALT)
    other = signing.dumps({**payload, "e": "mallory@example.com"}, salt=tokens.EMAIL_CHANGE_SALT)
    _, timestamp, signature = token.rsplit(":", 2)
    forged = f"{other.rsplit(':', 2)[0]}:{timestamp}:{signature}"
    assert tokens.read_email_change_token(forged) is None
    assert client.post(reverse("accounts:email_change_confirm", args=[forged])).status_code == 400
    erin.refresh_from_db()
    assert erin.email == "erin@example.com"


def test_email_changes_are_limited_per_user_before_any_password_is_checked(ask, settings, mailoutbox):
    settings.EMAIL_CHANGES_PER_HOUR = 2
    before = REGISTRY.get_sample_value("sigma_rate_limited_total", {"action": "email_change"}) or 0.0
    assert ask("one@new.example", password="wrong").status_code == 200  # a failed try counts too
    assert ask("two@new.example").status_code == 302
    with mock.patch.object(User, "check_password") as check:
        refused = ask("three@new.example")
    check.assert_not_called()
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    page = refused.content.decode()
    assert "the most allowed" in page and 'value="three@new.example"' in page
    assert [m.to for m in mailoutbox] == [["erin@example.com"], ["two@new.example"]]
    assert REGISTRY.get_sample_value("sigma_rate_limited_total", {"action": "email_change"}) == before + 1

    other = BrowserClient()  # the limit is per user
    other.force_login(UserFactory(username="hal"))
    assert other.submit(CHANGE, {"email": "hal@new.example", "password": TEST_PASSWORD}).status_code == 302
