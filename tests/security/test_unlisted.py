"""Unlisted means unguessable (issue 13, section 5): an unlisted workbook is reached through a share link
carrying a token of at least 128 bits; its id URL answers only its author and staff; a tag shown only on
hidden workbooks is a 404 like an unknown tag."""

from __future__ import annotations

import base64
import re

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.urls import reverse

from tests.factories import TagFactory, UserFactory, WorkbookFactory
from workbooks import services
from workbooks.models import Favorite, Visibility, Workbook

pytestmark = pytest.mark.django_db


@pytest.fixture
def unlisted():
    return WorkbookFactory(title="Unlisted salary bands", visibility=Visibility.UNLISTED)


def without_tokens(html: bytes) -> bytes:
    return re.sub(rb'name="csrfmiddlewaretoken" value="[^"]+"', b"", html)


def client_for(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def test_an_unlisted_workbook_has_a_token_of_at_least_128_bits(unlisted):
    raw = base64.urlsafe_b64decode(unlisted.share_token + "=" * (-len(unlisted.share_token) % 4))
    assert len(raw) * 8 >= 128
    assert unlisted.get_absolute_url() == reverse("workbooks:shared", args=[unlisted.share_token])
    assert WorkbookFactory(visibility=Visibility.UNLISTED).share_token != unlisted.share_token


def test_the_share_link_opens_it_for_anyone(unlisted):
    response = client_for().get(unlisted.get_absolute_url())
    assert response.status_code == 200 and unlisted.title in response.content.decode()
    assert response["X-Robots-Tag"] == "noindex"
    assert "private" in response["Cache-Control"]
    assert client_for(UserFactory()).get(unlisted.get_absolute_url()).status_code == 200


def test_the_id_url_is_a_404_for_anyone_but_the_author_and_staff(unlisted, staff_user):
    detail = reverse("workbooks:detail", args=[unlisted.pk, unlisted.slug])
    by_id = reverse("workbooks:redirect", args=[unlisted.pk])
    for client in (client_for(), client_for(UserFactory())):
        missing = client.get(reverse("workbooks:detail", args=[999_999, "nothing"]))
        hidden = client.get(detail)
        assert hidden.status_code == missing.status_code == 404
        assert without_tokens(hidden.content) == without_tokens(missing.content)
        assert client.get(by_id).status_code == 404
    assert client_for(unlisted.author).get(detail).status_code == 200
    assert client_for(staff_user).get(detail).status_code == 200


def test_a_wrong_token_or_a_token_of_a_workbook_no_longer_unlisted_is_a_404(unlisted):
    assert client_for().get(reverse("workbooks:shared", args=["A" * 32])).status_code == 404
    link = unlisted.get_absolute_url()
    services.workbooks_set_visibility(workbook_ids=[unlisted.pk], visibility=Visibility.PRIVATE)
    assert client_for().get(link).status_code == 404
    services.workbooks_set_visibility(workbook_ids=[unlisted.pk], visibility=Visibility.PUBLIC)
    assert client_for().get(link).status_code == 404  # public now: at its public address only
    services.workbooks_set_visibility(workbook_ids=[unlisted.pk], visibility=Visibility.UNLISTED)
    assert client_for().get(link).status_code == 200  # the same link again


def test_made_unlisted_in_bulk_it_gets_a_token(unlisted):
    public = WorkbookFactory()
    assert public.share_token is None
    services.workbooks_set_visibility(workbook_ids=[public.pk], visibility=Visibility.UNLISTED)
    public.refresh_from_db()
    assert public.share_token and client_for().get(public.get_absolute_url()).status_code == 200


def test_favoriting_needs_the_token(unlisted):
    reader = UserFactory()
    client = client_for(reader)
    assert client.post(reverse("workbooks:favorite", args=[unlisted.pk])).status_code == 404
    response = client.post(reverse("workbooks:favorite", args=[unlisted.pk]), {"token": unlisted.share_token})
    assert response.status_code == 302 and response["Location"] == unlisted.get_absolute_url()
    assert Favorite.objects.filter(user=reader, workbook=unlisted).exists()
    page = client.get(unlisted.get_absolute_url()).content.decode()
    assert f'name="token" value="{unlisted.share_token}"' in page  # the unfavorite form carries it


def test_a_tag_on_hidden_workbooks_only_is_a_404_like_an_unknown_tag():
    secret = TagFactory(name="Project Nightjar")
    for kind in (
        {"visibility": Visibility.UNLISTED},
        {"visibility": Visibility.PRIVATE},
        {"published_at": None},
    ):
        WorkbookFactory(tags=[secret], **kind)
    unknown = Client().get("/tags/no-such-tag/")
    response = Client().get(secret.get_absolute_url())
    assert response.status_code == unknown.status_code == 404
    assert b"Nightjar" not in response.content
    WorkbookFactory(tags=[secret])
    assert Client().get(secret.get_absolute_url()).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_the_migration_gives_existing_unlisted_workbooks_tokens_and_reverses():
    executor = MigrationExecutor(connection)
    executor.migrate([("workbooks", "0008_embed_preview")])
    old_apps = executor.loader.project_state([("workbooks", "0008_embed_preview")]).apps
    OldWorkbook, OldUser = old_apps.get_model("workbooks", "Workbook"), old_apps.get_model("accounts", "User")
    author = OldUser.objects.create(username="legacy", email="legacy@example.com")
    common = {"author": author, "sigma_embed_url": "https://app.sigmacomputing.com/embed/1-x", "slug": "s"}
    hidden = [OldWorkbook.objects.create(title=f"u{i}", visibility="unlisted", **common).pk for i in range(3)]
    public = OldWorkbook.objects.create(title="p", visibility="public", **common).pk
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    tokens = dict(Workbook.objects.values_list("pk", "share_token"))
    assert all(tokens[pk] and len(tokens[pk]) >= 22 for pk in hidden)
    assert len({tokens[pk] for pk in hidden}) == 3 and tokens[public] is None
    executor = MigrationExecutor(connection)
    executor.migrate([("workbooks", "0008_embed_preview")])  # reverses: drops the tokens, then the column
    with connection.cursor() as cursor:
        columns = [
            c.name for c in connection.introspection.get_table_description(cursor, "workbooks_workbook")
        ]
    assert "share_token" not in columns
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
