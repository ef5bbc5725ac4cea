"""Only user traffic in user numbers: scrapes, probes and cache warming record no request metrics, the
5xx series exist at zero from process start, and exceptions answered with a 4xx are not exceptions."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from django.core.management import call_command
from prometheus_client import REGISTRY

from tests.factories import UserFactory, WorkbookFactory
from tests.monitoring.helpers import ROOT, scrape

REQUEST_SERIES = (
    "django_http_requests_total_by_view_transport_method_total",
    "django_http_responses_total_by_status_view_method_total",
    "django_http_requests_latency_seconds_by_view_method_count",
    "django_http_requests_before_middlewares_total",
    "django_http_responses_before_middlewares_total",
)


def request_totals() -> dict[str, float]:
    """Each request series summed over its labels, in this process's registry."""
    totals = dict.fromkeys(REQUEST_SERIES, 0.0)
    for family in REGISTRY.collect():
        for s in family.samples:
            if s.name in totals:
                totals[s.name] += s.value
    return totals


@pytest.mark.django_db
def test_scrapes_and_probes_record_no_request_metrics(client):
    client.get("/")  # the series exist
    before = request_totals()
    for path in ("/metrics", "/healthz", "/readyz", "/metrics"):
        assert client.get(path).status_code in (200, 503)
    assert request_totals() == before
    client.get("/")
    after = request_totals()
    assert all(after[name] == before[name] + 1 for name in REQUEST_SERIES), (before, after)


@pytest.mark.django_db
def test_only_the_exact_paths_are_untracked(client):
    before = request_totals()
    client.get("/healthz/")  # not the probe's path: a 404, counted like any other
    client.get("/metrics/")
    after = request_totals()
    assert after["django_http_responses_total_by_status_view_method_total"] == (
        before["django_http_responses_total_by_status_view_method_total"] + 2
    )


@pytest.mark.django_db
def test_cache_warming_records_no_request_metrics_and_no_access_log_lines(json_log):
    author = UserFactory()
    WorkbookFactory.create_batch(3, author=author, favorite_count=5)
    before = request_totals()
    out, err = io.StringIO(), io.StringIO()
    call_command("warm_cache", stdout=out, stderr=err)
    assert "Cache warmed: " in out.getvalue()
    assert request_totals() == before
    assert [line for line in json_log() if line.get("logger") == "sigma_playground.request"] == []
    # The progress bar and the summary are the command's only output.
    for line in err.getvalue().splitlines():
        assert line.startswith("warming pages"), line


@pytest.mark.django_db
def test_the_warm_cache_task_logs_one_summary_line(json_log):
    from workbooks.tasks import warm_cache

    WorkbookFactory.create_batch(2, favorite_count=3)
    warm_cache.delay()
    lines = [line["message"] for line in json_log()]
    assert [m for m in lines if m.startswith("cache warmed:")], lines
    assert not [m for m in lines if m.startswith("GET ")], lines


def test_an_http_client_cannot_claim_to_be_untracked(client):
    """The marker is an environ key no header can produce: a header of the same spelling is ignored."""
    before = request_totals()
    client.get("/no/such/page/", HTTP_SIGMA_UNTRACKED="1", HTTP_X_SIGMA_WARMING="1")
    assert request_totals() != before


@pytest.mark.django_db
def test_exceptions_answered_with_a_4xx_are_not_counted_as_exceptions(client, monkeypatch):
    def by_view(view: str) -> float:
        return REGISTRY.get_sample_value("django_http_exceptions_total_by_view_total", {"view": view}) or 0.0

    client.raise_request_exception = False
    tag_before, home_before = by_view("workbooks:tag"), by_view("home")
    assert client.get("/tags/no-such-tag/").status_code == 404  # Http404 raised in the view
    assert by_view("workbooks:tag") == tag_before

    from workbooks import views

    monkeypatch.setattr(views.selectors, "home_sections", lambda: 1 / 0)
    assert client.get("/").status_code == 500
    assert by_view("home") == home_before + 1


FRESH_PROCESS = """
import django
django.setup()
from django.test import Client
c = Client()
print(c.get("/metrics").content.decode())
"""


def test_the_5xx_series_exist_at_zero_from_process_start():
    """A fresh process, before any user request: the series the error rule and panels select are there, at 0,
    so the first 500s after a start raise rate() (a series born at 5 would show no increase)."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "sigma_playground.settings"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    samples = scrape(result.stdout)
    responses = {
        (s.labels["status"], s.labels["view"], s.labels["method"]): s.value
        for s in samples["django_http_responses_total_by_status_view_method_total"]
    }
    for view in ("home", "workbooks:detail", "workbooks:list", "<unnamed view>", "other"):
        for method in ("GET", "POST"):
            assert responses[("500", view, method)] == 0, (view, method)
            assert responses[("503", view, method)] == 0, (view, method)
    assert ("500", "monitoring:metrics", "GET") not in responses  # scrapes are not traffic
    # The /metrics request itself recorded nothing: every request series is still zero.
    assert all(value == 0 for value in responses.values())
    exceptions = {s.labels["view"]: s.value for s in samples["django_http_exceptions_total_by_view_total"]}
    assert exceptions["home"] == 0 and exceptions["workbooks:detail"] == 0
