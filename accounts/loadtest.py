"""Load-test accounts: ``manage.py loadtest_users`` creates them, ``manage.py loadtest_cleanup`` removes what a
run made (loadtest/, ``make loadtest``). Their names all start with ``PREFIX`` and their emails are in the
reserved ``.invalid`` domain, so nothing else can be mistaken for one."""

from __future__ import annotations

from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.db.models import QuerySet

from accounts.models import User

PREFIX = "loadtest-"
EMAIL_DOMAIN = "loadtest.invalid"
# Known on purpose: the load generator logs in with it. Only ever on load-test accounts.
PASSWORD = "loadtest-Password-2026"  # noqa: S105


def username(index: int) -> str:
    return f"{PREFIX}{index:05d}"


def users() -> QuerySet[User]:
    return User.objects.filter(username__startswith=PREFIX, email__endswith="@" + EMAIL_DOMAIN)


def create_users(*, count: int, password: str = PASSWORD) -> tuple[int, int]:
    """Ensure ``loadtest-00000`` … exist with ``password``; returns (created, updated). One hash for all of
    them (an Argon2id hash costs ~20 ms; they share the password anyway)."""
    encoded = make_password(password)
    names = [username(i) for i in range(count)]
    with transaction.atomic():
        existing = set(User.objects.filter(username__in=names).values_list("username", flat=True))
        User.objects.filter(username__in=existing).update(password=encoded, is_active=True)
        User.objects.bulk_create(
            [
                User(
                    username=name,
                    email=f"{name}@{EMAIL_DOMAIN}",
                    full_name=f"Load Test {name}",
                    password=encoded,
                )
                for name in names
                if name not in existing
            ],
            batch_size=1000,
        )
    return count - len(existing), len(existing)
