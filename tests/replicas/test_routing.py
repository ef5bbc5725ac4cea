"""Read replicas without a replica (issue 20, section 1): the decisions, on the embedded defaults.

Which reads may go to a replica, which replica, when a client is pinned to the primary, and what the lag
monitor makes of its measurements. The real streaming replica is in test_streaming.py.
"""

from __future__ import annotations

import math
import time

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import MiddlewareNotUsed
from django.core.signing import get_cookie_signer
from django.db import DEFAULT_DB_ALIAS, OperationalError, transaction
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from django.urls import resolve

from accounts.models import User
from sigma_playground import db_breaker
from sigma_playground.caching import keys, service
from sigma_playground.replicas import middleware, router
from sigma_playground.replicas.monitor import CLOCK_MARGIN_SECONDS, MONITOR, Monitor, ReplicaState
from tests.factories import TagFactory, UserFactory
from workbooks.models import Tag, Workbook

REPLICAS = ["replica_0", "replica_1"]


@pytest.fixture
def replicas(settings, monkeypatch):
    """Two replica aliases, measured as caught up just now; connecting to them always works."""
    settings.DATABASE_REPLICAS = list(REPLICAS)
    settings.REPLICA_MAX_LAG_SECONDS = 5.0
    settings.REPLICA_PIN_SECONDS = 10
    monkeypatch.setattr(Monitor, "ensure_started", lambda self: None)
    monkeypatch.setattr(Monitor, "_connect", staticmethod(lambda alias: True))
    now = time.time()
    for alias in REPLICAS:
        MONITOR._states[alias] = ReplicaState(alias, visible=now, measured_at=now)
    yield MONITOR
    MONITOR.forget()


def measured(alias: str, *, behind: float, error: str = "") -> None:
    now = time.time()
    MONITOR._states[alias] = ReplicaState(alias, visible=now - behind, measured_at=now, error=error)


# --- The router --------------------------------------------------------------------------------------------


def test_reads_outside_a_public_page_and_every_write_go_to_the_primary(replicas):
    route = router.ReplicaRouter()
    assert route.db_for_read(Workbook) == DEFAULT_DB_ALIAS
    with router.public_reads(0.0):
        assert route.db_for_write(Workbook) == DEFAULT_DB_ALIAS
        assert route.db_for_read(Workbook) in REPLICAS
    assert route.allow_migrate(DEFAULT_DB_ALIAS, "workbooks") and not route.allow_migrate(
        "replica_0", "workbooks"
    )


def test_a_public_page_reads_one_replica_throughout_but_sessions_and_throttling_from_the_primary(replicas):
    from axes.models import AccessAttempt
    from django.contrib.sessions.models import Session

    route = router.ReplicaRouter()
    with router.public_reads(0.0):
        chosen = route.db_for_read(Workbook)
        assert chosen in REPLICAS
        assert route.db_for_read(User) == route.db_for_read(Tag) == chosen
        assert route.db_for_read(Session) == route.db_for_read(AccessAttempt) == DEFAULT_DB_ALIAS
    picks = set()
    for _ in range(4):
        with router.public_reads(0.0):
            picks.add(route.db_for_read(Workbook))
    assert picks == set(REPLICAS), "pages take turns"


@pytest.mark.django_db(transaction=True)  # not inside the test's own transaction
def test_reads_inside_a_transaction_go_to_the_primary(replicas):
    route = router.ReplicaRouter()
    with router.public_reads(0.0):
        with transaction.atomic():
            assert route.db_for_read(Workbook) == DEFAULT_DB_ALIAS
        assert route.db_for_read(Workbook) in REPLICAS


def test_rows_from_a_replica_relate_to_rows_from_the_primary(replicas):
    a, b = Workbook(), User()
    a._state.db, b._state.db = "replica_1", DEFAULT_DB_ALIAS
    assert router.ReplicaRouter().allow_relation(a, b) is True
    b._state.db = "elsewhere"
    assert router.ReplicaRouter().allow_relation(a, b) is None


def test_a_replica_lagging_unreachable_or_promoted_is_skipped_and_with_none_left_the_primary_reads(replicas):
    measured("replica_0", behind=6.0)  # beyond the 5 s bound
    assert MONITOR.pick(changed_at=0.0) == ("replica_1", "replica")
    db_breaker.breaker("replica_1").failed(OperationalError("gone"))
    assert MONITOR.pick(changed_at=0.0) == (None, "unavailable")
    db_breaker.breaker("replica_1").reset()
    measured("replica_1", behind=0.0, error="not a standby (promoted?)")
    assert MONITOR.pick(changed_at=0.0) == (None, "unavailable")
    measured("replica_0", behind=4.0)
    assert MONITOR.pick(changed_at=0.0) == ("replica_0", "replica")


def test_a_measurement_ages_until_the_replica_is_out_of_bounds(replicas):
    state = ReplicaState("replica_0", visible=time.time() - 1, measured_at=time.time() - 1)
    assert state.healthy()
    assert not state.healthy(now=time.time() + 5)  # nobody measured it since: it may be 6 s behind
    assert ReplicaState("replica_0").lag() == math.inf and not ReplicaState("replica_0").healthy()


def test_a_page_changed_after_what_the_replicas_have_reads_the_primary(replicas):
    now = time.time()
    measured("replica_0", behind=2.0)
    measured("replica_1", behind=0.5)
    assert MONITOR.pick(changed_at=now - 3)[1] == "replica"
    # Only replica_1 has the change of 1 s ago.
    for _ in range(3):
        assert MONITOR.pick(changed_at=now - 1) == ("replica_1", "replica")
    assert MONITOR.pick(changed_at=now - 0.5 - CLOCK_MARGIN_SECONDS / 2) == (None, "recent_write")
    route = router.ReplicaRouter()
    with router.public_reads(now):
        assert route.db_for_read(Workbook) == DEFAULT_DB_ALIAS


def test_a_fragment_changed_later_than_its_page_is_built_from_a_replica_that_has_it_or_the_primary(replicas):
    now = time.time()
    measured("replica_0", behind=2.0)
    measured("replica_1", behind=2.0)
    route = router.ReplicaRouter()
    with router.public_reads(now - 10):
        page = route.db_for_read(Workbook)
        assert page in REPLICAS
        with router.reads_after(now - 5):  # older than the replicas' horizon: the page's choice stands
            assert route.db_for_read(Workbook) == page
        with router.reads_after(now - 1):  # newer: no replica has it
            assert route.db_for_read(Workbook) == DEFAULT_DB_ALIAS
        with router.reads_after(None):  # unknown: assume the worst
            assert route.db_for_read(Workbook) == DEFAULT_DB_ALIAS
        assert route.db_for_read(Workbook) == page
    with router.reads_after(now):  # outside a public page: nothing to narrow
        assert route.db_for_read(Workbook) == DEFAULT_DB_ALIAS


# --- The monitor's measurements ----------------------------------------------------------------------------


@pytest.fixture
def answers(replicas, monkeypatch):
    """Replace the two queries of a measurement: the primary's WAL position, then the replica's row."""
    replies: dict[str, object] = {}

    def query(alias, sql, params):
        reply = replies["primary" if alias == DEFAULT_DB_ALIAS else "replica"]
        if isinstance(reply, Exception):
            raise reply
        return reply

    monkeypatch.setattr(Monitor, "_query", staticmethod(query))
    MONITOR.forget()
    return replies


def test_a_replica_past_the_primarys_position_is_caught_up_however_old_its_last_transaction(answers):
    answers.update(primary=("0/3000060",), replica=(True, True, 3600.0))  # an idle primary: old replay time
    before = time.time()
    state = MONITOR.check("replica_0")
    assert before <= state.visible <= time.time() and state.lag() < 1 and state.healthy()


def test_a_replica_behind_the_primary_is_as_far_behind_as_its_last_replayed_commit(answers):
    answers.update(primary=("0/3000060",), replica=(True, False, 7.5))
    state = MONITOR.check("replica_0")
    assert 7.5 <= state.lag() < 8.5 and not state.healthy()
    # Never goes back: a later measurement saying less has nothing to say.
    answers.update(replica=(True, False, 30.0))
    assert MONITOR.check("replica_0").visible == state.visible


def test_without_the_primarys_position_the_replay_time_still_counts(answers):
    answers.update(primary=OperationalError("primary down"), replica=(True, None, 1.0))
    assert 1.0 <= MONITOR.check("replica_0").lag() < 2.0


def test_a_promoted_or_unreachable_replica_is_reported_and_an_outage_trips_its_breaker(answers):
    answers.update(primary=("0/3000060",), replica=(False, True, 0.0))
    assert MONITOR.check("replica_0").error == "not a standby (promoted?)"
    import psycopg

    lost = OperationalError("server closed the connection")
    lost.__cause__ = psycopg.OperationalError("server closed the connection")
    answers.update(replica=lost)
    state = MONITOR.check("replica_0")
    assert state.error.startswith("unreachable") and db_breaker.breaker("replica_0").is_open()
    assert not db_breaker.BREAKER.is_open(), "the primary's breaker is not the replica's"
    warnings = MONITOR.warnings()
    assert any("replica_0" in w and "unreachable" in w for w in warnings), warnings


@pytest.mark.django_db
def test_readyz_warns_about_a_lagging_replica_and_stays_ready(client, replicas):
    measured("replica_0", behind=12.0)
    response = client.get("/readyz")
    assert response.status_code == 200
    warnings = response.json()["warnings"]
    assert any("replica_0" in w and "12" in w and "behind" in w for w in warnings), warnings
    assert not any("replica_1" in w for w in warnings)


def test_the_gauges_show_lag_and_usability(replicas):
    from tests.monitoring.helpers import sample

    measured("replica_0", behind=9.0)
    MONITOR.publish()
    assert sample("sigma_db_replica_lag_seconds", {"replica": "replica_0"}) >= 9.0
    assert sample("sigma_db_replica_up", {"replica": "replica_0"}) == 0
    assert sample("sigma_db_replica_up", {"replica": "replica_1"}) == 1


# --- The middleware: public pages, pins --------------------------------------------------------------------


def run(request: HttpRequest, respond=lambda request: HttpResponse()) -> tuple[HttpResponse, list[bool]]:
    """Through the middleware as Django would: process_view for the resolved view, then the response."""
    seen: list[bool] = []

    def get_response(request):
        match = resolve(request.path_info)
        mw.process_view(request, match.func, match.args, match.kwargs)
        seen.append(router.reading_replicas())
        return respond(request)

    mw = middleware.ReplicaRoutingMiddleware(get_response)
    response = mw(request)
    assert not router.reading_replicas(), "the context ends with the request"
    return response, seen


def request_for(path: str, method: str = "get", user=None, **extra) -> HttpRequest:
    request = getattr(RequestFactory(), method)(path, **extra)
    request.user = user or AnonymousUser()
    return request


def test_without_replicas_the_middleware_is_not_used(settings):
    settings.DATABASE_REPLICAS = []
    with pytest.raises(MiddlewareNotUsed):
        middleware.ReplicaRoutingMiddleware(lambda request: HttpResponse())


def test_public_page_gets_may_read_a_replica_and_nothing_else_does(replicas):
    for path in ("/", "/workbooks/?q=revenue", "/tags/finance/", "/users/ana/", "/workbooks/7/a-slug/",
                 "/feeds/newest/", "/sitemap.xml"):  # fmt: skip
        assert run(request_for(path))[1] == [True], path
    for path in ("/accounts/login/", "/admin/", "/monitoring/health/", "/notifications/", "/readyz"):
        assert run(request_for(path))[1] == [False], path
    assert run(request_for("/workbooks/?q=revenue", method="head"))[1] == [True]
    assert run(request_for("/workbooks/", method="post"))[1] == [False]
    staff = UserFactory.build(is_staff=True)
    assert run(request_for("/workbooks/", user=staff))[1] == [False]
    assert run(request_for("/workbooks/", user=UserFactory.build()))[1] == [True]


def test_the_public_context_carries_the_last_change_of_the_pages_namespaces(replicas):
    service.bump(keys.ns_user("ana"))
    changed: list[float] = []

    def respond(request):
        changed.append(router._CURRENT.get().changed_at)
        return HttpResponse()

    run(request_for("/users/ana/"), respond)
    assert time.time() - 5 < changed[0] <= time.time()
    run(request_for("/users/bob/"), respond)
    assert changed[1] < changed[0], "bob's profile did not change"


def test_a_page_whose_changes_cannot_be_read_reads_the_primary(replicas, monkeypatch):
    monkeypatch.setattr(service, "changed_at", lambda namespaces: None)
    assert run(request_for("/workbooks/"))[1] == [False]


@pytest.mark.django_db
def test_a_request_that_wrote_and_succeeded_pins_its_client_whatever_its_method(replicas):
    def write(request):
        TagFactory()
        return HttpResponse()

    response, _ = run(request_for("/notifications/"), write)  # a GET that marks notifications read
    cookie = response.cookies[middleware.PIN_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and int(cookie["max-age"]) == 10

    pinned = request_for("/workbooks/", HTTP_COOKIE=f"{middleware.PIN_COOKIE}={cookie.value}")
    assert middleware.is_pinned(pinned)
    assert run(pinned)[1] == [False], "a pinned client reads the primary"

    def read(request):
        list(Tag.objects.all())
        return HttpResponse(status=200)

    assert middleware.PIN_COOKIE not in run(request_for("/monitoring/rum/", method="post"), read)[0].cookies

    def write_then_fail(request):
        TagFactory()
        return HttpResponse(status=400)

    assert (
        middleware.PIN_COOKIE
        not in run(request_for("/workbooks/new/", method="post"), write_then_fail)[0].cookies
    )


def test_each_request_takes_its_write_detector_away_whatever_was_added_during_it(replicas):
    """A connection made during the request adds its query timer (connection_created) after the detector:
    the detector must go, the timer stay, and nothing pile up from one request to the next (it did, until
    statements went through hundreds of detectors and raised RecursionError under load)."""
    from django.db import connections

    wrappers = connections[DEFAULT_DB_ALIAS].execute_wrappers
    before = list(wrappers)

    def timer(execute, sql, params, many, context):
        return execute(sql, params, many, context)

    def connects(request):
        assert isinstance(wrappers[-1], middleware._WriteDetector)
        wrappers.append(timer)  # what db_instrumentation.install_on does for a new connection
        return HttpResponse()

    try:
        for _ in range(3):
            run(request_for("/workbooks/"), connects)
            assert not any(isinstance(w, middleware._WriteDetector) for w in wrappers)
            assert wrappers[-1] is timer
            wrappers.remove(timer)
            assert wrappers == before
    finally:
        wrappers[:] = before


def test_a_forged_or_expired_pin_is_ignored(replicas, time_machine):
    forged = request_for("/", HTTP_COOKIE=f"{middleware.PIN_COOKIE}=1")
    assert not middleware.is_pinned(forged)
    value = get_cookie_signer(salt=middleware.PIN_COOKIE + middleware.PIN_SALT).sign("1")
    assert middleware.is_pinned(request_for("/", HTTP_COOKIE=f"{middleware.PIN_COOKIE}={value}"))
    time_machine.move_to(time.time() + 11)  # REPLICA_PIN_SECONDS is 10
    assert not middleware.is_pinned(request_for("/", HTTP_COOKIE=f"{middleware.PIN_COOKIE}={value}"))


@pytest.mark.parametrize(
    ("sql", "writes"),
    [
        ('SELECT "workbooks_workbook"."id" FROM "workbooks_workbook"', False),
        ("  (SELECT 1) UNION (SELECT 2)", False),
        ("WITH x AS (SELECT 1) SELECT * FROM x", False),
        ('SAVEPOINT "s1"', False),
        ('INSERT INTO "workbooks_tag" ("name") VALUES (%s)', True),
        ("update workbooks_workbook set title = %s", True),
        ('DELETE FROM "django_session" WHERE "session_key" = %s', True),
        ("INSERT INTO notifications_notification VALUES (1) ON CONFLICT DO UPDATE SET count = 2", True),
        ("WITH gone AS (DELETE FROM t RETURNING id) SELECT count(*) FROM gone", True),
        ("SELECT setval('s', 1)", False),  # a function with a side effect reads as a read: none of ours
    ],
)
def test_what_counts_as_a_write(sql, writes):
    assert middleware.is_write(sql) is writes


# --- Bump times (the durable role) -------------------------------------------------------------------------


def test_a_bump_records_when_and_the_newest_time_wins():
    before = time.time()
    service.bump(keys.LISTS, keys.ns_workbook(1))
    after = time.time()
    assert before <= service.changed_at([keys.ns_workbook(1)]) <= after
    assert service.changed_at([keys.ns_workbook(2)]) == 0.0
    assert service.changed_at([]) == 0.0
    service.durable().incr_generations([keys.generation(keys.LISTS)], [keys.changed(keys.LISTS)], before - 60)
    assert service.changed_at([keys.LISTS]) >= before, "an older time never replaces a newer one"


@pytest.mark.redis
def test_redis_records_bump_times_in_the_same_script_with_a_lifetime():
    client = service.durable().client
    before = time.time()
    service.bump(keys.ns_user("ana"), keys.PEOPLE)
    assert before <= service.changed_at([keys.ns_user("ana"), keys.ns_workbook(9)]) <= time.time()
    assert 0 < client.pttl(keys.changed(keys.PEOPLE)) <= service.CHANGED_SECONDS * 1000
    service.durable().incr_generations(
        [keys.generation(keys.PEOPLE)], [keys.changed(keys.PEOPLE)], before - 60
    )
    assert service.changed_at([keys.PEOPLE]) >= before
    client.set(keys.changed(keys.PEOPLE), b"not a time")
    assert service.changed_at([keys.PEOPLE]) is None


def test_a_fragment_built_inside_a_public_page_asks_for_its_own_namespaces(replicas, monkeypatch, settings):
    from sigma_playground.caching import pages

    settings.PAGE_CACHE_ENABLED = True
    asked: list[list[str]] = []
    monkeypatch.setattr(service, "changed_at", lambda namespaces: asked.append(sorted(namespaces)) or 0.0)
    monkeypatch.setattr(pages, "render_to_string", lambda template, context: "<p>built</p>")
    fragment = {"template": "unused.html", "context": dict, "namespaces": [keys.LISTS]}
    pages.cached_fragment("test", **fragment)  # outside a public page: nothing asked
    assert asked == []
    with router.public_reads(0.0):
        pages.cached_fragment("test", **{**fragment, "namespaces": [keys.ns_workbook(1)]})
    assert asked == [[keys.ns_workbook(1)]]


# --- The health diagnosis ------------------------------------------------------------------------------------


def test_the_health_diagnosis_grades_each_replica_against_the_bound(replicas):
    from monitoring.diagnosis import grading
    from monitoring.sla import thresholds

    bound = thresholds()["replica_lag_s"]
    assert bound.warning == 5.0
    assert grading.assess_replicas([], {}, bound).severity == "info"

    def assess():
        states = MONITOR.states()
        return grading.assess_replicas(states, {s.alias: MONITOR.usable(s.alias) for s in states}, bound)

    measured("replica_0", behind=1.0)
    measured("replica_1", behind=4.5)
    finding = assess()
    assert finding.severity == "ok" and 4.5 <= finding.value < 5, finding.summary
    measured("replica_1", behind=9.0)
    finding = assess()
    assert finding.severity == "warning" and finding.recommendations
    assert "replica_1 9.0 s behind the primary, out of the rotation" in finding.summary, finding.summary
    measured("replica_0", behind=0.0, error="unreachable (OperationalError)")
    finding = assess()
    assert finding.severity == "warning" and "no replica is usable" in finding.summary
