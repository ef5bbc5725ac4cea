from __future__ import annotations

import ast
import datetime as dt
import os
import random
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.db import connection, connections
from django.utils import timezone

from tests.factories import UserFactory, WorkbookFactory
from workbooks import counters, services, trending
from workbooks.models import Favorite, Workbook, WorkbookDailyStat


@pytest.mark.django_db
def test_favorite_count_follows_rows():
    workbook, users = WorkbookFactory(), UserFactory.create_batch(3)
    for user in users:
        assert services.favorite_add(user=user, workbook=workbook)
    assert not services.favorite_add(user=users[0], workbook=workbook)
    assert services.favorite_remove(user=users[1], workbook=workbook)
    assert not services.favorite_remove(user=users[1], workbook=workbook)
    workbook.refresh_from_db()
    assert workbook.favorite_count == Favorite.objects.filter(workbook=workbook).count() == 2


@pytest.mark.django_db
def test_views_only_grow():
    workbook = WorkbookFactory()
    today = timezone.now().date()
    services.workbook_views_apply(counts={(workbook.pk, today): 5})
    services.workbook_views_apply(counts={(workbook.pk, today): -3})  # ignored: counts never go back
    services.workbook_views_apply(
        counts={(workbook.pk, today - dt.timedelta(days=1)): 2, (999999, today): 4}
    )  # a gone workbook
    workbook.refresh_from_db()
    assert workbook.view_count == 7
    assert dict(WorkbookDailyStat.objects.values_list("date", "views")) == {
        today: 5,
        today - dt.timedelta(days=1): 2,
    }


@pytest.mark.django_db
def test_view_counting_without_redis_writes_straight_to_the_database(settings):
    from sigma_playground.caching import service

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    service.reset_backend()
    settings.VIEW_COUNTING_ENABLED = True
    workbook = WorkbookFactory()
    counters.record_view(workbook_id=workbook.pk)
    counters.record_view(workbook_id=workbook.pk)
    workbook.refresh_from_db()
    assert workbook.view_count == 2
    settings.VIEW_COUNTING_ENABLED = False
    counters.record_view(workbook_id=workbook.pk)
    workbook.refresh_from_db()
    assert workbook.view_count == 2
    service.reset_backend()


@pytest.mark.django_db
def test_trending_formula_decays_and_ignores_old_days():
    today = dt.date(2026, 11, 26)
    hot, old, steady = WorkbookFactory.create_batch(3)
    rows = [
        (hot, today, 10, 2),  # today: 10 + 5*2 = 20, weight 1
        (hot, today - dt.timedelta(days=2), 4, 0),  # weight 0.5 -> 2
        (old, today - dt.timedelta(days=7), 1000, 100),  # outside the 7-day window
        (steady, today - dt.timedelta(days=6), 8, 0),  # weight 0.125 -> 1
    ]
    WorkbookDailyStat.objects.bulk_create(
        [WorkbookDailyStat(workbook=w, date=d, views=v, favorites=f) for w, d, v, f in rows]
    )
    Workbook.objects.filter(pk=old.pk).update(trending_score=99)  # stale: must drop to 0
    services.trending_recompute(today=today)
    scores = dict(Workbook.objects.values_list("pk", "trending_score"))
    assert scores[hot.pk] == pytest.approx(22.0)
    assert scores[steady.pk] == pytest.approx(1.0)
    assert scores[old.pk] == 0
    assert trending.score([(0, 10, 2), (2, 4, 0)]) == pytest.approx(22.0)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_favorites_leave_one_row_per_pair_and_exact_counts():
    workbooks = WorkbookFactory.create_batch(3)
    users = UserFactory.create_batch(6)
    errors: list[BaseException] = []
    barrier = threading.Barrier(12)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            barrier.wait()
            for _ in range(40):
                user, workbook = rng.choice(users[:3]), rng.choice(workbooks[:2])  # many threads, same pairs
                if rng.random() < 0.6:
                    services.favorite_add(user=user, workbook=workbook)
                else:
                    services.favorite_remove(user=user, workbook=workbook)
            services.favorite_add(user=users[3 + seed % 3], workbook=workbooks[2])  # different pairs
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert connection.vendor == "postgresql"
    for workbook in Workbook.objects.all():
        rows = Favorite.objects.filter(workbook=workbook)
        assert workbook.favorite_count == rows.count()
        assert rows.values("user").distinct().count() == rows.count()
    assert Workbook.objects.get(pk=workbooks[2].pk).favorite_count == 3


def _imported_modules(path: Path) -> set[str]:
    """Every module a source file imports, at module level or inside a function (relative imports resolved
    within workbooks)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = f"workbooks.{base}" if base else "workbooks"
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def test_the_services_queue_tasks_by_name_and_never_import_them():
    """Tasks call services, so services sit below them: they queue a task by its registered name and import
    no task module, not even inside a function (which would hide a cycle); thumbnails.py is image and file
    code and imports neither."""
    from sigma_playground.celery import app
    from workbooks import tasks

    root = Path(services.__file__).parent
    for name in ("services.py", "thumbnails.py"):
        imported = _imported_modules(root / name)
        assert not {m for m in imported if m.startswith("workbooks.tasks")}, name
    assert not {m for m in _imported_modules(root / "thumbnails.py") if m.startswith(("django.db", "celery"))}
    assert app.tasks[services.RENDER_THUMBNAIL_TASK].name == tasks.render_thumbnail_derivatives.name
    assert app.tasks[services.CAPTURE_PREVIEW_TASK].name == tasks.capture_embed_preview.name


def test_a_process_that_imported_no_task_module_can_queue_the_tasks():
    """A web process (gunicorn, runserver) or a management command sets Django up and imports no task module
    itself, and Celery registers autodiscovered tasks only in workers: the names the services queue must
    resolve there too (workbooks.apps registers them). Otherwise an upload's render is never queued."""
    code = (
        "import django\n"
        "django.setup()\n"
        "from celery import current_app\n"
        "from workbooks import services\n"
        "for name in (services.RENDER_THUMBNAIL_TASK, services.CAPTURE_PREVIEW_TASK):\n"
        "    print(current_app.tasks[name].name)\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "sigma_playground.settings"}
    root = Path(services.__file__).parent.parent
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [services.RENDER_THUMBNAIL_TASK, services.CAPTURE_PREVIEW_TASK]
