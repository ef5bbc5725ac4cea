"""Notifications: the events, grouping, the bell (per request, never in a shared cached page), read when
seen, the 90-day clean-up, the opt-in daily digest, and a bounded fan-out to 10,000 followers."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts import services as account_services
from accounts.models import Follow, User
from notifications import selectors, services, tasks
from notifications.models import Kind, Notification, NotificationSettings
from tests.factories import UserFactory, WorkbookFactory
from workbooks import services as workbook_services
from workbooks.models import Visibility

pytestmark = pytest.mark.django_db

BELL_RE = re.compile(r'<span class="bell-count">([^<]+)</span>')


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks):
    """Run on-commit callbacks (the signals are sent on commit) inside the test's transaction."""

    def run(fn, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return run


def bell(client) -> str | None:
    match = BELL_RE.search(client.get(reverse("workbooks:list")).content.decode())
    return match.group(1) if match else None


def only(user: User) -> Notification:
    rows = list(Notification.objects.filter(recipient=user))
    assert len(rows) == 1, rows
    return rows[0]


# --- Events and grouping ----------------------------------------------------------------------------------


def test_followers_group_into_one_unread_notification(on_commit):
    ana = UserFactory(full_name="Ana")
    target = UserFactory()
    others = UserFactory.create_batch(12)
    for person in others:
        on_commit(account_services.follow, follower=person, followed=target)
    on_commit(account_services.follow, follower=ana, followed=target)
    on_commit(account_services.follow, follower=ana, followed=target)  # a repeated follow is no event
    n = only(target)
    assert (n.kind, n.count, n.actor_id) == (Kind.FOLLOWER, 13, ana.pk)


def test_favorites_group_per_workbook_and_toggling_counts_once(on_commit):
    author = UserFactory()
    board = WorkbookFactory(author=author, title="Board")
    other = WorkbookFactory(author=author, title="Other")
    ana = UserFactory(full_name="Ana")
    fans = UserFactory.create_batch(3)
    for fan in fans:
        on_commit(workbook_services.favorite_add, user=fan, workbook=board)
    for _ in range(3):  # on, off, on, off...: one event
        on_commit(workbook_services.favorite_add, user=ana, workbook=board)
        workbook_services.favorite_remove(user=ana, workbook=board)
    on_commit(workbook_services.favorite_add, user=ana, workbook=board)
    on_commit(workbook_services.favorite_add, user=ana, workbook=other)
    on_commit(workbook_services.favorite_add, user=author, workbook=other)  # own favorite: nobody is told
    rows = {n.workbook_id: n for n in Notification.objects.filter(recipient=author)}
    assert rows[board.pk].count == 4 and rows[board.pk].actor_id == ana.pk
    assert rows[other.pk].count == 1


def test_a_read_group_starts_a_new_row(on_commit, client):
    target = UserFactory()
    on_commit(account_services.follow, follower=UserFactory(), followed=target)
    client.force_login(target)
    assert client.get(reverse("notifications:list")).status_code == 200
    on_commit(account_services.follow, follower=UserFactory(), followed=target)
    rows = Notification.objects.filter(recipient=target).order_by("id")
    assert [(n.count, n.read_at is not None) for n in rows] == [(1, True), (1, False)]


def test_new_public_workbooks_reach_followers_not_unlisted_or_drafts(on_commit):
    author = UserFactory(full_name="Bob")
    follower = UserFactory()
    Follow.objects.create(follower=follower, followed=author)
    on_commit(
        workbook_services.workbook_publish,
        author=author,
        title="Unlisted",
        sigma_embed_url="https://app.sigmacomputing.com/embed/1-u",
        visibility=Visibility.UNLISTED,
    )
    draft = on_commit(
        workbook_services.workbook_publish,
        author=author,
        title="Draft",
        sigma_embed_url="https://app.sigmacomputing.com/embed/1-d",
        publish=False,
    )
    assert not Notification.objects.filter(recipient=follower).exists()
    for title in ("First", "Second"):
        on_commit(
            workbook_services.workbook_publish,
            author=author,
            title=title,
            sigma_embed_url=f"https://app.sigmacomputing.com/embed/1-{title}",
        )
    on_commit(
        workbook_services.workbook_update,
        workbook=draft,
        title="Draft",
        sigma_embed_url=draft.sigma_embed_url,
        description="",
        tags=[],
        visibility=Visibility.PUBLIC,
        publish=True,
    )
    n = only(follower)
    assert (n.kind, n.count, n.workbook_id, n.actor_id) == (Kind.NEW_WORKBOOK, 3, draft.pk, author.pk)


def test_embed_broken_and_recovered_reach_the_author(on_commit, client):
    from workbooks.signals import embed_link_changed

    author = UserFactory()
    workbook = WorkbookFactory(author=author, title="Dash")
    embed_link_changed.send(sender=None, workbook=workbook, broken=True)
    embed_link_changed.send(sender=None, workbook=workbook, broken=False)
    kinds = set(Notification.objects.filter(recipient=author).values_list("kind", flat=True))
    assert kinds == {Kind.EMBED_BROKEN, Kind.EMBED_RECOVERED}
    client.force_login(author)
    html = client.get(reverse("notifications:list")).content.decode()
    assert "The embed link of “Dash” is broken" in html and "works again" in html


# --- The bell and the page --------------------------------------------------------------------------------


def test_bell_counts_unread_and_the_page_marks_them_read(on_commit, client):
    target = UserFactory()
    on_commit(account_services.follow, follower=UserFactory(full_name="Ana"), followed=target)
    board = WorkbookFactory(author=target, title="Board")
    on_commit(workbook_services.favorite_add, user=UserFactory(), workbook=board)
    client.force_login(target)
    assert bell(client) == "2"
    page = client.get(reverse("notifications:list"))
    html = page.content.decode()
    assert "Ana followed you." in html and "favorited “Board”" in html
    assert html.count('class="notification ') == 2 and "unread" in html
    assert BELL_RE.search(html) is None  # the page's own header already counts them read
    assert bell(client) is None
    assert Notification.objects.filter(recipient=target, read_at__isnull=True).count() == 0


def test_bell_stops_counting_at_the_limit(client):
    target = UserFactory()
    authors = UserFactory.create_batch(3)
    for i in range(selectors.UNREAD_LIMIT + 5):
        services.notify(
            recipient_id=target.pk, kind=Kind.FAVORITE, group_key=f"favorite:{i}", actor_id=authors[0].pk
        )
    client.force_login(target)
    assert bell(client) == "99+"


def test_the_bell_never_reaches_a_shared_cached_page(settings, client, on_commit):
    """Whole pages are cached for anonymous visitors only (middleware and WSGI front) and have no bell;
    a logged-in page is rendered per request with the reader's own count."""
    settings.PAGE_CACHE_ENABLED = True
    reader, other = UserFactory(), UserFactory()
    on_commit(account_services.follow, follower=other, followed=reader)
    url = reverse("workbooks:list")
    anonymous = client.get(url)
    assert 'class="bell' not in anonymous.content.decode()  # ("bell" alone is in aria-labelledby)
    client.force_login(reader)
    assert bell(client) == "1"
    client.logout()
    cached = client.get(url)
    assert cached["X-Cache"] == "hit" and 'class="bell' not in cached.content.decode()
    client.force_login(other)
    assert bell(client) is None  # someone else: their own count (none)


def test_pages_need_a_login_and_the_digest_settings_save(client, user):
    assert client.get(reverse("notifications:list")).status_code == 302
    client.force_login(user)
    response = client.post(reverse("notifications:settings"), {"digest_favorite": "on", "digest_embed": "on"})
    assert response.status_code == 302
    prefs = NotificationSettings.objects.get(user=user)
    assert prefs.kinds() == [Kind.FAVORITE, Kind.EMBED_BROKEN, Kind.EMBED_RECOVERED]
    assert client.get(reverse("notifications:settings")).status_code == 200


# --- Retention and digest -------------------------------------------------------------------------------


def test_cleanup_keeps_90_days(user):
    old, recent = timezone.now() - dt.timedelta(days=91), timezone.now() - dt.timedelta(days=89)
    for i, at in enumerate([old, old, recent]):
        services.notify_many(recipient_ids=[user.pk], kind=Kind.FOLLOWER, group_key=f"g{i}", at=at)
    assert services.cleanup(batch=1) == 2
    assert Notification.objects.filter(recipient=user).count() == 1


def test_daily_digest_only_for_opted_in_kinds(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    fan, quiet = UserFactory(email="fan@example.com"), UserFactory()
    board = WorkbookFactory(author=fan, title="Board")
    actor = UserFactory(full_name="Ana")
    services.notify(
        recipient_id=fan.pk,
        kind=Kind.FAVORITE,
        group_key=f"favorite:{board.pk}",
        actor_id=actor.pk,
        workbook_id=board.pk,
    )
    services.notify(recipient_id=fan.pk, kind=Kind.FOLLOWER, group_key="follower", actor_id=actor.pk)
    services.notify(recipient_id=quiet.pk, kind=Kind.FOLLOWER, group_key="follower", actor_id=actor.pk)
    services.settings_update(user=fan, digest_favorite=True)
    NotificationSettings.objects.create(user=quiet)  # everything off
    assert tasks.send_digests() == 1
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["fan@example.com"] and message.from_email == settings.DEFAULT_FROM_EMAIL
    assert "Ana favorited “Board”." in message.body and "followed you" not in message.body
    # Nothing new since: no second email.
    assert tasks.send_digests() == 0 and len(mail.outbox) == 1


# --- Fan-out at 10,000 followers ---------------------------------------------------------------------------


def test_fan_out_to_10000_followers_runs_in_bounded_batches(settings, monkeypatch):
    settings.NOTIFICATION_FANOUT_BATCH = 1000
    author = UserFactory()
    User.objects.bulk_create(
        [User(username=f"fan{i:05d}", email=f"fan{i:05d}@example.com", password="!") for i in range(10_000)],
        batch_size=2000,
    )
    fan_ids = list(User.objects.filter(username__startswith="fan").values_list("pk", flat=True))
    Follow.objects.bulk_create([Follow(follower_id=pk, followed=author) for pk in fan_ids], batch_size=2000)
    workbook = WorkbookFactory(author=author)

    # The broker, simulated: queued batches are run one after another, each measured on its own.
    queue: list[tuple] = []
    monkeypatch.setattr(tasks.fan_out_new_workbook, "delay", lambda *args: queue.append(args))
    batches: list[tuple[int, int]] = []

    def drain() -> None:
        while queue:
            args = queue.pop(0)
            with CaptureQueriesContext(connection) as ctx:
                done = tasks.fan_out_new_workbook.run(*args)
            batches.append((done, len(ctx.captured_queries)))

    tasks.fan_out_new_workbook.delay(workbook.pk, None)
    drain()
    assert [done for done, _ in batches] == [1000] * 10 + [0]  # the 11th finds nobody left
    # Each batch: the workbook, its followers page, one upsert (the next batch is queued, not nested work).
    assert all(queries <= 3 for _, queries in batches), batches
    assert Notification.objects.filter(kind=Kind.NEW_WORKBOOK).count() == 10_000
    assert (
        Notification.objects.filter(kind=Kind.NEW_WORKBOOK).values("recipient").distinct().count() == 10_000
    )
    # Redelivered, the same batches change nothing (the same workbook is not counted twice).
    tasks.fan_out_new_workbook.delay(workbook.pk, None)
    drain()
    assert set(Notification.objects.filter(kind=Kind.NEW_WORKBOOK).values_list("count", flat=True)) == {1}
