"""Demo people and follows for ``manage.py seed_demo``. Idempotent: reruns create nothing new."""

from __future__ import annotations

import random

from django.db import transaction

from accounts import services
from accounts.models import Follow, User, ci

DEMO_STAFF_USERNAME = "demo"
DEMO_STAFF_PASSWORD = "sigma-demo-2026"  # noqa: S105 (published on purpose; seed_demo refuses production)

FIRST = [
    "Ada",
    "Bruno",
    "Chloé",
    "Dmitri",
    "Esther",
    "Farah",
    "Gustavo",
    "Hana",
    "Ines",
    "Jonas",
    "Kenji",
    "Lena",
    "Mateo",
    "Nadia",
    "Omar",
    "Priya",
    "Quentin",
    "Rosa",
    "Sven",
    "Tamar",
    "Uma",
    "Viktor",
    "Wen",
    "Ximena",
    "Yusuf",
    "Zoe",
    "Amara",
    "Björn",
    "Carmen",
    "Deepak",
]
LAST = [
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Petrov",
    "Cohen",
    "Haddad",
    "Silva",
    "Sato",
    "García",
    "Becker",
    "Tanaka",
    "Novak",
    "Rossi",
    "Karimi",
    "Nasser",
    "Iyer",
    "Dubois",
    "Álvarez",
    "Berg",
    "Levi",
    "Rao",
    "Kovacs",
    "Zhang",
    "Ortiz",
    "Demir",
    "Walsh",
    "Mensah",
    "Nilsson",
    "Ruiz",
    "Kapoor",
]
ROLES = [
    "Analytics engineer",
    "BI lead",
    "Data analyst",
    "Finance analyst",
    "Growth analyst",
    "Revenue operations",
    "Product analyst",
    "Marketing analyst",
    "Supply-chain analyst",
    "Data consultant",
]
TOPICS = [
    "SaaS metrics",
    "cohort retention",
    "pipeline forecasting",
    "inventory health",
    "marketing attribution",
    "unit economics",
    "customer support KPIs",
    "cloud cost",
    "board reporting",
    "warehouse modelling",
]


def demo_people(count: int = 30) -> list[tuple[str, str, str]]:
    rng = random.Random(7)
    people = []
    for i in range(count):
        first, last = FIRST[i % len(FIRST)], LAST[(i * 7) % len(LAST)]
        username = f"{first}{last}".encode("ascii", "ignore").decode().lower()[:26] + f"{i:02d}"[-2:]
        bio = (
            f"{rng.choice(ROLES)} who builds Sigma workbooks about {rng.choice(TOPICS)} "
            f"and {rng.choice(TOPICS)}. Sharing what works, and what didn't."
        )
        people.append((username, f"{first} {last}", bio))
    return people


@transaction.atomic
def seed_people(count: int = 30) -> dict[str, int]:
    created_users = 0
    staff = User.objects.filter(username__lower=ci(DEMO_STAFF_USERNAME)).first()
    if staff is None:
        staff = services.user_create(
            username=DEMO_STAFF_USERNAME,
            email="demo@example.com",
            password=DEMO_STAFF_PASSWORD,
            full_name="Demo Staff",
            is_staff=True,
            is_superuser=True,
            bio="The demo staff account. Log in to try the gallery and Django admin.",
        )
        created_users += 1
    users = [staff]
    for username, full_name, bio in demo_people(count):
        user = User.objects.filter(username__lower=ci(username)).first()
        if user is None:
            user = services.user_create(
                username=username,
                email=f"{username}@example.com",
                password=None,
                full_name=full_name,
                bio=bio,
            )
            created_users += 1
        users.append(user)
    rng = random.Random(11)
    created_follows = 0
    for follower in users:
        for followed in rng.sample(users, k=min(6, len(users))):
            if follower.pk != followed.pk and services.follow(follower=follower, followed=followed):
                created_follows += 1
    return {
        "users": created_users,
        "follows": created_follows,
        "total_users": len(users),
        "total_follows": Follow.objects.count(),
    }
