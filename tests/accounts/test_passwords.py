"""Password hashing: Argon2id with OWASP's parameters, PBKDF2 upgraded at login, a bounded number at once."""

import threading
import time

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher, check_password, identify_hasher, make_password
from django.urls import reverse

from accounts.models import User
from sigma_playground import passwords
from tests.factories import TEST_PASSWORD, UserFactory
from tests.monitoring.helpers import sample

pytestmark = pytest.mark.django_db

LOGIN = reverse("accounts:login")
REAL_HASHERS = [
    "sigma_playground.passwords.Argon2idPasswordHasher",
    "sigma_playground.passwords.BoundedPBKDF2PasswordHasher",
]


def legacy_hash(password: str) -> str:
    return PBKDF2PasswordHasher().encode(password, PBKDF2PasswordHasher().salt(), iterations=1000)


@pytest.fixture
def real_hashers(settings):
    assert django_settings.PASSWORD_HASHERS  # the conftest swapped in MD5 for speed; put the real ones back
    settings.PASSWORD_HASHERS = REAL_HASHERS
    settings.PASSWORD_HASH_CONCURRENCY = 1
    settings.PASSWORD_HASH_WAIT_SECONDS = 0.05
    passwords.SLOTS.reset()
    yield
    passwords.SLOTS.reset()


def test_the_production_hashers_are_argon2id_first_then_pbkdf2():
    from sigma_playground import settings as project_settings

    assert project_settings.PASSWORD_HASHERS == REAL_HASHERS


def test_new_hashes_are_argon2id_with_owasp_parameters(real_hashers):
    encoded = make_password(TEST_PASSWORD)
    assert encoded.startswith("argon2$argon2id$v=19$m=19456,t=2,p=1$"), encoded
    assert check_password(TEST_PASSWORD, encoded)
    assert not check_password("wrong password", encoded)


def test_a_pbkdf2_hash_is_upgraded_to_argon2id_at_the_next_login(real_hashers, browser):
    user = UserFactory(username="legacy")
    # A hash made before the switch, by Django's own PBKDF2 (few iterations: the test needs no 200 ms).
    User.objects.filter(pk=user.pk).update(password=legacy_hash(TEST_PASSWORD))
    assert identify_hasher(User.objects.get(pk=user.pk).password).algorithm == "pbkdf2_sha256"

    response = browser.submit(LOGIN, {"username": "legacy", "password": TEST_PASSWORD})

    assert response.status_code == 302
    stored = User.objects.get(pk=user.pk).password
    assert stored.startswith("argon2$argon2id$v=19$m=19456,t=2,p=1$"), stored
    assert check_password(TEST_PASSWORD, stored)


def test_a_failed_login_leaves_the_pbkdf2_hash_alone(real_hashers, browser):
    user = UserFactory(username="legacy")
    old = legacy_hash(TEST_PASSWORD)
    User.objects.filter(pk=user.pk).update(password=old)
    response = browser.submit(LOGIN, {"username": "legacy", "password": "not the password"})
    assert response.status_code == 200
    assert User.objects.get(pk=user.pk).password == old


def test_login_beyond_the_hashing_bound_gets_a_fast_503_with_retry_after(real_hashers, browser, settings):
    UserFactory(username="alice")
    browser.get(LOGIN)  # the CSRF cookie, before the slots are taken
    rejected = sample("sigma_password_hash_rejected_total")
    semaphore = passwords.SLOTS.semaphore()
    assert semaphore.acquire(blocking=False)  # another request is hashing: the process's only slot
    try:
        started = time.perf_counter()
        response = browser.submit(LOGIN, {"username": "alice", "password": TEST_PASSWORD})
        elapsed = time.perf_counter() - started
    finally:
        semaphore.release()
    assert response.status_code == 503
    assert response["Retry-After"] == str(settings.OVERLOAD_RETRY_AFTER_SECONDS)
    assert response["Cache-Control"] == "no-store"
    assert sample("sigma_password_hash_rejected_total") == rejected + 1
    print(f"refused login answered in {elapsed * 1000:.1f} ms")
    assert elapsed < 2.0  # a generous bound: it waited 50 ms for a slot, hashed nothing

    assert browser.submit(LOGIN, {"username": "alice", "password": TEST_PASSWORD}).status_code == 302


def test_at_most_the_configured_number_of_hashes_run_at_once(real_hashers, settings):
    settings.PASSWORD_HASH_CONCURRENCY = 2
    settings.PASSWORD_HASH_WAIT_SECONDS = 0
    passwords.SLOTS.reset()
    encoded = make_password(TEST_PASSWORD)
    running, peak, busy = 0, 0, 0
    lock = threading.Lock()
    original = passwords.hashers.Argon2PasswordHasher.verify

    def slow_verify(self, password, encoded):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.2)
        with lock:
            running -= 1
        return original(self, password, encoded)

    def check():
        nonlocal busy
        try:
            check_password(TEST_PASSWORD, encoded)
        except passwords.HashingBusy:
            with lock:
                busy += 1

    passwords.hashers.Argon2PasswordHasher.verify = slow_verify
    try:
        threads = [threading.Thread(target=check) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        passwords.hashers.Argon2PasswordHasher.verify = original
    assert peak == 2
    assert busy == 4
