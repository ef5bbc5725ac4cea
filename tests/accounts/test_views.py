"""Accounts pages, driven the way a browser drives them: GET the form, POST it back with its CSRF token."""

import io
import os
import re

import pytest
from django.urls import reverse
from PIL import Image

from accounts.models import Follow, User
from tests import images
from tests.factories import TEST_PASSWORD, FollowFactory, UserFactory

pytestmark = pytest.mark.django_db

SIGNUP = reverse("accounts:signup")
LOGIN = reverse("accounts:login")
LOGOUT = reverse("accounts:logout")
PROFILE_EDIT = reverse("accounts:profile_edit")


def signup_data(username="alice", email="alice@example.com"):
    return {"username": username, "email": email, "password1": TEST_PASSWORD, "password2": TEST_PASSWORD}


def test_sign_up_mails_a_link_that_confirms_the_address_and_logs_in(
    browser, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = browser.submit(SIGNUP, signup_data())
    user = User.objects.get(username="alice")
    assert response.status_code == 302 and response["Location"] == reverse("accounts:signup_done")
    assert not user.email_verified
    assert browser.get(PROFILE_EDIT).status_code == 302  # not logged in yet
    (mail,) = mailoutbox
    assert mail.to == ["alice@example.com"] and "Confirm your email address" in mail.subject
    link = re.search(r"http://testserver(/accounts/verify/\S+)", mail.body).group(1)
    response = browser.get(link)
    assert response.status_code == 302 and response["Location"] == user.get_absolute_url()
    user.refresh_from_db()
    assert user.email_verified
    assert browser.get(PROFILE_EDIT).status_code == 200  # logged in
    assert browser.get(link).status_code == 400  # once only
    assert browser.get("/accounts/verify/bm9wZQ/x-y/").status_code == 400


def test_sign_up_refuses_a_username_that_differs_only_in_case(browser):
    UserFactory(username="alice")
    response = browser.submit(SIGNUP, signup_data(username="Alice", email="other@example.com"))
    assert response.status_code == 200
    assert "That username is taken." in response.content.decode()
    assert User.objects.filter(username__iexact="alice").count() == 1


def test_sign_up_with_a_taken_email_says_nothing_and_mails_the_owner(
    browser, mailoutbox, django_capture_on_commit_callbacks
):
    owner = UserFactory(username="alice", email="alice@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        taken = browser.submit(SIGNUP, signup_data(username="alice2", email="ALICE@example.com"))
    with django_capture_on_commit_callbacks(execute=True):
        fresh = browser.submit(SIGNUP, signup_data(username="bob", email="bob@example.com"))
    # The same answer either way: nothing tells the visitor which address has an account.
    assert taken.status_code == fresh.status_code == 302 and taken["Location"] == fresh["Location"]
    assert not User.objects.filter(username="alice2").exists()
    assert [m.to for m in mailoutbox] == [[owner.email], ["bob@example.com"]]
    assert (
        "no new one was created" in mailoutbox[0].body and "/accounts/password/reset/" in mailoutbox[0].body
    )


@pytest.mark.parametrize(
    "username",
    [
        "has space",
        "tab\there",
        "null\x00byte",
        "bell\x07",
        "12345",
        "ab",
        "x" * 31,
        "émile",
        "a/b",
        "dot.name",
    ],
)
def test_sign_up_refuses_bad_usernames(browser, username):
    response = browser.submit(SIGNUP, signup_data(username=username))
    assert response.status_code == 200
    assert response.context["form"].errors.get("username")
    assert not User.objects.exists()


def test_invalid_sign_up_rerenders_with_field_errors(browser):
    response = browser.submit(
        SIGNUP, {"username": "", "email": "not-an-email", "password1": "a", "password2": "b"}
    )
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert {"username", "email", "password2"} <= set(errors)


def test_post_without_csrf_token_is_403(browser):
    response = browser.post(SIGNUP, signup_data())
    assert response.status_code == 403
    assert not User.objects.exists()


def test_log_in_case_insensitively_then_log_out_by_post(browser):
    UserFactory(username="carol")
    response = browser.submit(LOGIN, {"username": "Carol", "password": TEST_PASSWORD})
    assert response.status_code == 302
    assert browser.get(PROFILE_EDIT).status_code == 200

    assert browser.get(LOGOUT).status_code == 405  # a GET (link prefetch, forged <img>) cannot log out
    assert browser.get(PROFILE_EDIT).status_code == 200
    response = browser.submit(LOGOUT, form_url=PROFILE_EDIT)
    assert response.status_code == 302
    assert browser.get(PROFILE_EDIT).status_code == 302


def test_wrong_password_rerenders_the_login_form(browser):
    UserFactory(username="dave")
    response = browser.submit(LOGIN, {"username": "dave", "password": "wrong-password"})
    assert response.status_code == 200
    assert "correct username and password" in response.content.decode()


def test_password_change(browser, user):
    browser.force_login(user)
    url = reverse("accounts:password_change")
    new = "another-long-passphrase-42"
    response = browser.submit(
        url, {"old_password": TEST_PASSWORD, "new_password1": new, "new_password2": new}
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password(new)


def test_anonymous_profile_edit_redirects_to_login(client):
    response = client.get(PROFILE_EDIT)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_edit_profile_with_an_image(logged_in, user):
    data = images.jpeg_with_exif_orientation(size=(400, 200))
    response = logged_in.submit(
        PROFILE_EDIT,
        {
            "full_name": "Ada Lovelace",
            "bio": "Analyst.",
            "avatar": images.upload(data, "me.jpg", "image/jpeg"),
        },
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.full_name == "Ada Lovelace"
    assert user.avatar.name.endswith(".webp")
    with user.avatar.open("rb") as fh:
        stored = fh.read()
    assert stored != data
    with Image.open(io.BytesIO(stored)) as img:
        assert img.format == "WEBP"
        assert img.size == (256, 256)
        assert not img.getexif()  # metadata stripped
    assert b"SecretCam" not in stored
    page = logged_in.get(user.get_absolute_url()).content.decode()
    assert user.avatar.url in page


def test_replacing_or_clearing_the_picture_deletes_the_old_file_and_keeps_the_new(
    logged_in, user, settings, django_capture_on_commit_callbacks
):
    """Issue 17: the service read the old name after the form had put the upload's on the user, so the old
    file stayed (still served, cached for 30 days) and a file named like the upload was deleted instead."""
    from django.core.files.storage import default_storage

    def post(data: dict):
        with django_capture_on_commit_callbacks(execute=True):
            response = logged_in.submit(PROFILE_EDIT, {"full_name": "Ada", "bio": "", **data})
        assert response.status_code == 302
        user.refresh_from_db()
        return user.avatar.name

    first = post({"avatar": images.upload(images.image_bytes(), "one.png")})
    assert first and default_storage.exists(first)
    default_storage.save("two.png", io.BytesIO(b"someone else's file"))  # named like the next upload
    second = post({"avatar": images.upload(images.image_bytes(color=(0, 0, 255)), "two.png")})
    assert second != first and default_storage.exists(second)
    assert not default_storage.exists(first)
    assert logged_in.get(default_storage.url(first)).status_code == 404  # no longer served
    assert default_storage.exists("two.png")
    assert post({"avatar-clear": "on"}) == ""
    assert not default_storage.exists(second)


def test_exif_orientation_is_applied():
    from sigma_playground.images import process_upload

    data = images.jpeg_with_exif_orientation(size=(400, 200), orientation=6)
    result = process_upload(images.upload(data), max_bytes=10**6, max_pixels=10**7, box=(1000, 1000))
    assert (result.width, result.height) == (200, 400)  # portrait after rotation


BAD_IMAGES = {
    "not an image": (b"just some text, not a picture", "notes.png"),
    "svg": (images.SVG, "x.svg"),
    "decompression bomb": (images.png_bomb(), "bomb.png"),
    "truncated": (images.truncated_jpeg(), "cut.jpg"),
    "polyglot": (images.polyglot_png(), "poly.png"),
    "gif (not allowed)": (images.image_bytes("GIF"), "anim.gif"),
    "empty": (b"", "empty.png"),
}


@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
def test_bad_profile_images_are_refused_and_change_nothing(logged_in, user, case):
    data, name = BAD_IMAGES[case]
    before = (user.full_name, user.bio, user.avatar.name)
    response = logged_in.submit(
        PROFILE_EDIT, {"full_name": "Changed", "bio": "Changed", "avatar": images.upload(data, name)}
    )
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert "avatar" in errors, errors
    user.refresh_from_db()
    assert (user.full_name, user.bio, user.avatar.name) == before


def test_oversized_profile_image_is_refused(logged_in, user, settings):
    settings.IMAGE_UPLOAD_MAX_BYTES = 10_000
    noisy = Image.frombytes("RGB", (200, 200), os.urandom(200 * 200 * 3))
    out = io.BytesIO()
    noisy.save(out, format="PNG")
    data = out.getvalue()
    assert len(data) > 10_000
    response = logged_in.submit(PROFILE_EDIT, {"full_name": "", "bio": "", "avatar": images.upload(data)})
    assert response.status_code == 200
    assert "larger than" in str(response.context["form"].errors["avatar"])


def test_bio_and_name_render_escaped(client):
    payload = '<script>alert("x")</script>'
    person = UserFactory(full_name=payload, bio=payload)
    html = client.get(person.get_absolute_url()).content.decode()
    assert payload not in html
    assert "&lt;script&gt;" in html


def test_profile_url_is_case_insensitive_and_redirects_to_canonical(client):
    person = UserFactory(username="erin")
    response = client.get("/users/ERIN/")
    assert response.status_code == 301
    assert response["Location"] == person.get_absolute_url()


def test_unknown_and_inactive_profiles_are_404(client):
    UserFactory(username="ghost", is_active=False)
    assert client.get("/users/ghost/").status_code == 404
    assert client.get("/users/nobody/").status_code == 404


def test_following_twice_through_the_page_leaves_one_row(logged_in, user):
    target = UserFactory()
    url = reverse("profiles:follow", args=[target.username])
    for _ in range(2):
        response = logged_in.submit(url, form_url=target.get_absolute_url())
        assert response.status_code == 302
    assert Follow.objects.filter(follower=user, followed=target).count() == 1
    assert "Unfollow" in logged_in.get(target.get_absolute_url()).content.decode()

    unfollow = reverse("profiles:unfollow", args=[target.username])
    logged_in.submit(unfollow, form_url=target.get_absolute_url())
    logged_in.submit(unfollow, form_url=target.get_absolute_url())
    assert not Follow.objects.exists()


def test_self_follow_through_the_page_is_refused(logged_in, user):
    response = logged_in.submit(
        reverse("profiles:follow", args=[user.username]), form_url=user.get_absolute_url(), follow=True
    )
    assert "You cannot follow yourself." in response.content.decode()
    assert not Follow.objects.exists()


def test_follow_needs_login_and_post(client):
    target = UserFactory()
    url = reverse("profiles:follow", args=[target.username])
    assert client.post(url).status_code == 302  # to the login page
    client.force_login(UserFactory())
    assert client.get(url).status_code == 405
    assert not Follow.objects.exists()


def test_followers_and_following_pages_paginate(client, settings):
    settings.PAGE_SIZE = 2
    star = UserFactory()
    fans = [FollowFactory(followed=star).follower for _ in range(5)]
    url = reverse("profiles:followers", args=[star.username])
    first = client.get(url)
    assert first.status_code == 200
    assert [p.pk for p in first.context["people"]] == [fans[4].pk, fans[3].pk]
    second = client.get(url, {"cursor": first.context["page"].next_cursor})
    third = client.get(url, {"cursor": second.context["page"].next_cursor})
    assert [p.pk for p in third.context["people"]] == [fans[0].pk]
    assert not third.context["page"].has_next
    assert client.get(url, {"cursor": "not-a-cursor"})["Location"] == url  # the first page, with a message
    following = client.get(reverse("profiles:following", args=[fans[0].username]))
    assert [p.pk for p in following.context["people"]] == [star.pk]


def test_follow_list_query_count_does_not_grow_with_page_size(client, settings, django_assert_num_queries):
    star = UserFactory()
    for _ in range(12):
        FollowFactory(followed=star)
    url = reverse("profiles:followers", args=[star.username])
    counts = []
    for size in (2, 10):
        settings.PAGE_SIZE = size
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url).status_code == 200
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1], counts


def test_password_reset_through_the_styled_views(browser, mailoutbox):
    user = UserFactory(email="dora@example.com")
    login_page = browser.get(LOGIN).content.decode()
    assert f'href="{reverse("accounts:password_reset")}">Forgot password?' in login_page
    response = browser.submit(reverse("accounts:password_reset"), {"email": "DORA@example.com"})
    assert response["Location"] == reverse("accounts:password_reset_done")
    browser.submit(reverse("accounts:password_reset"), {"email": "nobody@example.com"})  # same page, no mail
    (mail,) = mailoutbox
    path = re.search(r"http://testserver(/accounts/password/reset/\S+)", mail.body).group(1)
    form_url = browser.get(path)["Location"]  # Django swaps the token for a session marker
    response = browser.submit(
        form_url, {"new_password1": "a-new-long-passphrase", "new_password2": "a-new-long-passphrase"}
    )
    assert response["Location"] == reverse("accounts:password_reset_complete")
    user.refresh_from_db()
    assert user.check_password("a-new-long-passphrase")
    assert "This link no longer works" in browser.get(path, follow=True).content.decode()


def test_delete_asks_on_its_own_page_with_the_title(browser):
    from tests.factories import WorkbookFactory
    from workbooks.models import Workbook

    owner = UserFactory()
    workbook = WorkbookFactory(author=owner, title="Quarterly <bridge>")
    browser.force_login(owner)
    detail = browser.get(workbook.get_absolute_url()).content.decode()
    delete_url = reverse("workbooks:delete", args=[workbook.pk])
    assert f'href="{delete_url}"' in detail
    page = browser.get(delete_url).content.decode()
    assert "Delete “Quarterly &lt;bridge&gt;”?" in page
    assert Workbook.objects.filter(pk=workbook.pk).exists()
    response = browser.submit(delete_url, {})
    assert response.status_code == 302 and not Workbook.objects.filter(pk=workbook.pk).exists()
