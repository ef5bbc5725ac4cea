"""/metrics: never public, labelled by route name, bounded."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import WorkbookFactory
from tests.monitoring.helpers import scrape

URL = "/metrics"
TOKEN = "m-" + "x" * 40


def test_the_url_is_metrics():
    assert reverse("monitoring:metrics") == URL


def test_served_to_loopback_by_default(client):
    response = client.get(URL)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    assert "django_http_requests_latency_seconds_by_view_method" in response.content.decode()


@pytest.mark.parametrize("address", ["8.8.8.8", "10.0.0.5", "192.168.1.20", "2001:db8::1", "not-an-ip"])
def test_refused_with_a_404_outside_the_allowed_networks(client, address):
    assert client.get(URL, REMOTE_ADDR=address).status_code == 404


def test_configured_networks_replace_the_default(client, settings):
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8", "fd00::/8"]
    assert client.get(URL, REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get(URL, REMOTE_ADDR="fd00::17").status_code == 200
    assert client.get(URL, REMOTE_ADDR="127.0.0.1").status_code == 404
    assert client.get(URL, REMOTE_ADDR="11.0.0.1").status_code == 404


def test_no_networks_and_no_token_means_nobody(client, settings):
    settings.METRICS_ALLOWED_NETWORKS = []
    assert client.get(URL).status_code == 404


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_X_FORWARDED_FOR": "203.0.113.9"},  # a public client relayed by a proxy on localhost
        {"HTTP_X_FORWARDED_FOR": "127.0.0.1, 203.0.113.9"},
        {"HTTP_X_REAL_IP": "203.0.113.9"},
        {"HTTP_FORWARDED": "for=203.0.113.9;proto=https"},
        {"HTTP_X_FORWARDED_FOR": "garbage"},
    ],
)
def test_a_request_relayed_for_an_outside_client_is_refused(client, headers):
    assert client.get(URL, REMOTE_ADDR="127.0.0.1", **headers).status_code == 404


def test_a_forged_forwarding_header_cannot_let_an_outsider_in(client):
    assert client.get(URL, REMOTE_ADDR="8.8.8.8", HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 404


def test_a_relay_whose_whole_chain_is_inside_is_allowed(client):
    assert client.get(URL, REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="127.0.0.2").status_code == 200


def test_the_bearer_token_lets_a_scraper_in_from_anywhere(client, settings):
    settings.METRICS_BEARER_TOKEN = TOKEN
    outside = {"REMOTE_ADDR": "8.8.8.8"}
    assert client.get(URL, HTTP_AUTHORIZATION=f"Bearer {TOKEN}", **outside).status_code == 200
    assert client.get(URL, HTTP_AUTHORIZATION=f"bearer {TOKEN}", **outside).status_code == 200
    assert client.get(URL, HTTP_AUTHORIZATION=f"Bearer {TOKEN}x", **outside).status_code == 404
    assert client.get(URL, HTTP_AUTHORIZATION=f"Basic {TOKEN}", **outside).status_code == 404
    assert client.get(URL, **outside).status_code == 404


def test_without_a_configured_token_an_empty_bearer_is_refused(client, settings):
    settings.METRICS_BEARER_TOKEN = ""
    assert client.get(URL, REMOTE_ADDR="8.8.8.8", HTTP_AUTHORIZATION="Bearer ").status_code == 404


def test_staff_sessions_do_not_open_metrics(client, staff_user):
    client.force_login(staff_user)
    assert client.get(URL, REMOTE_ADDR="8.8.8.8").status_code == 404


@pytest.mark.django_db
def test_requests_are_labelled_by_route_name_never_by_path(client):
    workbook = WorkbookFactory()
    assert client.get(workbook.get_absolute_url()).status_code == 200
    assert client.get("/no/such/page/12345/").status_code == 404
    client.generic("BREW", "/")  # an invented method
    samples = scrape(client.get(URL).content.decode())
    latency = samples["django_http_requests_latency_seconds_by_view_method_count"]
    views = {s.labels["view"] for s in latency}
    assert "workbooks:detail" in views
    assert "<unnamed view>" in views  # the 404
    methods = {s.labels["method"] for s in latency}
    assert "BREW" not in methods and "<invalid method>" in methods
    for family in samples.values():
        for s in family:
            for value in s.labels.values():
                assert "/workbooks/" not in value and "/no/such" not in value and workbook.slug not in value


@pytest.mark.django_db
def test_responses_by_status_and_exceptions_are_exported(client, monkeypatch):
    from workbooks import views

    def broken(request):
        raise RuntimeError("boom")

    monkeypatch.setattr(views.selectors, "home_sections", lambda: broken(None))
    client.raise_request_exception = False
    assert client.get("/").status_code == 500
    samples = scrape(client.get(URL).content.decode())
    statuses = {
        (s.labels["status"], s.labels["view"])
        for s in samples["django_http_responses_total_by_status_view_method_total"]
    }
    assert ("500", "home") in statuses
    assert any(s.labels["view"] == "home" for s in samples["django_http_exceptions_total_by_view_total"])


def test_scrape_time_queue_collector_reports_the_broker(client):
    samples = scrape(client.get(URL).content.decode())
    assert samples["sigma_celery_broker_up"][0].value == 1
    # Every queue of settings.CELERY_TASK_ROUTES and the default one, whether or not a message was ever sent.
    assert {s.labels["queue"] for s in samples["sigma_celery_queue_length"]} == {
        "celery",
        "counters",
        "media",
        "reports",
    }
