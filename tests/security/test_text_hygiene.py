"""Control characters and bidi overrides are refused, with a form error, in titles, descriptions, names, bios
and tag names (issue 13, section 9)."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import User
from sigma_playground.text import MULTI_LINE, SINGLE_LINE, forbidden_characters
from tests.factories import TagFactory, UserFactory
from workbooks.models import Tag, Workbook

pytestmark = pytest.mark.django_db
EMBED = "https://app.sigmacomputing.com/embed/1-Hygiene"
# Django's own validator answers a NUL ("Null characters are not allowed."); ours the rest.
REFUSED = ("invisible control or text-direction characters", "Null characters are not allowed")
HOSTILE = ["\x00", "\x07", "\x1b[31m", "\x7f", "\u202e", "\u202a", "\u2066", "\u2069"]


def test_what_is_forbidden_where():
    for char in HOSTILE:
        assert forbidden_characters(f"a{char}b"), repr(char)
        assert forbidden_characters(f"a{char}b", multiline=True), repr(char)
    assert forbidden_characters("line\none") == ["U+000A"]
    assert forbidden_characters("line\r\none\ttab", multiline=True) == []
    assert forbidden_characters("Z\u00fcrich \u2013 \u6771\u4eac \u2713 emoji \U0001f389") == []


def logged_in(user=None) -> Client:
    client = Client()
    client.force_login(user or UserFactory())
    return client


def publish(client: Client, **fields):
    data = {
        "title": "Fine title",
        "sigma_embed_url": EMBED,
        "visibility": "public",
        "publish": "on",
        **fields,
    }
    return client.post("/workbooks/new/", data)


@pytest.mark.parametrize("char", HOSTILE)
@pytest.mark.parametrize("field", ["title", "description", "tags"])
def test_the_workbook_form_refuses_them(field, char):
    response = publish(logged_in(), **{field: f"Revenue {char}report"})
    assert response.status_code == 200
    assert any(message in response.content.decode() for message in REFUSED)
    assert not Workbook.objects.exists() and not Tag.objects.exists()


def test_a_description_keeps_its_lines_and_tabs():
    assert publish(logged_in(), description="First line\r\n\tindented").status_code == 302
    assert Workbook.objects.get().description == "First line\r\n\tindented"


@pytest.mark.parametrize("char", HOSTILE)
@pytest.mark.parametrize("field", ["full_name", "bio"])
def test_the_profile_form_refuses_them(field, char):
    user = UserFactory(full_name="Ada", bio="")
    data = {"full_name": "Ada", "bio": "", field: f"Evil{char}name"}
    response = logged_in(user).post("/accounts/profile/", data)
    assert response.status_code == 200
    assert any(message in response.content.decode() for message in REFUSED)
    user.refresh_from_db()
    assert (user.full_name, user.bio) == ("Ada", "")


def test_a_bio_keeps_its_lines():
    user = UserFactory()
    assert (
        logged_in(user).post("/accounts/profile/", {"full_name": "Ada", "bio": "One\r\nTwo"}).status_code
        == 302
    )
    assert User.objects.get(pk=user.pk).bio == "One\r\nTwo"


def test_staff_renaming_a_tag_in_admin_get_the_error_too(staff_user):
    tag = TagFactory(name="Finance")
    response = logged_in(staff_user).post(
        f"/admin/workbooks/tag/{tag.pk}/change/", {"name": "Fin\u202eance", "colour": tag.colour}
    )
    assert response.status_code == 200 and "invisible control" in response.content.decode()
    tag.refresh_from_db()
    assert tag.name == "Finance"


def test_the_model_fields_carry_the_validators():
    assert SINGLE_LINE in Workbook._meta.get_field("title").validators
    assert MULTI_LINE in Workbook._meta.get_field("description").validators
    assert SINGLE_LINE in Tag._meta.get_field("name").validators
    assert SINGLE_LINE in User._meta.get_field("full_name").validators
    assert MULTI_LINE in User._meta.get_field("bio").validators
