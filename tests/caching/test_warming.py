import io

import pytest
from django.core.management import call_command
from django.test import Client

from tests.factories import UserFactory, WorkbookFactory
from workbooks import warming
from workbooks.models import Workbook

pytestmark = pytest.mark.django_db


def test_warm_cache_command_writes_pages_once_with_progress_and_summary():
    author = UserFactory()
    WorkbookFactory.create_batch(3, author=author, favorite_count=5)
    WorkbookFactory(author=author, is_featured=True)
    out, err = io.StringIO(), io.StringIO()
    call_command("warm_cache", stdout=out, stderr=err)
    paths = warming.warm_paths()
    # home, list, 3 other sorts, 4 workbooks, 1 author
    assert len(paths) == 1 + 1 + 3 + 4 + 1
    assert f"Cache warmed: {len(paths)} entries written, 0 already fresh, 0 failed" in out.getvalue()
    assert "warming pages" in err.getvalue() and "pages/s" in err.getvalue()
    out = io.StringIO()
    call_command("warm_cache", stdout=out, stderr=io.StringIO())
    assert f"0 entries written, {len(paths)} already fresh" in out.getvalue()
    assert Client().get("/").get("X-Cache") == "hit"


def test_warming_does_not_count_views():
    workbook = WorkbookFactory(favorite_count=9)
    warming.warm()
    warming.warm()
    assert Workbook.objects.get(pk=workbook.pk).view_count == 0


def test_warm_cache_exits_non_zero_and_lists_the_pages_that_failed(monkeypatch):
    from django.core.management.base import CommandError

    WorkbookFactory(favorite_count=3)
    paths = warming.warm_paths()
    monkeypatch.setattr(warming, "warm_paths", lambda: [*paths, "/users/nobody-at-all/"])
    err = io.StringIO()
    with pytest.raises(CommandError, match="Cache warming failed for 1 pages"):
        call_command("warm_cache", stdout=io.StringIO(), stderr=err)
    assert "not warmed: /users/nobody-at-all/: 404" in err.getvalue()
