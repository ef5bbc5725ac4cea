"""Password guessing is throttled per account and per client address (issue 13, section 2)."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import hashers
from django.test import Client
from prometheus_client import REGISTRY

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
LOGIN = "/accounts/login/"
PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def limits(settings):
    settings.AXES_FAILURE_LIMIT = 3


@pytest.fixture
def victim():
    user = UserFactory(username="victim")
    user.set_password(PASSWORD)
    user.save()
    return user


def login(username: str, password: str, address: str = "198.51.100.1", client: Client | None = None):
    return (client or Client()).post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


def lockouts() -> float:
    return REGISTRY.get_sample_value("sigma_login_lockouts_total") or 0.0


def logged_in(response) -> bool:
    return response.status_code == 302 and "_auth_user_id" in response.wsgi_request.session


def test_per_account_lockout_refuses_even_the_right_password_from_another_address(victim, caplog):
    before = lockouts()
    statuses = [login("victim", f"wrong {n}", address=f"203.0.113.{n}").status_code for n in range(3)]
    assert statuses == [200, 200, 429]  # the failure that reaches the limit is answered with the lockout
    refused = login("victim", PASSWORD, address="203.0.113.99")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert b"Too many log-in attempts" in refused.content
    assert not logged_in(refused)
    assert lockouts() > before
    assert any("login refused: locked out" in r.getMessage() for r in caplog.records)


def test_the_account_name_counts_whatever_its_case(victim):
    for name in ("Victim", "VICTIM", "victim"):
        login(name, "wrong", address="203.0.113.7")
    assert login("victim", PASSWORD, address="203.0.113.8").status_code == 429


def test_per_address_lockout_covers_every_account(victim):
    other = UserFactory(username="bystander")
    other.set_password(PASSWORD)
    other.save()
    for name in ("alpha", "beta", "gamma"):
        login(name, "wrong", address="198.51.100.50")
    assert login("bystander", PASSWORD, address="198.51.100.50").status_code == 429
    # Unaffected: the same account from another address, and everyone else.
    assert logged_in(login("bystander", PASSWORD, address="198.51.100.51"))
    assert logged_in(login("victim", PASSWORD, address="198.51.100.52"))


def test_refused_tries_hash_no_password(victim, monkeypatch):
    for n in range(3):
        login("victim", f"wrong {n}")
    calls = []
    real = hashers.check_password
    monkeypatch.setattr(hashers, "check_password", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(
        "django.contrib.auth.base_user.check_password", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    monkeypatch.setattr(
        hashers.MD5PasswordHasher, "encode", lambda *a, **k: calls.append(1) or "md5$x$y", raising=True
    )
    for _ in range(5):
        assert login("victim", PASSWORD).status_code == 429
    assert calls == []


def test_staff_see_and_reset_lockouts_in_admin(victim, staff_user):
    for n in range(3):
        login("victim", f"wrong {n}", address="203.0.113.20")
    assert login("victim", PASSWORD, address="203.0.113.21").status_code == 429
    admin = Client()
    admin.force_login(staff_user)
    listing = admin.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200 and b"victim" in listing.content
    ids = [str(pk) for pk in AccessAttempt.objects.values_list("pk", flat=True)]
    response = admin.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": ids, "post": "yes"},
    )
    assert response.status_code == 302
    assert not AccessAttempt.objects.exists()
    assert logged_in(login("victim", PASSWORD, address="203.0.113.21"))


def test_the_lockout_ends_after_the_cool_off(victim):
    import datetime as dt

    for n in range(3):
        login("victim", f"wrong {n}", address="203.0.113.30")
    assert login("victim", PASSWORD, address="203.0.113.31").status_code == 429
    AccessAttempt.objects.update(attempt_time=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    assert logged_in(login("victim", PASSWORD, address="203.0.113.31"))


def test_sign_ups_are_limited_per_client_address(settings):
    settings.SIGNUP_LIMIT_PER_HOUR = 2
    before = REGISTRY.get_sample_value("sigma_rate_limited_total", {"action": "signup"}) or 0.0

    def signup(n: int, address: str):
        return Client().post(
            "/accounts/signup/",
            {
                "username": f"newcomer{n}",
                "email": f"n{n}@example.com",
                "password1": "a long enough passphrase",
                "password2": "a long enough passphrase",
            },
            REMOTE_ADDR=address,
        )

    assert signup(1, "192.0.2.1").status_code == 302
    assert signup(2, "192.0.2.1").status_code == 302
    refused = signup(3, "192.0.2.1")
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert b"Too many sign-ups" in refused.content
    assert signup(4, "192.0.2.2").status_code == 302
    from accounts.models import User

    assert not User.objects.filter(username="newcomer3").exists()
    assert REGISTRY.get_sample_value("sigma_rate_limited_total", {"action": "signup"}) == before + 1


def test_password_resets_are_limited_per_client_address_and_per_email(settings, mailoutbox):
    settings.PASSWORD_RESETS_PER_HOUR = 2
    UserFactory(username="victim", email="victim@example.com")
    before = REGISTRY.get_sample_value("sigma_rate_limited_total", {"action": "password_reset"}) or 0.0

    def reset(email: str, address: str):
        return Client().post("/accounts/password/reset/", {"email": email}, REMOTE_ADDR=address)

    done = "/accounts/password/reset/sent/"
    assert reset("victim@example.com", "192.0.2.1")["Location"] == done
    assert reset("nobody@example.com", "192.0.2.1")["Location"] == done
    refused = reset("victim@example.com", "192.0.2.1")
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert b"Too many password resets" in refused.content
    assert len(mailoutbox) == 1
    # From other addresses: one more mail to the victim, then nothing, behind the same page as ever.
    assert reset("VICTIM@example.com", "192.0.2.2")["Location"] == done
    assert reset("victim@example.com", "192.0.2.3")["Location"] == done
    assert reset("victim@example.com", "192.0.2.4")["Location"] == done
    assert [m.to for m in mailoutbox] == [["victim@example.com"], ["victim@example.com"]]
    assert REGISTRY.get_sample_value("sigma_rate_limited_total", {"action": "password_reset"}) == before + 3
