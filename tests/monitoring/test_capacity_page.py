"""Stored reports, the daily task, ``manage.py capacity_report``, admin, and the staff capacity page."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from monitoring import tasks
from monitoring.capacity import report
from monitoring.capacity.views import resource_chart
from monitoring.models import CapacityHour, CapacityReport, CapacitySample
from sigma_playground.charts import TONES
from tests.monitoring.test_capacity_projection import exponential_disk, hourly_history, linear_cpu

# Hours, days and "now" of histories and reports, from the test and from the code: on the fixed clock.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]

URL = "/monitoring/capacity/"
SVG_NS = "{http://www.w3.org/2000/svg}"


def growing_history(now: datetime, days: int = 30) -> None:
    """Hourly aggregates in the database: CPU growing linearly, disk exponentially, memory flat, the
    database and a table growing; and a few recent samples."""
    curves = {
        "cpu_percent": linear_cpu,
        "disk_percent": exponential_disk,
        "memory_percent": lambda t: 40.0,
        "db_size_bytes": lambda t: 2e9 + 3e7 * t,
        "rows:workbooks_workbook": lambda t: 10_000 + 100 * t,
    }
    CapacityHour.objects.bulk_create(
        CapacityHour(hour=hour, samples=60, stats=stats)
        for hour, stats in hourly_history(curves, days=days, now=now, noise=0.01)
    )
    CapacitySample.objects.bulk_create(
        CapacitySample(
            taken_at=now - timedelta(minutes=i),
            cpu_percent=30.0,
            memory_percent=40.0,
            disk_percent=10.0,
            db_size_bytes=2 * 10**9,
            table_rows={"workbooks_workbook": 10_000},
            missing=["redis"],
            notes={"redis": "the cache is LocMemCache, not Redis"},
        )
        for i in range(1, 6)
    )


# --- Reports: the daily task and the command ------------------------------------------------------------------


def test_the_daily_task_rolls_up_builds_and_stores_a_report():
    now = timezone.now()
    growing_history(now)
    # The middle of the last complete hour, whatever the clock says (growing_history's recent samples may
    # fall in that hour too, a few minutes after the hour turns).
    previous_hour = retention_hour(now) - timedelta(hours=1)
    CapacitySample.objects.create(taken_at=previous_hour + timedelta(minutes=30), cpu_percent=35.0)
    pk = tasks.capacity_report.delay().get()
    stored = CapacityReport.objects.get(pk=pk)
    assert stored.trigger == "schedule" and stored.meaningful and stored.days_with_data == 30
    analysis = report.CapacityAnalysis.from_dict(stored.data)
    assert analysis.resource("cpu_percent").crossing.status == "date"
    assert stored.top_priority == analysis.top_priority and stored.recommendations == len(
        analysis.recommendations
    )
    assert stored.text == analysis.as_text()
    rolled_up = CapacityHour.objects.get(hour=previous_hour)
    in_hour = CapacitySample.objects.filter(
        taken_at__gte=previous_hour, taken_at__lt=previous_hour + timedelta(hours=1)
    )
    assert rolled_up.samples == in_hour.count() and rolled_up.stats["cpu_percent"]["max"] == 35.0


def retention_hour(moment: datetime) -> datetime:
    from monitoring.capacity.retention import hour_of

    return hour_of(moment)


def test_the_beat_schedule_has_the_capacity_tasks():
    from celery.schedules import crontab

    from sigma_playground.celery import app

    # What a worker or beat does at start: import the task modules (autodiscovered apps' tasks.py and
    # CELERY_IMPORTS), so the check does not depend on which test imported them first.
    app.loader.import_default_modules()
    schedule = django_settings.CELERY_BEAT_SCHEDULE
    sample = schedule["capacity-sample"]
    assert sample["task"] == "monitoring.tasks.capacity_sample"
    assert sample["schedule"] == float(django_settings.CAPACITY_SAMPLE_SECONDS) == 60.0
    assert sample["options"]["expires"] < sample["schedule"]
    assert schedule["capacity-retention"]["schedule"] == crontab(minute=7)
    assert schedule["capacity-report"]["schedule"] == crontab(hour=4, minute=23)
    for entry in schedule.values():
        assert entry["task"] in app.tasks, entry["task"]


def test_manage_py_capacity_report_prints_text_and_stores_it(capsys):
    growing_history(timezone.now())
    call_command("capacity_report")
    out = capsys.readouterr().out
    assert out.startswith("Capacity report, ")
    assert "CPU" in out and "crosses SLA 70%: around" in out
    assert "12 mo" in out and "[95% band]" in out and "linear" in out and "exponential" in out
    assert "Memory" in out and "not within a year" in out
    assert "Recommendations:" in out and "cpu:" in out
    assert "workbooks_workbook" in out and "/day" in out
    assert "redis: the cache is LocMemCache, not Redis" in out
    assert CapacityReport.objects.get().trigger == "command"


def test_manage_py_capacity_report_json_and_no_store(capsys):
    growing_history(timezone.now())
    call_command("capacity_report", "--json", "--no-store")
    body = json.loads(capsys.readouterr().out)
    assert CapacityReport.objects.count() == 0
    assert body["meaningful"] is True and "least squares" in body["method"]
    cpu = next(r for r in body["resources"] if r["key"] == "cpu_percent")
    assert [p["months"] for p in cpu["projections"]] == [1, 3, 6, 12]
    assert cpu["fit"]["model"] == "linear" and cpu["crossing"]["status"] == "date"
    assert cpu["threshold"] == 70
    assert {r["priority"] for r in body["recommendations"]} <= {"high", "medium", "low"}


def test_with_no_history_the_command_says_the_projection_is_not_yet_meaningful(capsys):
    call_command("capacity_report", "--no-store")
    out = capsys.readouterr().out
    assert "Projections are not yet meaningful: 0 day(s) of history" in out
    assert "no samples yet" in out


# --- Admin --------------------------------------------------------------------------------------------------------


def test_staff_see_reports_samples_and_hours_in_admin(client, staff_user):
    growing_history(timezone.now())
    stored = report.generate(trigger="command")
    client.force_login(staff_user)
    for name in ("capacityreport", "capacitysample", "capacityhour"):
        response = client.get(reverse(f"admin:monitoring_{name}_changelist"))
        assert response.status_code == 200, name
    page = client.get(reverse("admin:monitoring_capacityreport_change", args=[stored.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Capacity report, " in html and f"{URL}?report={stored.pk}" in html
    sample = CapacitySample.objects.first()
    assert client.get(reverse("admin:monitoring_capacitysample_change", args=[sample.pk])).status_code == 200
    assert client.get(reverse("admin:monitoring_capacityreport_add")).status_code == 403


# --- The staff page -----------------------------------------------------------------------------------------------


def svgs(html: str) -> list[ET.Element]:
    return [ET.fromstring(m) for m in re.findall(r"<svg\b.*?</svg>", html, flags=re.S)]


def classes(svg: ET.Element) -> set[str]:
    return {el.get("class") for el in svg.iter() if el.get("class")}


def test_the_page_is_refused_to_anyone_but_staff(client, user):
    response = client.get(URL)
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))
    client.force_login(user)
    assert client.get(URL).status_code == 404


def test_the_page_draws_a_chart_per_resource_with_threshold_projection_and_band(client, staff_user):
    now = timezone.now()
    growing_history(now)
    report.generate(now=now)
    client.force_login(staff_user)
    response = client.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    charts = svgs(html)
    drawn = re.findall(r'<figure class="capacity-chart[^"]*" data-resource="([a-z_0-9]+)"', html)
    assert {"cpu_percent", "memory_percent", "disk_percent", "db_size_bytes"} <= set(drawn)
    assert len(charts) == len(drawn)
    by_key = dict(zip(drawn, charts, strict=True))
    for key in ("cpu_percent", "memory_percent", "disk_percent"):
        assert {"history", "range", "projection", "band", "threshold", "zone-over", "now"} <= classes(
            by_key[key]
        )
        assert by_key[key].find(f"{SVG_NS}title").text.startswith(("CPU", "Memory", "Disk"))
    assert "crossing" in classes(by_key["cpu_percent"])  # the day it crosses 70 %, marked
    assert "threshold" not in classes(by_key["db_size_bytes"])  # no threshold, no line
    cpu_line = next(el for el in by_key["cpu_percent"].iter() if el.get("class") == "history")
    assert cpu_line.get("stroke") == TONES["warning"]  # crossing within three months: amber
    memory_line = next(el for el in by_key["memory_percent"].iter() if el.get("class") == "history")
    assert memory_line.get("stroke") == TONES["ok"]
    assert "not within a year" in html and "Recommendations" in html and "priority-medium" in html


def test_the_page_obeys_the_csp_and_loads_nothing_from_elsewhere(client, staff_user):
    growing_history(timezone.now())
    report.generate()
    client.force_login(staff_user)
    response = client.get(URL)
    html = response.content.decode()
    csp = response["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "style-src 'self'" in csp and "script-src 'self'" in csp
    assert " style=" not in html and "<style" not in html
    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []  # no inline script
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert not url.startswith(("http:", "https:", "//")), url
    assert "/static/monitoring/capacity.css" in html


def test_the_page_shows_too_little_history_and_computes_a_report_when_none_is_stored(client, staff_user):
    CapacitySample.objects.create(cpu_percent=75.0, memory_percent=40.0)
    client.force_login(staff_user)
    html = client.get(URL).content.decode()
    assert "No stored report yet: computed now" in html
    assert "Projections are not yet meaningful" in html
    assert "over the threshold now" in html and "priority-high" in html
    assert CapacityReport.objects.count() == 0  # a GET stores nothing


def test_an_older_report_from_the_history(client, staff_user):
    now = timezone.now()
    first = report.store(report.build(now - timedelta(days=1)))
    growing_history(now)
    latest = report.generate(now=now)
    client.force_login(staff_user)
    html = client.get(URL).content.decode()
    assert f"?report={first.pk}" in html and f"?report={latest.pk}" in html
    older = client.get(URL, {"report": first.pk}).content.decode()
    assert "Projections are not yet meaningful" in older
    assert client.get(URL, {"report": "nope"}).status_code == 404
    assert client.get(URL, {"report": latest.pk + 1000}).status_code == 404


def test_the_page_runs_the_same_few_queries_whatever_the_history(client, staff_user):
    client.force_login(staff_user)
    now = timezone.now()
    growing_history(now, days=10)
    report.generate(now=now)
    client.get(URL)  # the session and user are cached after the first request
    with CaptureQueriesContext(connection) as small:
        assert client.get(URL).status_code == 200
    growing_history(now - timedelta(days=10), days=20)
    for i in range(40):
        report.generate(now=now - timedelta(hours=i))
    report.generate(now=now + timedelta(minutes=1))
    CapacitySample.objects.bulk_create(
        CapacitySample(taken_at=now - timedelta(minutes=m)) for m in range(500)
    )
    with CaptureQueriesContext(connection) as large:
        assert client.get(URL).status_code == 200
    assert len(large) == len(small) <= 6, [q["sql"][:80] for q in large.captured_queries]


def test_without_a_stored_report_the_page_runs_a_bounded_number_of_queries(
    client, staff_user, django_assert_max_num_queries
):
    growing_history(timezone.now())
    client.force_login(staff_user)
    client.get(URL)
    with django_assert_max_num_queries(7):
        assert client.get(URL).status_code == 200


def test_a_chart_is_drawn_from_the_reports_data_alone():
    now = datetime(2026, 3, 1, 4, 23, tzinfo=UTC)
    analysis = report.analyse(hourly_history({"cpu_percent": linear_cpu}, now=now), [], now)
    svg = resource_chart(analysis, analysis.resource("cpu_percent"))
    root = ET.fromstring(str(svg))
    assert root.get("role") == "img" and root.get("viewBox") == "0 0 640 240"
    assert "crosses" in root.find(f"{SVG_NS}desc").text or "around" in root.find(f"{SVG_NS}desc").text
    marker = next(el for el in root.iter() if el.get("class") == "crossing")
    assert marker.get("fill") == TONES["critical"]
    projection = next(el for el in root.iter() if el.get("class") == "projection")
    assert projection.get("stroke-dasharray") == "6 4"


# --- "Now" is now; demo history -------------------------------------------------------------------------------


def cpu_figure(html: str) -> str:
    start = html.index('data-resource="cpu_percent"')
    return html[start : html.index("</figcaption>", start)]


def test_current_values_come_from_the_latest_sample_and_projections_from_the_stored_report(
    client, staff_user
):
    then = timezone.now() - timedelta(minutes=12)
    growing_history(then)  # samples at 30 % CPU
    stored = report.generate(now=then)
    now = timezone.now()  # twelve minutes on, CPU is busier
    CapacitySample.objects.create(taken_at=now, cpu_percent=55.5, memory_percent=41.0, disk_percent=10.0)
    client.force_login(staff_user)
    html = client.get(URL).content.decode()
    assert "now 55.5%" in cpu_figure(html)  # not the report's 30.0 %
    assert f"the latest sample, {timezone.localtime(now, UTC):%Y-%m-%d %H:%M:%S} UTC" in html
    assert f"the report of {stored.created_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC" in html
    # The report itself is unchanged, and an older report is shown as it was.
    assert report.CapacityAnalysis.from_dict(stored.data).resource("cpu_percent").current == 30.0
    old = client.get(URL, {"report": stored.pk}).content.decode()
    assert "now 30.0%" in cpu_figure(old) and "the latest sample" not in old


def test_seed_demo_capacity_history_gives_a_new_install_a_working_page(client, staff_user, capsys):
    call_command("seed_demo", "--users", "2", "--capacity-history")
    out = capsys.readouterr().out
    assert "Demo capacity history: 720 hourly aggregates written, and a current sample" in out
    assert CapacityHour.objects.count() == 30 * 24
    assert all(hour.stats["demo"] for hour in CapacityHour.objects.all())
    sample = CapacitySample.objects.get()
    assert sample.host.startswith("demo") and "not a measurement" in sample.notes["demo"]
    stored = CapacityReport.objects.get()
    analysis = report.CapacityAnalysis.from_dict(stored.data)
    assert analysis.meaningful and analysis.demo_days == 30
    assert "DEMO: 30 day(s) of this history are invented demo data" in stored.text
    assert any(r.projections for r in analysis.resources)
    assert any(r.crossing.status == report.DATE for r in analysis.resources)  # a crossing date to see
    client.force_login(staff_user)
    html = client.get(URL).content.decode()
    assert "capacity-demo" in html and "30 day(s) of this history are invented demo data" in html
    assert "crosses ~" in html or "around " in html
    # Again: nothing new to write, no second report.
    call_command("seed_capacity_history")
    assert CapacityHour.objects.count() == 30 * 24 and CapacityReport.objects.count() == 1


def test_demo_history_never_mixes_with_real_history(capsys):
    now = timezone.now()
    stats = {"cpu_percent": {"min": 1.0, "mean": 1.0, "max": 1.0, "n": 60}}
    CapacityHour.objects.create(hour=now - timedelta(days=2), samples=60, stats=stats)
    call_command("seed_capacity_history")
    assert "real capacity history exists" in capsys.readouterr().out
    assert CapacityHour.objects.count() == 1 and not CapacityReport.objects.exists()


def test_demo_capacity_history_is_refused_in_production():
    import os
    import subprocess
    import sys

    from tests.test_production_settings import PROD_ENV, ROOT

    for args in (["seed_capacity_history"], ["seed_demo", "--capacity-history"]):
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env={**os.environ, **PROD_ENV},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode != 0 and "not in production" in result.stderr, args


def test_make_run_seeds_the_demo_capacity_history():
    makefile = (django_settings.BASE_DIR / "Makefile").read_text()
    run = makefile[makefile.index("\nrun:") : makefile.index("\ntest:")]
    assert "seed_demo --capacity-history" in run
