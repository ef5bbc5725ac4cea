import pytest
from django.db import IntegrityError, transaction

from tests.factories import TagFactory, UserFactory, WorkbookFactory
from workbooks.models import Favorite, Tag, Workbook, WorkbookDailyStat, WorkbookTag

pytestmark = pytest.mark.django_db


def violates(fn) -> bool:
    try:
        with transaction.atomic():
            fn()
    except IntegrityError:
        return True
    return False


def test_database_constraints_hold_without_forms():
    workbook, user, tag = WorkbookFactory(), UserFactory(), TagFactory(name="ops")
    Favorite.objects.create(user=user, workbook=workbook)
    WorkbookTag.objects.create(workbook=workbook, tag=tag)
    WorkbookDailyStat.objects.create(workbook=workbook, date="2026-11-01", views=1)
    assert violates(lambda: Favorite.objects.create(user=user, workbook=workbook))
    assert violates(lambda: WorkbookTag.objects.create(workbook=workbook, tag=tag))
    assert violates(lambda: WorkbookDailyStat.objects.create(workbook=workbook, date="2026-11-01"))
    assert violates(lambda: Tag.objects.create(name="OPS", slug="ops-2"))
    assert violates(lambda: Tag.objects.create(name="bad colour", slug="bad-colour", colour="red"))
    assert violates(lambda: Tag.objects.create(name="upper", slug="upper", colour="#ABCDEF"))
    assert violates(lambda: Workbook.objects.filter(pk=workbook.pk).update(visibility="everyone"))
    assert violates(lambda: Workbook.objects.filter(pk=workbook.pk).update(favorite_count=-1))
    assert violates(lambda: Workbook.objects.filter(pk=workbook.pk).update(title=""))
    assert violates(lambda: WorkbookDailyStat.objects.filter(workbook=workbook).update(views=-1))


def test_detail_page_csp_allows_exactly_the_configured_embed_hosts(client, settings):
    workbook = WorkbookFactory()
    csp = client.get(workbook.get_absolute_url())["Content-Security-Policy"]
    assert "frame-src https://app.sigmacomputing.com;" in csp + ";"
    assert "unsafe-inline" not in csp
