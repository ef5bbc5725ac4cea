"""``manage.py seed_demo``: the idempotent demo gallery and the bulk loader (executemany / COPY)."""

from __future__ import annotations

import datetime as dt
import io
import re

import pytest
from django.core.management import CommandError, call_command
from django.core.management.base import OutputWrapper
from django.db import connection
from django.db.models import Count, F, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import Follow, User
from accounts.validators import UsernameValidator
from sigma_playground.progress import Progress, command_stream
from tests.factories import UserFactory, WorkbookFactory
from workbooks.demo import gallery
from workbooks.demo.bulk import BulkLoader
from workbooks.demo.vocabulary import demo_embed_url
from workbooks.models import Favorite, Tag, Visibility, Workbook, WorkbookDailyStat, WorkbookTag
from workbooks.services import tag_names_text

# The demo is dated from today (30 days of statistics, reruns that must add nothing): on the fixed clock.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]

TABLES = [m._meta.db_table for m in (User, Workbook, WorkbookTag, Favorite, WorkbookDailyStat, Follow)]


def counts() -> dict[str, int]:
    return {
        "users": User.objects.count(),
        "follows": Follow.objects.count(),
        "workbooks": Workbook.objects.count(),
        "tags": Tag.objects.count(),
        "workbook_tags": WorkbookTag.objects.count(),
        "favorites": Favorite.objects.count(),
        "stats": WorkbookDailyStat.objects.count(),
    }


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("seed_demo", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def assert_counters_consistent() -> None:
    favorites = Favorite.objects.filter(workbook=OuterRef("pk")).order_by().values("workbook")
    views = WorkbookDailyStat.objects.filter(workbook=OuterRef("pk")).order_by().values("workbook")
    annotated = Workbook.objects.annotate(
        real_favorites=Coalesce(Subquery(favorites.annotate(n=Count("pk")).values("n")), Value(0)),
        real_views=Coalesce(Subquery(views.annotate(n=Sum("views")).values("n")), Value(0)),
    )
    assert not annotated.exclude(favorite_count=F("real_favorites")).exists(), "favorite_count drifted"
    assert not annotated.exclude(view_count=F("real_views")).exists(), "view_count != sum of daily views"


def assert_rows_valid() -> None:
    """What the database would check at commit (foreign keys), plus rules it cannot express."""
    connection.check_constraints(table_names=TABLES)
    assert not Follow.objects.filter(follower=F("followed")).exists()
    validator = UsernameValidator()
    for username in User.objects.values_list("username", flat=True):
        validator(username)
    assert not User.objects.filter(email="").exists()
    lowered = [e.lower() for e in User.objects.values_list("email", flat=True)]
    assert len(lowered) == len(set(lowered))
    # Nobody favorites a draft or a private workbook, or before it was published.
    assert not Favorite.objects.filter(workbook__published_at__isnull=True).exists()
    assert not Favorite.objects.filter(workbook__visibility=Visibility.PRIVATE).exists()
    assert not Favorite.objects.filter(created_at__lt=F("workbook__published_at")).exists()
    assert not Workbook.objects.filter(published_at__gt=timezone.now()).exists()
    # An unlisted workbook without a token could never be opened (its only link carries the token).
    assert not Workbook.objects.filter(visibility=Visibility.UNLISTED, share_token__isnull=True).exists()
    embed = re.compile(r"^https://app\.sigmacomputing\.com/embed/1-[A-Za-z0-9]{22}$")
    assert all(embed.match(url) for url in Workbook.objects.values_list("sigma_embed_url", flat=True))
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in Tag.objects.values_list("colour", flat=True))
    # The denormalised tag text that the full-text column reads matches the tag rows.
    for workbook in Workbook.objects.prefetch_related("tags"):
        assert workbook.tag_names == tag_names_text(t.name for t in workbook.tags.all())


def assert_orm_inserts_still_work() -> None:
    """The sequences were moved past the ids the loader assigned itself."""
    top = Workbook.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    user = UserFactory()
    workbook = WorkbookFactory(author=user)
    assert workbook.pk > top
    Favorite.objects.create(user=user, workbook=workbook)
    Follow.objects.create(follower=user, followed=User.objects.exclude(pk=user.pk).first())
    WorkbookTag.objects.create(workbook=workbook, tag=Tag.objects.first())
    WorkbookDailyStat.objects.create(workbook=workbook, date=timezone.now().date())


# --- the demo ----------------------------------------------------------------------------------------------


def test_demo_seed_is_believable_and_idempotent(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # the thumbnail task runs after commit
        out, _ = run()
    assert "Demo staff login: username 'demo', password 'sigma-demo-2026'" in out
    first = counts()

    out, _ = run()
    assert counts() == first, "a rerun must create nothing new"
    assert "0 workbooks, 0 tags, 0 favorites, 0 daily statistics and 0 chart thumbnails created" in out
    assert "Demo staff login" in out

    # People joined before they published.
    for author in User.objects.filter(workbooks__isnull=False).distinct():
        assert author.created_at < author.workbooks.order_by("created_at").first().created_at, author

    # Raster chart thumbnails through the upload pipeline: a master and AVIF/WebP/JPEG derivatives.
    pictured = Workbook.objects.listed().exclude(thumbnail="")
    assert pictured.count() == gallery.DEMO_THUMBNAILS
    for workbook in pictured:
        assert set(workbook.thumbnail_derivatives["sources"]) == {"image/avif", "image/webp", "image/jpeg"}
    assert not Workbook.objects.exclude(thumbnail="").exclude(pk__in=pictured.values("pk")).exists()

    assert 30 <= first["users"] <= 32
    assert User.objects.exclude(bio="").count() >= 30
    assert first["workbooks"] == 200
    assert first["tags"] >= 40
    assert first["follows"] >= 60
    assert first["favorites"] >= 150
    # Several tags on every workbook.
    per_workbook = Workbook.objects.annotate(n=Count("tag_links")).values_list("n", flat=True)
    assert min(per_workbook) >= 2

    # The mix of a real gallery.
    public = Workbook.objects.listed()
    assert public.filter(is_featured=True).count() >= 6
    assert Workbook.objects.filter(published_at__isnull=True).exists()
    assert Workbook.objects.filter(visibility=Visibility.PRIVATE).exists()
    assert Workbook.objects.filter(visibility=Visibility.UNLISTED).exists()
    assert public.count() >= 150
    oldest = Workbook.objects.exclude(published_at=None).order_by("published_at").first()
    assert oldest.published_at < timezone.now() - dt.timedelta(days=365)
    assert User.objects.annotate(n=Count("workbooks")).filter(n__gt=0).count() >= 15

    # 30 days of statistics, up to today.
    today = timezone.now().date()
    dates = set(WorkbookDailyStat.objects.values_list("date", flat=True).distinct())
    assert dates == {today - dt.timedelta(days=d) for d in range(30)}
    old_public = public.filter(published_at__lt=timezone.now() - dt.timedelta(days=40)).first()
    assert old_public.daily_stats.count() == 30
    assert Workbook.objects.filter(trending_score__gt=0).count() >= 50
    assert_counters_consistent()
    assert_rows_valid()

    # Text that makes search meaningful: distinct titles, a large vocabulary, real sentences.
    titles = list(Workbook.objects.values_list("title", flat=True))
    assert len(set(titles)) >= 150
    words: set[str] = set()
    for description in Workbook.objects.values_list("description", flat=True):
        assert len(description) >= 120
        words.update(re.findall(r"[a-z]+", description.lower()))
    assert len(words) >= 400
    assert Workbook.objects.filter(description__icontains="churn").exists()
    assert (
        Workbook.objects.filter(title__icontains="inventory").exists()
        or Workbook.objects.filter(description__icontains="inventory").exists()
    )


def test_demo_rerun_keeps_edits_and_recreates_nothing():
    run()
    workbook = Workbook.objects.get(sigma_embed_url=demo_embed_url(10))
    workbook.title = "Edited in the app"
    workbook.save()
    before = counts()
    run()
    workbook.refresh_from_db()
    assert workbook.title == "Edited in the app"
    assert counts() == before


# --- bulk mode ---------------------------------------------------------------------------------------------


def test_bulk_mode_small(django_assert_max_num_queries):
    run()  # on top of the demo: both must stay consistent
    before = counts()
    out, err = run("--workbooks", "500", "--users", "50", "--batch-size", "200")
    after = counts()
    assert after["workbooks"] - before["workbooks"] == 500
    assert after["users"] - before["users"] == 50
    # Defaults: 5 favorites per new workbook, 10 follows per new user (both capped for small runs).
    assert after["favorites"] - before["favorites"] == 2500
    assert after["follows"] - before["follows"] == 500
    assert after["workbook_tags"] - before["workbook_tags"] >= 1000
    assert after["stats"] > before["stats"]
    assert after["tags"] == before["tags"]

    assert "workbooks_workbook" in err and "rows/s" in err, "progress goes to stderr"
    assert "Bulk load finished" in out and "workbooks_favorite" in out and "total" in out

    new = Workbook.objects.order_by("-pk")[:500]
    titles = {w.title for w in new}
    assert len(titles) >= 400
    assert sum(w.is_featured for w in new) >= 3
    assert sum(w.published_at is None for w in new) >= 10
    assert_counters_consistent()
    assert_rows_valid()
    assert_orm_inserts_still_work()

    # The demo is still whole: a rerun adds nothing.
    again = counts()
    run()
    assert counts() == again


def test_bulk_users_only_and_explicit_counts():
    run("--workbooks", "0", "--users", "40", "--follows", "100")
    assert User.objects.count() == 40
    assert Follow.objects.count() == 100
    run("--workbooks", "300", "--favorites", "700", "--follows", "0")
    assert Workbook.objects.count() == 300
    assert Favorite.objects.count() == 700
    assert_counters_consistent()
    assert_rows_valid()


def test_bulk_is_reproducible_for_a_seed():
    run("--workbooks", "120", "--users", "20", "--seed", "7")
    first = list(Workbook.objects.order_by("pk").values_list("title", "description", "favorite_count"))
    Workbook.objects.all().delete()
    User.objects.all().delete()
    run("--workbooks", "120", "--users", "20", "--seed", "7")
    second = list(Workbook.objects.order_by("pk").values_list("title", "description", "favorite_count"))
    assert first == second


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workbooks", "-1"], "--workbooks must be zero or more"),
        (["--workbooks", "10", "--users", "-5"], "--users must be zero or more"),
        (["--workbooks", "10", "--users", "5", "--favorites", "-1"], "--favorites must be zero or more"),
        (["--workbooks", "10", "--users", "5", "--follows", "-1"], "--follows must be zero or more"),
        (["--workbooks", "10", "--users", "5", "--batch-size", "0"], "--batch-size must be at least 1"),
        (["--users", "-1"], "--users must be zero or more"),
        (["--favorites", "10"], "only apply to bulk mode"),
        (["--workbooks", "10"], "no users yet"),
        (["--workbooks", "0", "--favorites", "5", "--users", "3"], "--workbooks N as well"),
        (["--workbooks", "10", "--users", "2", "--favorites", "1000"], "more than half"),
        (["--workbooks", "0", "--users", "3", "--follows", "100"], "more than half"),
    ],
)
def test_bad_arguments_are_refused(args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        run(*args)
    assert Workbook.objects.count() == 0


def test_refuses_production(settings):
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="not in production"):
        run()


def test_progress_line_shows_rate_and_eta():
    stream = io.StringIO()
    progress = Progress(stream, "workbooks_workbook", 1000)
    progress.update(500)
    progress.update(1000)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert any("500/1,000" in line and "rows/s" in line and "ETA" in line for line in lines)
    assert "1,000/1,000" in lines[-1]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_through_a_command_stream_redraws_one_line():
    """A command's self.stderr (an OutputWrapper) ends every write with a newline and colours it on a
    terminal: seed_demo, warm_cache and loadtest_cleanup hand Progress the stream under it."""
    terminal = _Terminal()
    wrapper = OutputWrapper(terminal)
    wrapper.style_func = lambda text: f"\x1b[31m{text}\x1b[0m"
    progress = Progress(command_stream(wrapper), "workbooks_workbook", 1000, interval=0)
    progress.update(500)
    progress.update(1000)
    progress.close()
    output = terminal.getvalue()
    assert output.count("\r") == 3 and output.count("\n") == 1 and output.endswith("\n")
    assert "\x1b[" not in output


# --- PostgreSQL: COPY, index rebuild, sequences -----------------------------------------------------------


def _schema_snapshot() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s) ORDER BY 1", [TABLES]
        )
        indexes = cursor.fetchall()
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid::regclass::text = ANY(%s) ORDER BY 1",
            [TABLES],
        )
        constraints = cursor.fetchall()
    return indexes, constraints


@pytest.mark.postgres
def test_bulk_mode_postgres_copy():
    run()
    before = counts()
    out, _ = run("--workbooks", "500", "--users", "50")
    after = counts()
    assert after["workbooks"] - before["workbooks"] == 500
    assert after["favorites"] - before["favorites"] == 2500
    assert "Bulk load finished" in out
    assert_counters_consistent()
    assert_rows_valid()
    assert_orm_inserts_still_work()


@pytest.mark.postgres
def test_bulk_mode_postgres_rebuilds_every_index_and_constraint():
    run()
    schema = _schema_snapshot()
    result = BulkLoader(workbooks=400, users=60, rebuild_indexes="always").run()
    assert result.count("workbooks_workbook") == 400
    assert any(name.startswith("rebuild") for name, _ in result.phases)
    assert _schema_snapshot() == schema, "indexes and constraints must come back exactly as they were"
    assert_counters_consistent()
    assert_rows_valid()
    assert_orm_inserts_still_work()
    # Full-text search over the generated text finds topic words.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM workbooks_workbook WHERE to_tsvector('english', title || ' ' || description) "
            "@@ websearch_to_tsquery('english', 'retention cohort')"
        )
        assert cursor.fetchone()[0] > 0
