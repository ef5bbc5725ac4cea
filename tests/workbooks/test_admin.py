import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.factories import TagFactory, UserFactory, WorkbookFactory
from workbooks import services
from workbooks.models import Favorite, Visibility, Workbook

pytestmark = pytest.mark.django_db
CHANGELIST = reverse("admin:workbooks_workbook_changelist")


def changelist_queries(client, **params) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(CHANGELIST, params).status_code == 200
    return len(ctx.captured_queries)


def test_changelist_runs_a_fixed_number_of_queries(client, staff_user):
    client.force_login(staff_user)
    WorkbookFactory.create_batch(5)
    few = changelist_queries(client)
    WorkbookFactory.create_batch(60, author=UserFactory())
    assert changelist_queries(client) == few
    assert changelist_queries(client, q="a") == changelist_queries(client, q="b")


def test_search_by_title_and_author_username(client, staff_user):
    client.force_login(staff_user)
    hit = WorkbookFactory(title="Churn waterfall", author=UserFactory(username="zoe"))
    WorkbookFactory(title="Other")
    assert [w.pk for w in client.get(CHANGELIST, {"q": "waterfall"}).context["cl"].result_list] == [hit.pk]
    assert [w.pk for w in client.get(CHANGELIST, {"q": "zoe"}).context["cl"].result_list] == [hit.pk]


def run_action(client, action, workbooks):
    return client.post(
        CHANGELIST, {"action": action, "_selected_action": [w.pk for w in workbooks]}, follow=True
    )


def test_actions_feature_publish_and_make_private(client, staff_user):
    client.force_login(staff_user)
    a, b = WorkbookFactory(), WorkbookFactory(published_at=None)
    run_action(client, "feature", [a, b])
    assert set(Workbook.objects.filter(is_featured=True).values_list("pk", flat=True)) == {a.pk, b.pk}
    run_action(client, "unfeature", [a])
    run_action(client, "publish", [b])
    run_action(client, "make_private", [a])
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.is_featured, a.visibility) == (False, Visibility.PRIVATE)
    assert b.published_at is not None
    run_action(client, "unpublish", [b])
    b.refresh_from_db()
    assert b.published_at is None


def test_staff_edit_goes_through_services(client, staff_user):
    client.force_login(staff_user)
    workbook = WorkbookFactory(title="Before", tags=[TagFactory(name="keep")])
    url = reverse("admin:workbooks_workbook_change", args=[workbook.pk])
    form = client.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "tags"}
    data.update(title="After", is_featured="on", published_at_0="2026-01-02", published_at_1="10:00:00")
    data.pop("published_at", None)
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    workbook.refresh_from_db()
    assert workbook.title == "After" and workbook.is_featured
    assert [t.slug for t in workbook.tags.all()] == ["keep"]


def test_tag_changelist_shows_usage(client, staff_user):
    client.force_login(staff_user)
    tag = TagFactory(name="finance")
    WorkbookFactory.create_batch(3, tags=[tag])
    response = client.get(reverse("admin:workbooks_tag_changelist"))
    assert response.status_code == 200
    assert [t.usage_count for t in response.context["cl"].result_list] == [3]


def test_staff_removing_a_favorite_keeps_the_counter_exact(client, staff_user):
    client.force_login(staff_user)
    workbook = WorkbookFactory()
    services.favorite_add(user=UserFactory(), workbook=workbook)
    favorite = Favorite.objects.get()
    url = reverse("admin:workbooks_favorite_delete", args=[favorite.pk])
    assert client.post(url, {"post": "yes"}).status_code == 302
    workbook.refresh_from_db()
    assert workbook.favorite_count == 0 and not Favorite.objects.exists()


def test_non_staff_cannot_use_gallery_admin(client, user):
    client.force_login(user)
    assert client.get(CHANGELIST).status_code == 302
