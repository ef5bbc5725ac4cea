import pytest
from django.urls import reverse

from tests.factories import FollowFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_non_staff_cannot_enter_admin(client, user):
    client.force_login(user)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert client.get(reverse("admin:accounts_user_changelist")).status_code == 302


def test_anonymous_cannot_enter_admin(client):
    assert client.get(reverse("admin:accounts_user_changelist")).status_code == 302


def test_staff_searches_users_by_username_and_email(client, staff_user):
    UserFactory(username="findme", email="zzz@example.org")
    UserFactory(username="other", email="other@example.com")
    client.force_login(staff_user)
    url = reverse("admin:accounts_user_changelist")
    by_name = client.get(url, {"q": "findme"})
    assert by_name.status_code == 200
    assert [u.username for u in by_name.context["cl"].result_list] == ["findme"]
    by_email = client.get(url, {"q": "zzz@example"})
    assert [u.username for u in by_email.context["cl"].result_list] == ["findme"]
    assert client.get(url, {"is_staff__exact": "1"}).status_code == 200


def test_staff_sees_follows_and_user_pages(client, staff_user):
    link = FollowFactory()
    client.force_login(staff_user)
    assert client.get(reverse("admin:accounts_follow_changelist")).status_code == 200
    assert client.get(reverse("admin:accounts_user_change", args=[link.follower.pk])).status_code == 200
    assert client.get(reverse("admin:accounts_user_add")).status_code == 200
    assert client.get(reverse("admin:accounts_follow_change", args=[link.pk])).status_code == 200
