"""Favorite, unfavorite and follow in place (issue 18 §6): the same POST answers the script with the new
button as JSON, and everyone else with a redirect as before."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from tests.factories import UserFactory, WorkbookFactory
from workbooks.models import Favorite

pytestmark = pytest.mark.django_db
FETCH = {"HTTP_X_REQUESTED_WITH": "fetch"}


def test_favorite_and_unfavorite_in_place(logged_in, user):
    workbook = WorkbookFactory()
    page = logged_in.get(workbook.get_absolute_url()).content.decode()
    assert 'data-inplace data-rum="favorite"' in page and "js/gallery.js" in page
    response = logged_in.submit(
        reverse("workbooks:favorite", args=[workbook.pk]), {}, form_url=workbook.get_absolute_url(), **FETCH
    )
    data = json.loads(response.content)
    assert (
        response.status_code == 200 and data["count"] == 1 and data["message"] == "Added to your favorites."
    )
    assert 'data-rum="unfavorite"' in data["html"] and "★ Favorited" in data["html"]
    assert Favorite.objects.filter(user=user, workbook=workbook).exists()
    response = logged_in.submit(
        reverse("workbooks:unfavorite", args=[workbook.pk]), {}, form_url=workbook.get_absolute_url(), **FETCH
    )
    assert json.loads(response.content)["count"] == 0
    assert not Favorite.objects.exists()


def test_without_the_script_the_forms_post_and_redirect_as_before(logged_in):
    workbook = WorkbookFactory()
    response = logged_in.submit(
        reverse("workbooks:favorite", args=[workbook.pk]), {}, form_url=workbook.get_absolute_url()
    )
    assert response.status_code == 302 and response["Location"] == workbook.get_absolute_url()


def test_favorites_page_unfavorites_and_comes_back(logged_in, user):
    workbook = WorkbookFactory(title="Liked board")
    Favorite.objects.create(user=user, workbook=workbook)
    favorites = reverse("workbooks:favorites")
    page = logged_in.get(favorites).content.decode()
    assert f'action="{reverse("workbooks:unfavorite", args=[workbook.pk])}"' in page
    response = logged_in.submit(
        reverse("workbooks:unfavorite", args=[workbook.pk]), {"next": favorites}, form_url=favorites
    )
    assert response["Location"] == favorites
    assert "Liked board" not in logged_in.get(favorites).content.decode()
    Favorite.objects.create(user=user, workbook=workbook)
    evil = logged_in.submit(
        reverse("workbooks:unfavorite", args=[workbook.pk]),
        {"next": "https://evil.example/"},
        form_url=favorites,
    )
    assert evil["Location"] == workbook.get_absolute_url()  # an off-site next is ignored


def test_follow_and_unfollow_in_place(logged_in, user):
    target = UserFactory(username="target", full_name="Tara Get")
    profile = target.get_absolute_url()
    assert 'data-inplace data-rum="follow"' in logged_in.get(profile).content.decode()
    data = json.loads(
        logged_in.submit(reverse("profiles:follow", args=["target"]), {}, form_url=profile, **FETCH).content
    )
    assert data["message"] == "You follow Tara Get." and 'data-rum="unfollow"' in data["html"]
    data = json.loads(
        logged_in.submit(reverse("profiles:unfollow", args=["target"]), {}, form_url=profile, **FETCH).content
    )
    assert 'data-rum="follow"' in data["html"]
    own = logged_in.submit(reverse("profiles:follow", args=[user.username]), {}, form_url=profile, **FETCH)
    assert own.status_code == 400 and "yourself" in json.loads(own.content)["error"]


def test_edit_form_shows_the_current_thumbnail_and_detail_offers_open_in_sigma(logged_in, user):
    from tests.workbooks.test_sharing import DERIVATIVES

    workbook = WorkbookFactory(author=user, sigma_embed_url="https://app.sigmacomputing.com/embed/1-abc")
    workbook.thumbnail, workbook.thumbnail_derivatives = "thumbnails/1/x.webp", DERIVATIVES
    workbook.save()
    edit = logged_in.get(reverse("workbooks:edit", args=[workbook.pk])).content.decode()
    assert '<figure class="current-thumb">' in edit and "<picture" in edit
    assert 'name="clear_thumbnail"' in edit and "Remove the current thumbnail" in edit
    detail = logged_in.get(workbook.get_absolute_url()).content.decode()
    assert '<a href="https://app.sigmacomputing.com/embed/1-abc" target="_blank"' in detail
    assert "Open in Sigma" in detail
