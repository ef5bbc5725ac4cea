"""The embed link checker against a local fake Sigma server (tests/fake_sigma.py): status, HTTP code and time
of each check, the User-Agent, the minimum interval, per-host pacing and concurrency, timeouts, broken after N
failures (out of the lists, not off the profile, shown to the author, filtered in admin) and recovery."""

from __future__ import annotations

import datetime as dt
import itertools
import time

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.factories import UserFactory, WorkbookFactory
from tests.fake_sigma import FakeSigma, refused_url
from workbooks import linkcheck, signals
from workbooks.models import EmbedCheck, EmbedStatus, Visibility, Workbook

pytestmark = pytest.mark.django_db


@pytest.fixture
def sigma(settings):
    """The fake server, its host allowed as a Sigma embed host for this test only."""
    fake = FakeSigma(slow_seconds=3.0).start()
    settings.SIGMA_EMBED_HOSTS = ["127.0.0.1"]
    settings.EMBED_CHECK_TIMEOUT_SECONDS = 0.5
    settings.EMBED_CHECK_HOST_RATE = 1000.0
    settings.EMBED_CHECK_CONCURRENCY = 8
    settings.EMBED_CHECK_FAILURES_TO_BREAK = 3
    settings.EMBED_CHECK_USER_AGENT = "SigmaPlayground-LinkChecker/test (+http://testserver/)"
    try:
        yield fake
    finally:
        fake.stop()


def check_of(workbook: Workbook) -> EmbedCheck:
    return EmbedCheck.objects.get(workbook=workbook)


def test_each_answer_is_recorded_with_code_time_and_outcome(sigma, settings):
    author = UserFactory()
    links = {
        "ok": sigma.url("ok-1"),
        "gone": sigma.url("gone-1"),
        "error": sigma.url("error-1"),
        "slow": sigma.url("slow-1"),
        "refused": refused_url(),
    }
    books = {name: WorkbookFactory(author=author, sigma_embed_url=url) for name, url in links.items()}
    before = timezone.now()
    started = time.monotonic()
    result = linkcheck.run()
    elapsed = time.monotonic() - started
    assert result.checked == 5 and result.ok == 1 and result.failed == 4
    # The slow answer was abandoned at the timeout, in parallel with the rest.
    assert elapsed < 2.5, f"a run of 5 links with one slow one took {elapsed:.2f}s"
    ok, gone, error, slow, refused = (check_of(books[n]) for n in links)
    assert (ok.status, ok.http_status, ok.consecutive_failures) == (EmbedStatus.OK, 200, 0)
    assert (gone.status, gone.http_status, gone.error) == (EmbedStatus.FAILING, 404, "HTTP 404")
    assert (error.status, error.http_status) == (EmbedStatus.FAILING, 500)
    assert slow.status == EmbedStatus.FAILING and slow.http_status is None and "timed out" in slow.error
    assert refused.status == EmbedStatus.FAILING and refused.http_status is None
    assert "Refused" in refused.error or "refused" in refused.error
    for row in (ok, gone, error, slow, refused):
        assert row.checked_at >= before and row.consecutive_failures in (0, 1)
        assert row.recent[0][1] == row.http_status
    assert ok.next_check_at == ok.checked_at + dt.timedelta(seconds=settings.EMBED_CHECK_INTERVAL_SECONDS)
    assert gone.next_check_at == gone.checked_at + dt.timedelta(seconds=settings.EMBED_CHECK_RETRY_SECONDS)
    assert {s.user_agent for s in sigma.seen} == {settings.EMBED_CHECK_USER_AGENT}


def test_a_link_is_never_checked_more_often_than_the_minimum_interval(sigma, settings):
    settings.EMBED_CHECK_RETRY_SECONDS = 0  # asked for "at once", held back by the minimum
    settings.EMBED_CHECK_MIN_INTERVAL_SECONDS = 600
    WorkbookFactory(sigma_embed_url=sigma.url("gone-2"))
    linkcheck.run()
    linkcheck.run()
    assert sigma.paths() == ["/embed/gone-2"]
    later = timezone.now() + dt.timedelta(seconds=601)
    linkcheck.run(now=later)
    assert sigma.paths() == ["/embed/gone-2"] * 2


def test_requests_to_one_host_are_paced_and_run_concurrently(sigma, settings):
    settings.EMBED_CHECK_HOST_RATE = 10.0
    for i in range(8):
        WorkbookFactory(sigma_embed_url=sigma.url(f"ok-p{i}"))
    linkcheck.run()
    starts = sorted(s.at for s in sigma.seen)
    assert len(starts) == 8
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # Paced on the client at 0.1 s; measured where the server reads them, so allow for scheduling jitter.
    assert min(gaps) >= 0.05 and starts[-1] - starts[0] >= 0.6, (
        f"requests to one host closer than 1/rate: {gaps}"
    )
    # Concurrency: 4 slow links (1 s each, under a 2 s timeout) with 4 threads take about 1 s, not 4.
    settings.EMBED_CHECK_HOST_RATE = 1000.0
    settings.EMBED_CHECK_TIMEOUT_SECONDS = 2.0
    settings.EMBED_CHECK_CONCURRENCY = 4
    sigma.slow_seconds = 1.0
    for i in range(4):
        WorkbookFactory(sigma_embed_url=sigma.url(f"slow-c{i}"))
    started = time.monotonic()
    result = linkcheck.run()
    elapsed = time.monotonic() - started
    assert result.checked == 4 and result.ok == 4
    assert elapsed < 3.0, f"4 one-second links with 4 threads took {elapsed:.2f}s"


def test_only_allowed_hosts_and_shown_workbooks_are_requested(sigma, settings):
    WorkbookFactory(sigma_embed_url="https://elsewhere.example/embed/x")
    WorkbookFactory(sigma_embed_url=sigma.url("ok-private"), visibility=Visibility.PRIVATE)
    WorkbookFactory(sigma_embed_url=sigma.url("ok-draft"), published_at=None)
    unlisted = WorkbookFactory(sigma_embed_url=sigma.url("ok-unlisted"), visibility=Visibility.UNLISTED)
    result = linkcheck.run()
    assert sigma.paths() == ["/embed/ok-unlisted"]
    assert result.skipped == 3 and check_of(unlisted).status == EmbedStatus.OK
    # Skipped rows come back after a full interval, not at every run.
    assert linkcheck.run().checked == 0 and linkcheck.run().skipped == 0


def test_discovery_walks_the_table_in_bounded_steps(sigma, settings):
    settings.EMBED_CHECK_DISCOVER = 3
    books = [WorkbookFactory(sigma_embed_url=sigma.url(f"ok-d{i}")) for i in range(7)]
    assert [linkcheck.run().discovered for _ in range(4)] == [3, 3, 1, 0]
    assert EmbedCheck.objects.filter(workbook__in=books).count() == 7


def test_consecutive_failures_break_the_link_and_a_success_repairs_it(
    sigma, settings, client, django_capture_on_commit_callbacks
):
    settings.EMBED_CHECK_RETRY_SECONDS = 0
    settings.EMBED_CHECK_MIN_INTERVAL_SECONDS = 0
    author = UserFactory()
    workbook = WorkbookFactory(author=author, sigma_embed_url=sigma.url("gone-b"), title="Breaking board")
    events: list[tuple[int, bool]] = []

    def receiver(sender, workbook, broken, **kwargs):
        events.append((workbook.pk, broken))

    signals.embed_link_changed.connect(receiver)
    try:
        changes = []
        for _ in range(4):
            with django_capture_on_commit_callbacks(execute=True):
                result = linkcheck.run()
            changes.append((result.broken, result.recovered))
        assert changes == [(0, 0), (0, 0), (1, 0), (0, 0)]  # the 4th failure changes nothing more
        workbook.refresh_from_db()
        row = check_of(workbook)
        assert workbook.embed_broken and row.status == EmbedStatus.BROKEN and row.broken_since is not None
        assert row.consecutive_failures == 4 and len(row.recent) == 4
        # Out of the lists, still on the author's profile, flagged on the author's own page.
        assert "Breaking board" not in client.get(reverse("workbooks:list")).content.decode()
        assert "Breaking board" in client.get(author.get_absolute_url()).content.decode()
        client.force_login(author)
        mine = client.get(reverse("workbooks:mine")).content.decode()
        assert "Embed link broken" in mine and "Broken embed links" in mine

        sigma.answers["/embed/gone-b"] = 200
        with django_capture_on_commit_callbacks(execute=True):
            assert linkcheck.run().recovered == 1
        workbook.refresh_from_db()
        assert not workbook.embed_broken and check_of(workbook).status == EmbedStatus.OK
        client.logout()
        assert "Breaking board" in client.get(reverse("workbooks:list")).content.decode()
        assert events == [(workbook.pk, True), (workbook.pk, False)]
    finally:
        signals.embed_link_changed.disconnect(receiver)


def test_a_changed_link_starts_its_checks_over(sigma, settings, logged_in, user):
    settings.EMBED_CHECK_MIN_INTERVAL_SECONDS = 0
    settings.EMBED_CHECK_RETRY_SECONDS = 0
    from workbooks import services

    workbook = services.workbook_publish(author=user, title="Links", sigma_embed_url=sigma.url("gone-c"))
    assert check_of(workbook).status == EmbedStatus.UNKNOWN  # a row, due now, from the service
    linkcheck.run()
    assert check_of(workbook).consecutive_failures == 1
    services.workbook_update(
        workbook=workbook,
        title="Links",
        sigma_embed_url=sigma.url("ok-c"),
        description="",
        tags=[],
        visibility=Visibility.PUBLIC,
        publish=True,
    )
    row = check_of(workbook)
    assert (row.status, row.consecutive_failures, row.url) == (EmbedStatus.UNKNOWN, 0, sigma.url("ok-c"))
    linkcheck.run()
    assert check_of(workbook).status == EmbedStatus.OK


def test_staff_filter_broken_links_in_admin(sigma, settings, client, staff_user):
    settings.EMBED_CHECK_RETRY_SECONDS = 0
    settings.EMBED_CHECK_MIN_INTERVAL_SECONDS = 0
    settings.EMBED_CHECK_FAILURES_TO_BREAK = 1
    broken = WorkbookFactory(sigma_embed_url=sigma.url("error-a"), title="Broken one")
    WorkbookFactory(sigma_embed_url=sigma.url("ok-a"), title="Fine one")
    linkcheck.run()
    client.force_login(staff_user)
    page = client.get(reverse("admin:workbooks_workbook_changelist"), {"embed_broken__exact": "1"})
    html = page.content.decode()
    assert page.status_code == 200 and "Broken one" in html and "Fine one" not in html
    checks = client.get(reverse("admin:workbooks_embedcheck_changelist"), {"status__exact": "broken"})
    html = checks.content.decode()
    assert checks.status_code == 200 and "Broken one" in html and "Fine one" not in html
    assert broken.embed_check.status == EmbedStatus.BROKEN


def test_overlapping_runs_are_refused_by_the_lock(sigma):
    from django.core.cache import cache

    from sigma_playground.caching import keys

    cache.add(keys.linkcheck_lock(), "1", timeout=60)
    try:
        assert linkcheck.run_locked() is None
    finally:
        cache.delete(keys.linkcheck_lock())
    assert linkcheck.run_locked() is not None
