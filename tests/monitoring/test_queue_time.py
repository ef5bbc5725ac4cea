"""Queue time: the proxy's X-Request-Start, measured in the WSGI front, added to request latency, and requests
that waited past the budget shed with a cheap 503 (never health or metrics)."""

import time

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import RequestFactory

from sigma_playground import queue_time
from sigma_playground.wsgi import application
from tests.monitoring.helpers import sample

pytestmark = pytest.mark.django_db

LATENCY = "django_http_requests_latency_seconds_by_view_method"


@pytest.fixture(autouse=True)
def _trusted(settings):
    settings.REQUEST_START_TRUSTED = True
    settings.REQUEST_QUEUE_BUDGET_SECONDS = 1.0


def call(path: str, *, waited: float | None = None, method: str = "GET", **extra):
    """Through the deployed WSGI application (front first), as gunicorn calls it."""
    if waited is not None:
        extra["HTTP_X_REQUEST_START"] = f"t={time.time() - waited:.3f}"
    environ = RequestFactory().generic(method, path, **extra).environ
    captured = {}

    def start_response(status, headers, exc_info=None):
        captured["status"], captured["headers"] = int(status.split()[0]), dict(headers)

    # As Django's test client does: the handler's close_old_connections would close the test's connection
    # inside its transaction (PostgreSQL).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        body = b"".join(application(environ, start_response))
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    return captured["status"], captured["headers"], body


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("t=1700000000.123", 1700000000.123),
        ("1700000000.5", 1700000000.5),
        ("t=1700000000123", 1700000000.123),  # milliseconds
        ("t=1700000000123456", 1700000000.123456),  # microseconds
        ("t=", None),
        ("t=abc", None),
        ("t=-5", None),
        ("t=nan", None),
    ],
)
def test_parse_request_start(raw, expected):
    parsed = queue_time.parse_request_start(raw)
    assert parsed == pytest.approx(expected) if expected is not None else parsed is None


def test_the_wait_is_observed_and_added_to_the_request_latency():
    # A user's request (probes and scrapes record no request metrics: sigma_playground/request_metrics.py).
    labels = {"view": "<unnamed view>", "method": "GET"}
    count = sample("sigma_request_queue_seconds_count")
    latency_sum = sample(f"{LATENCY}_sum", labels)
    status, _, _ = call("/no/such/page/", waited=0.4)
    assert status == 404
    assert sample("sigma_request_queue_seconds_count") == count + 1
    added = sample(f"{LATENCY}_sum", labels) - latency_sum
    assert added >= 0.4, added


def test_a_request_that_waited_past_the_budget_gets_a_cheap_503(django_assert_num_queries, settings):
    shed = sample("sigma_requests_shed_total")
    shed_503 = sample(
        "django_http_responses_total_by_status_view_method_total",
        {"status": "503", "view": "<shed>", "method": "GET"},
    )
    with django_assert_num_queries(0):
        started = time.perf_counter()
        status, headers, body = call("/workbooks/", waited=2.5)
        elapsed = time.perf_counter() - started
    assert status == 503
    assert headers["Retry-After"] == str(settings.OVERLOAD_RETRY_AFTER_SECONDS)
    assert headers["Cache-Control"] == "no-store"
    assert headers["X-Request-ID"]
    assert b"busy" in body
    assert sample("sigma_requests_shed_total") == shed + 1
    assert (
        sample(
            "django_http_responses_total_by_status_view_method_total",
            {"status": "503", "view": "<shed>", "method": "GET"},
        )
        == shed_503 + 1
    )
    print(f"shed in {elapsed * 1000:.2f} ms")
    assert elapsed < 0.5  # generous: it renders, resolves and queries nothing


def test_posts_are_shed_too_before_any_password_is_hashed():
    status, _, _ = call("/accounts/login/", waited=3, method="POST")
    assert status == 503


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_health_and_metrics_are_never_shed(path):
    shed = sample("sigma_requests_shed_total")
    _, _, body = call(path, waited=30)
    assert b"busy" not in body  # readyz may say 503 for reasons of its own, never this one
    assert sample("sigma_requests_shed_total") == shed


def test_a_wait_within_the_budget_is_served():
    status, _, _ = call("/healthz", waited=0.9)
    assert status == 200


def test_the_budget_zero_never_sheds(settings):
    settings.REQUEST_QUEUE_BUDGET_SECONDS = 0
    status, _, _ = call("/workbooks/", waited=30)
    assert status == 200


def test_the_stamp_is_ignored_unless_trusted(settings):
    settings.REQUEST_START_TRUSTED = False
    count = sample("sigma_request_queue_seconds_count")
    status, _, _ = call("/workbooks/", waited=30)
    assert status == 200
    assert sample("sigma_request_queue_seconds_count") == count


def test_with_trusted_proxy_networks_only_those_peers_are_believed(settings):
    settings.TRUSTED_PROXY_NETWORKS = ["10.0.0.0/8"]
    assert call("/workbooks/", waited=30, REMOTE_ADDR="203.0.113.9")[0] == 200
    assert call("/workbooks/", waited=30, REMOTE_ADDR="10.1.2.3")[0] == 503


def test_a_stamp_from_the_future_is_no_wait_and_garbage_is_ignored():
    environ = {"HTTP_X_REQUEST_START": f"t={time.time() + 5:.3f}"}
    assert queue_time.measure(environ) == 0.0
    assert queue_time.measure({"HTTP_X_REQUEST_START": "t=12"}) is None  # 1970: not a queue
    assert queue_time.measure({"HTTP_X_REQUEST_START": "hello"}) is None
