import pytest

from tests.factories import WorkbookFactory
from workbooks import services
from workbooks.models import Favorite, Workbook, WorkbookDailyStat

pytestmark = pytest.mark.django_db


def test_nightly_recount_fixes_drift_and_exports_it():
    from prometheus_client import REGISTRY

    good, drifted = WorkbookFactory(), WorkbookFactory()
    services.favorite_add(user=drifted.author, workbook=drifted)
    Workbook.objects.filter(pk=drifted.pk).update(favorite_count=7, view_count=0)
    WorkbookDailyStat.objects.create(workbook=drifted, date="2026-11-01", views=12)
    result = services.workbook_counters_recount(chunk=1)
    drifted.refresh_from_db()
    good.refresh_from_db()
    assert (drifted.favorite_count, drifted.view_count) == (
        Favorite.objects.filter(workbook=drifted).count(),
        12,
    )
    assert (good.favorite_count, good.view_count) == (0, 0)
    assert result["favorite_count_drift"] == 6 and result["view_count_drift"] == 12
    assert REGISTRY.get_sample_value("sigma_counter_drift", {"counter": "favorite_count"}) == 6
    assert services.workbook_counters_recount()["favorite_count_drift"] == 0
