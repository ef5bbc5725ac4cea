"""Admin writes go through the services (issue 17): for each, what changed in the database, what was
invalidated, and what anonymous visitors get afterwards from pages that were cached before the write."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django import forms
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from accounts.models import Follow, User
from notifications.models import Notification
from sigma_playground.caching import keys, service
from sigma_playground.cdn import purge
from tests import images
from tests.caching.conftest import publish
from tests.factories import UserFactory
from workbooks.models import Tag, Workbook

pytestmark = pytest.mark.django_db(transaction=True)  # on_commit invalidation runs as in production


@pytest.fixture
def staff(world) -> Client:
    client = Client()
    client.force_login(UserFactory(username="boss", is_staff=True, is_superuser=True))
    return client


def form_data(form: forms.BaseForm) -> dict[str, object]:
    """What a browser posts back for an admin form left as shown."""
    data: dict[str, object] = {}
    for name, field in form.fields.items():
        if field.disabled or isinstance(field, forms.FileField):
            continue
        value = form[name].value()
        if isinstance(field, forms.BooleanField):
            if value:
                data[name] = "on"
        elif isinstance(field, forms.SplitDateTimeField):
            shown = timezone.localtime(value) if value else None
            data[f"{name}_0"] = shown.date().isoformat() if shown else ""
            data[f"{name}_1"] = shown.time().isoformat(timespec="seconds") if shown else ""
        else:
            data[name] = "" if value is None else value
    return data


def submit(client: Client, url: str, changes: dict[str, object] | None = None, **kwargs):
    form = client.get(url).context["adminform"].form
    return client.post(url, {**form_data(form), **(changes or {})}, **kwargs)


def change_url(obj) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def cached(*urls: str) -> Client:
    """An anonymous visitor, with ``urls`` in the page cache."""
    client = Client()
    for url in urls:
        assert client.get(url).status_code == 200, url
        assert client.get(url).get("X-Cache") == "hit", url
    return client


def fresh(client: Client, url: str, *, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status, (url, response.status_code)
    assert response.get("X-Cache") is None, f"{url} was served from the cache after the write"
    return response.content.decode()


def generations(world) -> dict[str, int]:
    return service.generations(
        [
            keys.LISTS,
            keys.PEOPLE,
            keys.ns_user(world["author"].username),
            keys.ns_workbook(world["workbook"].pk),
        ]
    )


# --- Tags -----------------------------------------------------------------------------------------------------


def test_renaming_a_tag_renames_it_on_its_workbooks_in_search_and_on_pages(world, staff):
    tag = Tag.objects.get(slug="finance")
    search = reverse("workbooks:list") + "?q=Treasury"
    detail = world["workbook"].get_absolute_url()
    visitor = cached(search, detail)
    assert "Revenue waterfall" not in visitor.get(search).content.decode()
    response = submit(staff, change_url(tag), {"name": "Treasury"})
    assert response.status_code == 302
    assert set(Workbook.objects.values_list("tag_names", flat=True)) == {"Treasury"}
    assert "Revenue waterfall" in fresh(visitor, search)
    assert "Treasury" in fresh(visitor, detail)


def test_a_tag_saved_unchanged_invalidates_nothing(world, staff):
    tag = Tag.objects.get(slug="finance")
    before = generations(world)
    assert submit(staff, change_url(tag)).status_code == 302
    assert generations(world) == before


def test_a_tag_added_in_admin_is_made_by_the_service(world, staff):
    url = reverse("admin:workbooks_tag_add")
    response = staff.post(url, {"name": "Supply chain", "slug": "supply-chain", "colour": "#1a7f37"})
    assert response.status_code == 302
    tag = Tag.objects.get(slug="supply-chain")
    assert (tag.name, tag.colour) == ("Supply chain", "#1a7f37")
    assert staff.post(url, {"name": "supply CHAIN", "slug": "other", "colour": "#1a7f37"}).status_code == 200


# --- Workbooks ------------------------------------------------------------------------------------------------


def titles_in_order(html: str, *titles: str) -> list[str]:
    return sorted(titles, key=html.index)


def test_a_new_publish_date_of_a_published_workbook_is_applied(world, staff):
    older, newer = world["workbook"], Workbook.objects.get(title="Churn cohort board")
    listing = reverse("workbooks:list")
    visitor = cached(listing, newer.get_absolute_url())
    page = visitor.get(listing).content.decode()
    assert titles_in_order(page, older.title, newer.title) == [newer.title, older.title]
    response = submit(
        staff, change_url(newer), {"published_at_0": "2025-01-02", "published_at_1": "10:00:00"}
    )
    assert response.status_code == 302
    newer.refresh_from_db()
    assert timezone.localtime(newer.published_at).replace(tzinfo=None) == dt.datetime(2025, 1, 2, 10)
    page = fresh(visitor, listing)
    assert titles_in_order(page, older.title, newer.title) == [older.title, newer.title]
    assert "2 Jan 2025" in page and "2 January 2025" in fresh(visitor, newer.get_absolute_url())


def test_clearing_the_publish_date_makes_a_draft_and_setting_one_publishes(world, staff):
    workbook = world["workbook"]
    listing = reverse("workbooks:list")
    visitor = cached(listing)
    assert (
        submit(staff, change_url(workbook), {"published_at_0": "", "published_at_1": ""}).status_code == 302
    )
    workbook.refresh_from_db()
    assert workbook.published_at is None
    assert workbook.title not in fresh(visitor, listing)
    fresh(visitor, workbook.get_absolute_url(), status=404)
    follower = UserFactory()
    Follow.objects.create(follower=follower, followed=workbook.author)
    changes = {"published_at_0": "2025-03-04", "published_at_1": "09:30:00"}
    assert submit(staff, change_url(workbook), changes).status_code == 302
    workbook.refresh_from_db()
    assert workbook.published_at is not None and workbook.title in fresh(visitor, listing)
    # Published by staff is published: the author's followers hear of it, as from the site.
    assert Notification.objects.filter(recipient=follower, workbook=workbook).exists()


def test_a_new_slug_is_applied_the_old_address_redirects_and_the_cdn_is_purged(world, staff, monkeypatch):
    workbook = world["workbook"]
    old_url = workbook.get_absolute_url()
    visitor = cached(old_url)
    # The CDN holds the old address under the workbook's surrogate key: purging the key purges it.
    assert f"wb-{workbook.pk}" in visitor.get(old_url)["Surrogate-Key"].split()
    purged: list[list[str]] = []
    monkeypatch.setattr(purge, "purge_soon", lambda keys_: purged.append(sorted(keys_)))
    assert submit(staff, change_url(workbook), {"slug": "cash-bridge"}).status_code == 302
    workbook.refresh_from_db()
    assert workbook.slug == "cash-bridge" and workbook.title == "Revenue waterfall"
    assert any(f"wb-{workbook.pk}" in batch and "lists" in batch for batch in purged), purged
    moved = visitor.get(old_url)
    assert moved.status_code == 301 and moved["Location"] == workbook.get_absolute_url()
    assert "Revenue waterfall" in fresh(visitor, workbook.get_absolute_url())
    # The author's next edit through the site keeps the slug staff chose while the title stays.
    from workbooks import services

    services.workbook_update(
        workbook=workbook, title=workbook.title, sigma_embed_url=workbook.sigma_embed_url,
        description="Now with notes.", tags=["finance"], visibility=workbook.visibility, publish=True,
    )  # fmt: skip
    workbook.refresh_from_db()
    assert workbook.slug == "cash-bridge"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"slug": "edit"}, "slug", "choose another slug"),
        ({"published_at_0": "2999-01-01", "published_at_1": "00:00:00"}, "published_at", "in the future"),
    ],
)
def test_edits_that_cannot_be_applied_are_refused_with_the_reason(world, staff, changes, field, message):
    workbook = world["workbook"]
    before = Workbook.objects.filter(pk=workbook.pk).values("slug", "published_at").get()
    response = submit(staff, change_url(workbook), changes)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert message in " ".join(errors[field]), errors
    assert Workbook.objects.filter(pk=workbook.pk).values("slug", "published_at").get() == before


def test_a_workbook_saved_unchanged_invalidates_nothing(world, staff):
    workbook = world["workbook"]
    # The admin's date and time widgets show seconds: a stored date with microseconds is not an edit.
    stored = timezone.now().replace(microsecond=123456) - dt.timedelta(days=1)
    Workbook.objects.filter(pk=workbook.pk).update(published_at=stored)
    before = generations(world)
    assert submit(staff, change_url(workbook)).status_code == 302
    assert generations(world) == before
    assert Workbook.objects.get(pk=workbook.pk).published_at == stored


def test_moving_a_workbook_to_another_author_refreshes_both_profiles(world, staff):
    workbook, reader = world["workbook"], world["reader"]
    visitor = cached(world["author"].get_absolute_url(), reader.get_absolute_url())
    assert submit(staff, change_url(workbook), {"author": reader.pk}).status_code == 302
    assert Workbook.objects.get(pk=workbook.pk).author_id == reader.pk
    assert workbook.title not in fresh(visitor, world["author"].get_absolute_url())
    assert workbook.title in fresh(visitor, reader.get_absolute_url())


def test_featuring_and_title_edits_show_at_once(world, staff):
    workbook = world["workbook"]
    visitor = cached(reverse("home"), workbook.get_absolute_url())
    changes = {"is_featured": "on", "title": "Revenue bridge"}
    assert submit(staff, change_url(workbook), changes).status_code == 302
    workbook.refresh_from_db()
    assert workbook.is_featured and workbook.title == "Revenue bridge"
    assert "Revenue bridge" in fresh(visitor, reverse("home"))


def test_bulk_delete_deletes_through_the_service(world, staff):
    author = world["author"]
    doomed = [world["workbook"], publish(author, "Doomed zebra board", n=31)]
    urls = [reverse("workbooks:list"), author.get_absolute_url(), reverse("workbooks:tag", args=["finance"])]
    visitor = cached(*urls)
    response = staff.post(
        reverse("admin:workbooks_workbook_changelist"),
        {"action": "delete_selected", "_selected_action": [w.pk for w in doomed], "post": "yes"},
    )
    assert response.status_code == 302
    assert not Workbook.objects.filter(pk__in=[w.pk for w in doomed]).exists()
    for url in urls:
        page = fresh(visitor, url)
        assert "Revenue waterfall" not in page and "Doomed zebra board" not in page, url
        assert "Churn cohort board" in page, url


# --- Users ----------------------------------------------------------------------------------------------------


def test_a_user_deactivated_in_admin_leaves_every_page(world, staff):
    author = world["author"]
    urls = [author.get_absolute_url(), reverse("workbooks:list"), reverse("profiles:list")]
    visitor = cached(*urls)
    data = form_data(staff.get(change_url(author)).context["adminform"].form)
    data.pop("is_active")
    assert staff.post(change_url(author), data).status_code == 302
    assert not User.objects.get(pk=author.pk).is_active
    fresh(visitor, author.get_absolute_url(), status=404)
    assert "Revenue waterfall" not in fresh(visitor, reverse("workbooks:list"))
    assert "Ada Analyst" not in fresh(visitor, reverse("profiles:list"))


def test_renaming_a_user_in_admin_moves_their_profile(world, staff):
    author = world["author"]
    old_profile = author.get_absolute_url()
    visitor = cached(old_profile, reverse("workbooks:list"))
    assert submit(staff, change_url(author), {"username": "lovelace"}).status_code == 302
    assert User.objects.get(pk=author.pk).username == "lovelace"
    fresh(visitor, old_profile, status=404)
    assert "Revenue waterfall" in fresh(visitor, reverse("profiles:detail", args=["lovelace"]))
    assert 'href="/users/lovelace/"' in fresh(visitor, reverse("workbooks:list"))


def test_a_staff_flag_or_email_change_invalidates_nothing(world, staff):
    before = generations(world)
    changes = {"email": "ada@elsewhere.example", "is_staff": "on"}
    assert submit(staff, change_url(world["author"]), changes).status_code == 302
    author = User.objects.get(pk=world["author"].pk)
    assert author.email == "ada@elsewhere.example" and author.is_staff
    assert generations(world) == before


def test_a_picture_uploaded_in_admin_is_re_encoded_and_the_old_one_deleted_on_clear(world, staff):
    author = world["author"]
    form = staff.get(change_url(author)).context["adminform"].form
    upload = images.upload(images.image_bytes(size=(600, 300)), "raw.png")
    assert staff.post(change_url(author), {**form_data(form), "avatar": upload}).status_code == 302
    author.refresh_from_db()
    assert author.avatar.name.endswith(".webp")
    with author.avatar.open("rb") as fh, Image.open(io.BytesIO(fh.read())) as img:
        assert (img.format, img.size) == ("WEBP", (256, 256))
    name = author.avatar.name
    assert submit(staff, change_url(author), {"avatar-clear": "on"}).status_code == 302
    author.refresh_from_db()
    assert not author.avatar and not default_storage.exists(name)


def test_a_user_added_in_admin_shows_in_the_directory(world, staff):
    visitor = cached(reverse("profiles:list"))
    response = staff.post(
        reverse("admin:accounts_user_add"),
        {"username": "newcomer", "email": "new@example.com", "usable_password": "false"},
    )
    assert response.status_code == 302
    newcomer = User.objects.get(username="newcomer")
    assert not newcomer.has_usable_password()
    assert "@newcomer" in fresh(visitor, reverse("profiles:list"))


def test_deleting_a_user_in_admin_removes_them_and_lowers_the_counts_they_made(world, staff):
    reader, author = world["reader"], world["author"]
    from accounts import services as account_services

    account_services.follow(follower=reader, followed=author)
    urls = [author.get_absolute_url(), reverse("profiles:list")]
    visitor = cached(*urls)
    response = staff.post(reverse("admin:accounts_user_delete", args=[reader.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not User.objects.filter(pk=reader.pk).exists()
    assert User.objects.get(pk=author.pk).follower_count == 0
    assert "<strong>0</strong> followers" in fresh(visitor, author.get_absolute_url())
    assert "Rita Reader" not in fresh(visitor, reverse("profiles:list"))


def test_bulk_deleting_users_in_admin_takes_their_workbooks_off_the_lists(world, staff):
    visitor = cached(reverse("workbooks:list"))
    response = staff.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "delete_selected", "_selected_action": [world["author"].pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert not Workbook.objects.exists()
    assert "Revenue waterfall" not in fresh(visitor, reverse("workbooks:list"))


# --- Follows --------------------------------------------------------------------------------------------------


def test_a_follow_added_in_admin_shows_and_counts(world, staff):
    reader, author = world["reader"], world["author"]
    urls = [author.get_absolute_url(), reverse("profiles:followers", args=[author.username])]
    visitor = cached(*urls)
    response = staff.post(
        reverse("admin:accounts_follow_add"), {"follower": reader.pk, "followed": author.pk}
    )
    assert response.status_code == 302
    assert Follow.objects.filter(follower=reader, followed=author).exists()
    assert User.objects.get(pk=author.pk).follower_count == 1
    assert "<strong>1</strong> follower" in fresh(visitor, urls[0])
    assert "Rita Reader" in fresh(visitor, urls[1])
    assert Notification.objects.filter(recipient=author, actor=reader).exists()  # as a follow on the site
    self_follow = {"follower": author.pk, "followed": author.pk}
    assert staff.post(reverse("admin:accounts_follow_add"), self_follow).status_code == 200  # a form error


def test_a_follow_removed_in_admin_is_uncounted(world, staff):
    reader, author = world["reader"], world["author"]
    from accounts import services as account_services

    account_services.follow(follower=reader, followed=author)
    link = Follow.objects.get()
    visitor = cached(author.get_absolute_url())
    assert (
        staff.post(reverse("admin:accounts_follow_delete", args=[link.pk]), {"post": "yes"}).status_code
        == 302
    )
    assert not Follow.objects.exists() and User.objects.get(pk=author.pk).follower_count == 0
    assert "<strong>0</strong> followers" in fresh(visitor, author.get_absolute_url())


def test_a_follow_cannot_be_turned_into_another_pair(world, staff):
    reader, author = world["reader"], world["author"]
    from accounts import services as account_services

    account_services.follow(follower=reader, followed=author)
    link = Follow.objects.get()
    other = UserFactory()
    response = staff.post(change_url(link), {"follower": other.pk, "followed": author.pk})
    assert response.status_code == 403
    assert Follow.objects.get().follower_id == reader.pk
