"""Hostile shapes of input that answered 500 answer a 4xx (issue 13, section 1), on PostgreSQL."""

from __future__ import annotations

import base64
import json

import pytest
from django.test import Client
from prometheus_client import REGISTRY

from accounts.models import Follow
from tests.factories import FavoriteFactory, FollowFactory, UserFactory, WorkbookFactory
from workbooks.models import Workbook

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def forged(payload: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def five_xx() -> float:
    total = 0.0
    for metric in REGISTRY.collect():
        if metric.name == "django_http_responses_total_by_status_view_method":
            total += sum(
                s.value for s in metric.samples if s.name.endswith("_total") and s.labels["status"][0] == "5"
            )
    return total


@pytest.fixture
def people():
    alice, bob = UserFactory(username="alice"), UserFactory(username="bobby")
    FollowFactory(follower=alice, followed=bob)
    FollowFactory(follower=bob, followed=alice)
    workbook = WorkbookFactory(author=bob)
    FavoriteFactory(user=alice, workbook=workbook)
    return alice


NUL_URLS = [
    "/workbooks/?q=%00",
    "/workbooks/?tag=%00",
    "/workbooks/?sort=%00",
    "/workbooks/?q=a%00b&tag=x",
    "/users/%00/",
    "/users/%00/followers/",
    "/users/%00/following/",
    "/tags/a%00/",
]


@pytest.mark.parametrize("url", NUL_URLS)
def test_a_nul_anywhere_in_the_url_is_a_400_with_a_page(url, people):
    before = five_xx()
    response = Client().get(url)
    assert response.status_code == 400
    assert b"Bad request" in response.content
    assert five_xx() == before  # the error-rate alert does not see it


@pytest.mark.parametrize("action", ["follow", "unfollow"])
def test_a_nul_in_a_follow_url_is_a_400_and_writes_nothing(action, people):
    client = Client()
    client.force_login(people)
    follows = Follow.objects.count()
    assert client.post(f"/users/%00/{action}/").status_code == 400
    assert Follow.objects.count() == follows


def test_a_nul_in_an_admin_changelist_filter_is_a_400(staff_user):
    client = Client()
    client.force_login(staff_user)
    assert client.get("/admin/workbooks/workbook/?visibility__exact=%00").status_code == 400
    assert client.get("/admin/accounts/user/?q=%00").status_code == 400


def test_a_nul_in_the_session_cookie_is_a_400():
    client = Client()
    client.cookies["sessionid"] = "abcdefgh\x00ijkl"
    assert client.get("/").status_code == 400


WRONG_TYPES = [
    {"v": ["x", 1], "f": True, "p": 2},
    {"v": [1, "x"], "f": True, "p": 2},
    {"v": [{"t": "2024-01-01T00:00:00"}, 1], "f": True, "p": 2},  # naive datetime
    {"v": [{"t": "2024-01-01T00:00:00+00:00"}, 2**70], "f": True, "p": 2},  # beyond bigint
    {"v": [{"t": "2024-01-01T00:00:00+00:00"}, True], "f": True, "p": 2},
    {"v": [None, None], "f": False, "p": 3},
    {"v": [1.5, 1.5], "f": True, "p": 2},
    {"v": ["a\u0000", 1], "f": True, "p": 2},
    {"v": [{"d": "2024-01-01"}, 1], "f": True, "p": 2},
]
KEYSET_LISTS = [
    "/workbooks/",
    "/workbooks/?sort=popular",
    "/workbooks/?sort=trending",
    "/workbooks/?sort=oldest",
    "/workbooks/?q=revenue",
    "/workbooks/?q=revenue&sort=relevance",
    "/users/alice/followers/",
    "/users/alice/following/",
    "/feed/",
    "/favorites/",
]


@pytest.mark.parametrize("payload", WRONG_TYPES)
@pytest.mark.parametrize("url", KEYSET_LISTS)
def test_a_cursor_with_values_of_the_wrong_type_falls_back_to_the_first_page(url, payload, people):
    """The values are checked against the ordering's types (a mistyped one never reaches the database, which
    answered 500), and a bad cursor leads to the first page with a message (issue 18), not a 404."""
    client = Client()
    client.force_login(people)
    separator = "&" if "?" in url else "?"
    response = client.get(f"{url}{separator}cursor={forged(payload)}")
    assert response.status_code == 302, response.status_code
    assert "cursor=" not in response["Location"]
    assert response["Location"].split("?")[0] == url.split("?")[0]
    landed = client.get(response["Location"])
    assert landed.status_code == 200
    assert "first page" in landed.content.decode()


def test_a_cursor_on_a_tag_page_is_checked_too(people):
    workbook = Workbook.objects.get()
    tag = workbook.tags.first()
    if tag is None:
        from tests.factories import TagFactory

        tag = TagFactory(slug="finance")
        workbook.tags.add(tag)
    for payload in WRONG_TYPES:
        response = Client().get(f"/tags/{tag.slug}/?cursor={forged(payload)}")
        assert response.status_code == 302, (payload, response.status_code)
        assert response["Location"] == f"/tags/{tag.slug}/"


def test_a_well_typed_cursor_still_works(people):
    for index in range(25):
        WorkbookFactory(title=f"Board {index}")
    first = Client().get("/workbooks/?per_page=5")
    assert first.status_code == 200
    html = first.content.decode()
    start = html.index("cursor=") + len("cursor=")
    cursor = html[start : html.index('"', start)].split("&")[0]
    assert Client().get(f"/workbooks/?per_page=5&cursor={cursor}").status_code == 200


def test_a_media_path_longer_than_the_file_system_allows_is_a_404():
    assert Client().get("/media/thumbs/" + "a" * 300).status_code == 404
    assert Client().get("/media/thumbs/" + "/".join(["b" * 200] * 30)).status_code == 404
