"""A profile save invalidates what it changed and nothing else (issue 17: every save, even an unchanged one,
bumped ``lists`` and so emptied the whole page cache)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts import services as account_services
from sigma_playground.caching import keys, service
from tests.caching.conftest import publish

pytestmark = pytest.mark.django_db(transaction=True)  # on_commit invalidation runs as in production


def namespaces(world) -> list[str]:
    author, workbook = world["author"], world["workbook"]
    return [keys.LISTS, keys.PEOPLE, keys.ns_user(author.username), keys.ns_workbook(workbook.pk)]


def bumped(world, write) -> set[str]:
    """The namespaces whose generation ``write()`` moved."""
    names = namespaces(world)
    before = service.generations(names)
    write()
    after = service.generations(names)
    assert set(before) == set(after) == set(names)
    return {name for name in names if after[name] != before[name]}


def save(world, **changes):
    author = world["author"]
    fields = {"full_name": author.full_name, "bio": author.bio, **changes}
    return lambda: account_services.user_update_profile(user=author, **fields)


def test_a_save_that_changes_nothing_invalidates_nothing(world):
    assert bumped(world, save(world)) == set()


def test_a_new_name_refreshes_everywhere_the_person_shows(world):
    author = world["author"]
    assert bumped(world, save(world, full_name="Ada Zebra")) == {
        keys.LISTS,  # cards, detail pages' author boxes, other people's follow lists
        keys.PEOPLE,  # the directory and search's People block
        keys.ns_user(author.username),
    }


def test_a_new_bio_refreshes_the_profile_and_the_author_box_of_each_workbook_only(world):
    author = world["author"]
    other = publish(author, "Bio board", n=21)
    names = [keys.ns_workbook(other.pk)]
    before = service.generations(names)
    assert bumped(world, save(world, bio="Counts things for a living.")) == {
        keys.ns_user(author.username),
        keys.ns_workbook(world["workbook"].pk),
    }
    assert service.generations(names) != before  # every workbook of theirs, not only one


def test_the_pages_showing_the_bio_are_fresh_and_the_lists_stay_cached(world):
    anonymous = Client()
    detail, profile, listing = (
        world["workbook"].get_absolute_url(),
        world["author"].get_absolute_url(),
        reverse("workbooks:list"),
    )
    for url in (detail, profile, listing):
        anonymous.get(url)
        assert anonymous.get(url).get("X-Cache") == "hit"
    save(world, bio="Counts things for a living.")()
    for url in (detail, profile):
        response = anonymous.get(url)
        assert response.get("X-Cache") is None and "Counts things for a living." in response.content.decode()
    assert anonymous.get(listing).get("X-Cache") == "hit"  # cards show no bio: still cached


def test_an_unchanged_profile_form_posted_by_its_owner_invalidates_nothing(world):
    client = Client()
    client.force_login(world["author"])
    author = world["author"]
    data = {"full_name": author.full_name, "bio": author.bio}

    def post() -> None:
        assert client.post(reverse("accounts:profile_edit"), data).status_code == 302

    assert bumped(world, post) == set()
