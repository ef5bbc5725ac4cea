"""The WSGI front: anonymous hits answered before Django's handler, with the same response, request id,
access-log line, view counting and metrics as a hit answered by the middleware; everything else untouched."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from wsgiref.util import setup_testing_defaults

import pytest
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.urls import reverse
from prometheus_client import REGISTRY

from sigma_playground.caching import pages
from sigma_playground.caching.front import CachedPageFront
from sigma_playground.request_id import HEADER
from tests.caching.conftest import publish
from tests.caching.test_pages import anonymous, logged_in

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class CountingApp:
    """Django's WSGI handler, counting the requests that reach it."""

    def __init__(self) -> None:
        self.handler = WSGIHandler()
        self.calls = 0

    def __call__(self, environ, start_response) -> Iterable[bytes]:
        self.calls += 1
        return self.handler(environ, start_response)


@pytest.fixture
def django_app() -> CountingApp:
    return CountingApp()


@pytest.fixture
def front(django_app) -> CachedPageFront:
    return CachedPageFront(django_app)


def call(app, url: str, *, method: str = "GET", **environ_extra: str) -> Answer:
    path, _, query = url.partition("?")
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "HTTP_HOST": "testserver"}
    environ.update(environ_extra)
    setup_testing_defaults(environ)
    started: dict = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info=None):
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in headers), headers
        started["status"], started["headers"] = status, headers

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    headers = {k.lower(): v for k, v in started["headers"]}
    return Answer(int(started["status"].split()[0]), headers, body)


def test_a_hit_is_answered_without_django_and_without_sql(
    world, front, django_app, django_assert_num_queries
):
    url = reverse("workbooks:list")
    built = call(front, url)
    assert built.status == 200 and "x-cache" not in built.headers and django_app.calls == 1
    with django_assert_num_queries(0):
        hit = call(front, url)
    assert django_app.calls == 1
    assert hit.status == 200 and hit.headers["x-cache"] == "hit" and hit.body == built.body
    # Everything the middleware stack put on the built page, except what belongs to one response.
    per_response = {"x-request-id", "x-cache"}
    assert {k: v for k, v in hit.headers.items() if k not in per_response} == {
        k: v for k, v in built.headers.items() if k not in per_response
    }
    assert int(hit.headers["content-length"]) == len(hit.body)
    assert {"etag", "content-security-policy", "x-frame-options", "cache-control", "vary"} <= set(hit.headers)
    assert hit.headers[HEADER.lower()] != built.headers[HEADER.lower()]


def test_the_front_serves_what_the_middleware_would(world, front):
    """The same stored page answered by the middleware (test client) and by the front: same bytes, same
    headers."""
    url = reverse("home")
    anonymous().get(url)
    by_middleware = anonymous().get(url)
    by_front = call(front, url)
    assert by_middleware.get("X-Cache") == by_front.headers["x-cache"] == "hit"
    assert by_front.body == by_middleware.content
    expected = {k.lower(): v for k, v in by_middleware.items() if k.lower() != "x-request-id"}
    assert {k: v for k, v in by_front.headers.items() if k != "x-request-id"} == expected


def test_a_miss_reaches_django_with_one_lookup(world, front, django_app, monkeypatch):
    from sigma_playground.caching import service

    reads = []
    real = service.get_entry_with_generations
    monkeypatch.setattr(
        service, "get_entry_with_generations", lambda *a, **k: reads.append(1) or real(*a, **k)
    )
    assert call(front, reverse("workbooks:list")).status == 200
    assert django_app.calls == 1 and len(reads) == 1  # the middleware reused the front's lookup


def test_a_sane_request_id_is_kept_and_logged(world, front, json_log):
    url = reverse("workbooks:list")
    call(front, url)
    hit = call(front, url, HTTP_X_REQUEST_ID="front-request-0001")
    assert hit.headers["x-cache"] == "hit" and hit.headers["x-request-id"] == "front-request-0001"
    access = [line for line in json_log() if line["logger"] == "sigma_playground.request"]
    assert access[-1]["request_id"] == "front-request-0001"
    assert (access[-1]["route"], access[-1]["status"], access[-1]["method"]) == ("workbooks:list", 200, "GET")
    assert access[-1]["user"] is None
    forged = call(front, url, HTTP_X_REQUEST_ID="bad id\nwith newline")
    assert (
        forged.headers["x-request-id"] != "bad id\nwith newline" and len(forged.headers["x-request-id"]) == 32
    )


def test_a_miss_keeps_the_request_id_the_front_gave_it(world, front, json_log):
    """The front makes the id (its lookup may log); the middleware below uses the same one."""
    built = call(front, reverse("workbooks:list"))
    access = [line for line in json_log() if line["logger"] == "sigma_playground.request"]
    assert access[-1]["request_id"] == built.headers["x-request-id"]


def test_conditional_get_head_and_other_requests_go_to_django(world, front, django_app):
    url = reverse("workbooks:list")
    etag = call(front, url).headers["etag"]
    assert call(front, url, HTTP_IF_NONE_MATCH=etag).status == 304  # answered by the middleware, from cache
    assert django_app.calls == 2
    head = call(front, url, method="HEAD")
    assert head.status == 200 and head.body == b"" and head.headers["x-cache"] == "hit"
    assert int(head.headers["content-length"]) > 0
    assert django_app.calls == 2
    assert call(front, url, method="POST").status == 403  # Django's CSRF check answered it
    assert call(front, url + "?profile=1").headers.get("x-cache") is None
    assert call(front, url, HTTP_COOKIE=f"{settings.SESSION_COOKIE_NAME}=abc").headers.get("x-cache") is None
    assert call(front, url, HTTP_HOST="evil.example").status == 400
    assert call(front, "/no-such-page/").status == 404
    assert django_app.calls == 7


def test_a_logged_in_reader_never_gets_the_anonymous_page(world, front):
    client = logged_in(world["reader"])
    url = reverse("workbooks:list")
    call(front, url)
    name = settings.SESSION_COOKIE_NAME
    page = call(front, url, HTTP_COOKIE=f"{name}={client.cookies[name].value}")
    assert page.status == 200 and page.headers.get("x-cache") is None
    assert b"Log out" in page.body and b"reader" in page.body


def test_a_write_is_seen_through_the_front_at_once(world, front):
    url = reverse("workbooks:list")
    assert b"Fresh forecast" not in call(front, url).body
    publish(world["author"], "Fresh forecast", n=7)
    page = call(front, url)
    assert page.headers.get("x-cache") is None and b"Fresh forecast" in page.body


@pytest.mark.redis
def test_a_detail_hit_through_the_front_counts_the_view(world, front, django_app):
    from workbooks import counters

    url = world["workbook"].get_absolute_url()
    call(front, url, REMOTE_ADDR="198.51.100.1")
    assert call(front, url, REMOTE_ADDR="198.51.100.2").headers["x-cache"] == "hit" and django_app.calls == 1
    call(front, url, REMOTE_ADDR="198.51.100.2")  # the same visitor again, in the same window: not counted
    counters.send_process_views()
    assert counters.flush_views() == 2


def test_a_failing_lookup_falls_back_to_django(world, front, django_app, monkeypatch):
    """A bug in the front's lookup costs the request its shortcut, not its answer."""
    real, calls = pages.lookup_page, []

    def broken_once(request):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("cache layer bug")
        return real(request)

    monkeypatch.setattr(pages, "lookup_page", broken_once)
    page = call(front, reverse("workbooks:list"))
    assert page.status == 200 and django_app.calls == 1 and len(calls) == 2


def test_the_front_can_be_turned_off(world, front, django_app, settings):
    settings.PAGE_FRONT_ENABLED = False
    url = reverse("workbooks:list")
    call(front, url)
    assert call(front, url).headers["x-cache"] == "hit"  # the middleware answered it
    assert django_app.calls == 2


def _django_metrics() -> dict[tuple[str, tuple], float]:
    """Every django_http_* sample except latency sums (durations differ between two requests)."""
    samples = {}
    for family in REGISTRY.collect():
        for s in family.samples:
            if s.name.startswith("django_http_") and not (s.name.endswith("_sum") and "latency" in s.name):
                if "latency" in s.name and s.name.endswith("_bucket"):
                    continue  # which bucket a duration falls in differs too; _count is compared
                samples[s.name, tuple(sorted(s.labels.items()))] = s.value
    return samples


def _delta(before: dict, after: dict) -> dict:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0)}


def test_a_hit_through_the_front_records_the_metrics_a_middleware_hit_does(world, front):
    url = reverse("workbooks:list")
    anonymous().get(url)
    before = _django_metrics()
    assert anonymous().get(url).get("X-Cache") == "hit"
    by_middleware = _delta(before, _django_metrics())
    before = _django_metrics()
    assert call(front, url).headers["x-cache"] == "hit"
    by_front = _delta(before, _django_metrics())
    assert by_front == by_middleware
    assert (
        by_front[
            "django_http_requests_total_by_view_transport_method_total",
            (("method", "GET"), ("transport", "http"), ("view", "workbooks:list")),
        ]
        == 1
    )


def test_front_metrics_wait_for_the_batch(world, front, settings):
    from sigma_playground.telemetry.batched import BATCH

    settings.METRICS_BATCH_SECONDS = 3600
    url = reverse("workbooks:list")
    call(front, url)
    BATCH.flush()
    labels = {"method": "GET", "transport": "http", "view": "workbooks:list"}
    name = "django_http_requests_total_by_view_transport_method_total"
    before = REGISTRY.get_sample_value(name, labels)
    assert call(front, url).headers["x-cache"] == "hit"
    assert REGISTRY.get_sample_value(name, labels) == before
    BATCH.flush()
    assert REGISTRY.get_sample_value(name, labels) == before + 1


@pytest.mark.postgres
@pytest.mark.slow
def test_real_gunicorn_answers_hits_in_front_and_publishes_their_metrics_when_it_stops(
    world, tmp_path, settings
):
    """deploy/gunicorn.conf.py, two workers, a batch interval longer than the test: every hit is in the
    merged metrics once the workers stop gracefully, and none is counted twice."""
    from prometheus_client import CollectorRegistry, multiprocess

    from tests.monitoring.helpers import fetch_response, gunicorn_serving, services_env

    env = services_env(redis_url=settings.REDIS_URL, metrics_dir=tmp_path)
    env["METRICS_BATCH_SECONDS"] = "3600"  # nothing is published before the workers stop
    path = reverse("workbooks:list")
    with gunicorn_serving(env, path=path) as (base, _):
        answers = [
            fetch_response(base + path, headers={"X-Request-ID": f"gunicorn-front-{i:04d}"})
            for i in range(40)
        ]
    assert sum(a.headers["X-Cache"] == "hit" for a in answers) >= 38  # each worker builds it at most once
    assert [a.headers["X-Request-ID"] for a in answers] == [f"gunicorn-front-{i:04d}" for i in range(40)]
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
    served = registry.get_sample_value(
        "django_http_requests_total_by_view_transport_method_total",
        {"view": "workbooks:list", "transport": "http", "method": "GET"},
    )
    assert served == 41  # the 40 and wait_until_serving's
