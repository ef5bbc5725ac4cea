"""Issue 18 §8, the polish a person notices, as the server renders it: headings that never skip a level, and
counts with thousands separators on cards and profiles. (The phone layout is checked in a real browser:
tests/monitoring/test_browser_phone.py.)"""

from __future__ import annotations

import itertools
import re

import pytest
from django.urls import reverse

from accounts import services as account_services
from tests.factories import FavoriteFactory, TagFactory, UserFactory, WorkbookFactory

pytestmark = pytest.mark.django_db


def heading_levels(html: str) -> list[int]:
    return [int(level) for level in re.findall(r"<h([1-6])\b", html)]


def skips(levels: list[int]) -> list[str]:
    """Where a heading goes down more than one level (h1 then h3): what Lighthouse's heading-order flags."""
    return [f"h{a} then h{b}" for a, b in itertools.pairwise(levels) if b > a + 1]


@pytest.fixture
def gallery():
    tag = TagFactory(name="finance")
    author = UserFactory(username="writer")
    reader = UserFactory(username="reader")
    workbooks = [WorkbookFactory(author=author, title=f"Revenue board {n}", tags=[tag]) for n in range(3)]
    account_services.follow(follower=reader, followed=author)
    FavoriteFactory(user=reader, workbook=workbooks[0])
    return {"tag": tag, "author": author, "reader": reader, "workbook": workbooks[0]}


@pytest.mark.parametrize(
    "page",
    [
        "home", "list", "search", "search-empty", "tag", "tags", "people", "profile", "followers", "following",
        "detail", "feed", "favorites", "login", "signup", "signup-errors", "profile-edit", "email-change",
    ],
)  # fmt: skip
def test_headings_never_skip_a_level(client, gallery, page):
    if page in {"feed", "favorites", "profile-edit", "email-change"}:
        client.force_login(gallery["reader"])
    get = {
        "home": lambda: client.get(reverse("home")),
        "list": lambda: client.get(reverse("workbooks:list")),
        "search": lambda: client.get(reverse("workbooks:list"), {"q": "revenue"}),
        "search-empty": lambda: client.get(reverse("workbooks:list"), {"q": "zzzqqq"}),
        "tag": lambda: client.get(gallery["tag"].get_absolute_url()),
        "tags": lambda: client.get(reverse("workbooks:tags")),
        "people": lambda: client.get(reverse("profiles:list")),
        "profile": lambda: client.get(gallery["author"].get_absolute_url()),
        "followers": lambda: client.get(reverse("profiles:followers", args=["writer"])),
        "following": lambda: client.get(reverse("profiles:following", args=["reader"])),
        "detail": lambda: client.get(gallery["workbook"].get_absolute_url()),
        "feed": lambda: client.get(reverse("workbooks:feed")),
        "favorites": lambda: client.get(reverse("workbooks:favorites")),
        "login": lambda: client.get(reverse("accounts:login")),
        "signup": lambda: client.get(reverse("accounts:signup")),
        "signup-errors": lambda: client.post(reverse("accounts:signup"), {"username": "", "email": "x"}),
        "profile-edit": lambda: client.get(reverse("accounts:profile_edit")),
        "email-change": lambda: client.get(reverse("accounts:email_change")),
    }[page]
    response = get()
    assert response.status_code == 200
    levels = heading_levels(response.content.decode())
    assert levels and levels[0] == 1 and levels.count(1) == 1, levels
    assert skips(levels) == [], levels


def test_counts_have_thousands_separators_on_cards_profiles_and_detail(client):
    author = UserFactory(username="popular")
    workbook = WorkbookFactory(author=author, title="Well loved", favorite_count=1234, view_count=12345)
    for url in (reverse("home"), reverse("workbooks:list"), author.get_absolute_url()):
        html = client.get(url).content.decode()
        assert "12,345 views" in html and "1,234<span" in html, url
    profile = client.get(author.get_absolute_url()).content.decode()
    assert "<strong>1,234</strong> favorites received" in profile
    detail = client.get(workbook.get_absolute_url()).content.decode()
    assert "1,234 favorites" in detail and "12,345" in detail
