"""The health diagnosis: severities at, below and above each threshold, its sources, the page, the JSON
and ``manage.py diagnose``."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
from django.core.management import call_command

from monitoring import diagnosis, slow_queries
from monitoring.diagnosis import grading, readings
from monitoring.diagnosis.grading import Finding, Report
from monitoring.diagnosis.readings import RequestStats
from monitoring.sla import thresholds
from sigma_playground.telemetry.window import RequestWindow
from tests.monitoring.helpers import free_port

T = None


@pytest.fixture(autouse=True)
def _thresholds():
    global T
    T = thresholds()


def stats(p95_ms=None, error_ratio=None, requests=1000):
    return RequestStats(requests=requests, p95_ms=p95_ms, error_ratio=error_ratio, source="test")


# --- Each check at, below and above its thresholds ---------------------------------------------------------------

# (assess, threshold key, [(value, severity)]) - warning at the SLA target, critical at the alert level.
CASES = {
    "latency": (
        lambda v: grading.assess_latency(stats(p95_ms=v), T["latency_p95_ms"]),
        [(499, "ok"), (500, "ok"), (501, "warning"), (1000, "warning"), (1001, "critical")],
    ),
    "error_rate": (
        lambda v: grading.assess_errors(stats(error_ratio=v / 100), T["error_rate_percent"]),
        [(0.05, "ok"), (0.1, "ok"), (0.11, "warning"), (1.0, "warning"), (1.01, "critical")],
    ),
    "memory": (
        lambda v: grading.assess_memory(v, 2**27, T["memory_percent"]),
        [(79, "ok"), (80, "ok"), (80.5, "warning"), (85, "warning"), (85.5, "critical")],
    ),
    "cpu": (
        lambda v: grading.assess_cpu(v, T["cpu_percent"]),
        [(69, "ok"), (70, "ok"), (71, "warning"), (80, "warning"), (81, "critical")],
    ),
    "disk": (
        lambda v: grading.assess_disk(v, "/srv", T["disk_percent"]),
        [(84, "ok"), (85, "ok"), (86, "warning"), (95, "warning"), (96, "critical")],
    ),
    "db_connections": (
        lambda v: grading.assess_db_connections(
            readings.DbConnections("postgresql", 2, 5, 20, 0, v, 3, 1000), T["db_connections"]
        ),
        [(79, "ok"), (80, "ok"), (81, "warning"), (100, "warning"), (101, "critical")],
    ),
    "slow_queries": (
        lambda v: grading.assess_slow_queries(
            500, T["slow_queries"], source=lambda ms: [slow_queries.SlowQuery("SELECT ?", 3, 900.0)] * v
        ),
        [(0, "ok"), (10, "ok"), (11, "warning")],
    ),
    "cache_hit_ratio": (
        lambda v: grading.assess_cache(
            readings.CacheState("redis", True, v * 1000, (1 - v) * 1000, "test"), T["cache_hit_ratio"], 100
        ),
        [(0.9, "ok"), (0.5, "ok"), (0.49, "warning")],
    ),
    "celery_queue": (
        lambda v: grading.assess_queue({"celery": v}, True, T["queue_length"], in_memory=False),
        [(0, "ok"), (100, "ok"), (101, "warning"), (1000, "warning"), (1001, "critical")],
    ),
    "beat_heartbeat": (
        lambda v: grading.assess_heartbeat(v, T["heartbeat_age_s"], in_memory=False),
        [(30, "ok"), (180, "ok"), (181, "warning"), (900, "warning"), (901, "critical")],
    ),
}


@pytest.mark.parametrize(
    "check,value,expected",
    [(check, value, expected) for check, (_, rows) in CASES.items() for value, expected in rows],
)
def test_severity_at_below_and_above_each_threshold(check, value, expected):
    assess, _ = CASES[check]
    finding = assess(value)
    assert finding.severity == expected, finding.summary
    if expected in ("warning", "critical"):
        assert finding.recommendations


def test_checks_without_data_say_so_and_do_not_count():
    assert grading.assess_latency(stats(requests=0), T["latency_p95_ms"]).severity == "info"
    assert grading.assess_errors(stats(requests=0), T["error_rate_percent"]).severity == "info"
    assert (
        grading.assess_db_connections(readings.DbConnections("sqlite"), T["db_connections"]).severity
        == "info"
    )
    assert grading.assess_queue({}, True, T["queue_length"], in_memory=True).severity == "info"
    assert grading.assess_heartbeat(None, T["heartbeat_age_s"], in_memory=True).severity == "info"
    few = readings.CacheState("redis", True, 1, 20, "test")
    assert grading.assess_cache(few, T["cache_hit_ratio"], 100).severity == "ok"


def test_outages_are_critical():
    down = readings.CacheState("redis", False, None, None, "PING", error="ConnectionError")
    assert grading.assess_cache(down, T["cache_hit_ratio"], 100).severity == "critical"
    assert grading.assess_queue({}, False, T["queue_length"], in_memory=False).severity == "critical"
    assert grading.assess_heartbeat(None, T["heartbeat_age_s"], in_memory=False).severity == "warning"


def test_a_waiting_pool_or_a_server_near_max_connections():
    waiting = readings.DbConnections("postgresql", 20, 20, 20, 3, 30, 25, 100)
    assert grading.assess_db_connections(waiting, T["db_connections"]).severity == "warning"
    near_max = readings.DbConnections("postgresql", 1, 1, 5, 0, 45, 3, 50)
    assert grading.assess_db_connections(near_max, T["db_connections"]).severity == "critical"


def test_an_unavailable_slow_query_source_is_an_information_line():
    def unavailable(ms):
        raise slow_queries.Unavailable("not yet available: no log")

    finding = grading.assess_slow_queries(500, T["slow_queries"], source=unavailable)
    assert finding.severity == "info" and "not yet available" in finding.summary


# --- The report -------------------------------------------------------------------------------------------------


def finding(severity: str) -> Finding:
    return Finding(
        check=severity, title=severity, severity=severity, summary="s", recommendations=[f"fix {severity}"]
    )


@pytest.mark.parametrize(
    "severities,status,code",
    [
        (["ok", "info"], "healthy", 0),
        (["ok", "warning", "info"], "warning", 1),
        (["warning", "critical", "ok"], "critical", 2),
        ([], "healthy", 0),
    ],
)
def test_overall_health_is_the_worst_finding(severities, status, code):
    report = Report([finding(s) for s in severities], datetime.now(tz=UTC))
    assert (report.status, report.exit_code) == (status, code)
    assert report.as_dict()["status"] == status
    assert report.issues == [f for f in report.findings if f.severity in ("warning", "critical")]
    if code == 2:
        assert report.recommendations[0] == "fix critical"


def test_a_check_that_raises_becomes_a_warning_not_an_error(monkeypatch):
    def broken():
        raise RuntimeError("psutil exploded")

    monkeypatch.setattr(readings, "cpu_utilisation", broken)
    report = diagnosis.diagnose()
    cpu = next(f for f in report.findings if f.check == "cpu")
    assert cpu.severity == "warning" and "RuntimeError" in cpu.summary


@pytest.mark.django_db
def test_the_whole_diagnosis_runs_and_reports_every_check():
    report = diagnosis.diagnose()
    checks = [f.check for f in report.findings]
    assert checks == [
        "latency",
        "error_rate",
        "slow_queries",
        "db_connections",
        "replicas",
        "memory",
        "cpu",
        "disk",
        "cache",
        "celery_queue",
        "durable_redis",
        "beat_heartbeat",
    ]
    assert all(f.severity in ("ok", "info", "warning", "critical") for f in report.findings)
    json.dumps(report.as_dict())


# --- Request statistics: the process's own window, or Prometheus ------------------------------------------------


def test_the_window_computes_quantiles_and_errors_and_forgets_old_slots():
    window = RequestWindow(seconds=300, slot_seconds=10)
    now = 1_000_000.0
    for _ in range(95):
        window.record(0.040, 200, now=now)
    for _ in range(5):
        window.record(2.0, 503, now=now)
    s = window.stats(now=now)
    assert (s.requests, s.errors, s.error_ratio) == (100, 5, 0.05)
    assert 25 <= s.p50_ms <= 50 and 1500 <= s.p99_ms <= 2000
    assert window.stats(now=now + 299).requests == 100
    assert window.stats(now=now + 301).requests == 0


@pytest.mark.django_db
def test_without_prometheus_the_process_window_is_used_and_says_so(client, settings):
    settings.PROMETHEUS_URL = ""
    readings.REQUESTS.clear()
    for _ in range(3):
        client.get("/")
    s = readings.request_stats()
    assert s.requests >= 3 and s.p95_ms is not None
    assert "this process's own metrics" in s.source and "set PROMETHEUS_URL" in s.source


def test_with_prometheus_the_fleet_numbers_come_from_its_http_api(settings, fake_prometheus):
    fake_prometheus.answers = {
        "histogram_quantile(0.95": "0.75",
        'status=~"5.."': "0.002",
        "increase(": "12000",
    }
    s = readings.request_stats()
    assert (s.p95_ms, s.error_ratio, s.requests) == (750.0, 0.002, 12000.0)
    assert s.source.startswith("Prometheus at http://127.0.0.1")
    assert grading.assess_latency(s, T["latency_p95_ms"]).severity == "warning"
    assert grading.assess_errors(s, T["error_rate_percent"]).severity == "warning"
    assert any(
        "[5m]" in q and "django_http_requests_latency_seconds_by_view_method_bucket" in q
        for q in fake_prometheus.queries
    )


def test_prometheus_without_traffic_gives_no_numbers(settings, fake_prometheus):
    fake_prometheus.answers = {"histogram_quantile(0.95": "NaN"}
    s = readings.request_stats()
    assert s.p95_ms is None and s.requests is None
    assert grading.assess_latency(s, T["latency_p95_ms"]).severity == "info"


def test_the_cache_hit_ratio_comes_from_prometheus_when_it_is_set(settings, fake_prometheus):
    fake_prometheus.answers = {'result="hit"': "900", 'result="miss"': "100"}
    state = readings.cache_state()
    assert (state.hits, state.misses) == (900.0, 100.0) and "from Prometheus" in state.source
    assert grading.assess_cache(state, T["cache_hit_ratio"], 100).value == 0.9


def test_without_prometheus_the_cache_hit_ratio_is_this_processs(settings):
    from sigma_playground.telemetry.instruments import CACHE_REQUESTS

    settings.PROMETHEUS_URL = ""
    for _ in range(settings.MONITORING_THRESHOLDS["cache_min_lookups"]):
        CACHE_REQUESTS.inc(kind="test", result="hit")
    state = readings.cache_state()
    assert state.reachable and state.hits >= settings.MONITORING_THRESHOLDS["cache_min_lookups"]
    assert "sigma_cache_requests_total of this process" in state.source and "single-process" in state.source


def test_in_a_celery_worker_without_the_web_directory_the_hit_ratio_is_missing_with_the_reason(
    settings, monkeypatch
):
    from sigma_playground.telemetry import process

    settings.PROMETHEUS_URL = ""
    monkeypatch.setattr(process, "in_celery_worker", lambda: True)
    state = readings.cache_state()
    assert state.hits is None and "no web metrics directory" in state.missing
    finding = grading.assess_cache(state, T["cache_hit_ratio"], 100)
    assert finding.severity == "info" and "hit ratio unknown" in finding.summary


@pytest.mark.promtool
def test_the_diagnosis_queries_are_valid_promql(promtool, tmp_path):
    import subprocess

    import yaml

    queries = list(readings.prometheus_queries().values())
    rules = [{"record": f"diagnosis:q{i}", "expr": q} for i, q in enumerate(queries)]
    path = tmp_path / "diagnosis_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "diagnosis", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_unreachable_prometheus_falls_back_to_the_process_and_says_so(settings):
    settings.PROMETHEUS_URL = f"http://127.0.0.1:{free_port()}"
    s = readings.request_stats()
    assert s.source.startswith("Prometheus did not answer") and "this process's own metrics" in s.source


@pytest.mark.django_db
def test_an_unreachable_prometheus_is_a_warning_not_an_info_line(settings):
    settings.PROMETHEUS_URL = f"http://127.0.0.1:{free_port()}"
    report = diagnosis.diagnose()
    finding = next(f for f in report.findings if f.check == "prometheus")
    assert finding.severity == "warning" and "did not answer" in finding.summary
    assert report.status in ("warning", "critical")


def test_a_prometheus_that_answers_is_ok(settings, fake_prometheus):
    fake_prometheus.answers = {"increase(django_http": "10"}
    assert grading.assess_prometheus(readings.request_stats()).severity == "ok"


def test_without_prometheus_there_is_no_prometheus_check(settings):
    settings.PROMETHEUS_URL = ""
    assert "prometheus" not in diagnosis.diagnose().as_dict()["issues"]
    assert all(f.check != "prometheus" for f in diagnosis.diagnose().findings)


def test_cpu_is_utilisation_over_an_interval_and_load_is_shown_beside_it(settings, monkeypatch):
    settings.PROMETHEUS_URL = ""
    intervals = []

    def cpu_percent(interval=None):
        intervals.append(interval)
        return 12.5

    monkeypatch.setattr(readings.psutil, "cpu_percent", cpu_percent)
    monkeypatch.setattr(readings.psutil, "getloadavg", lambda: (4.92, 1.0, 1.0))
    reading = readings.cpu_utilisation()
    assert intervals == [readings.CPU_INTERVAL_S] and intervals[0] > 0
    finding = grading.assess_cpu(reading.percent, T["cpu_percent"], reading.source, reading.load_1m)
    # A load of 246% of 2 cores is not "CPU": the grade follows utilisation, the load is only shown.
    assert finding.severity == "ok" and finding.value == 12.5
    assert "12% busy" in finding.summary or "13% busy" in finding.summary
    assert "load average 4.92" in finding.summary and "not graded" in finding.summary
    assert finding.source.startswith("psutil")


def test_with_prometheus_cpu_is_the_node_exporter_utilisation_the_alert_uses(settings, fake_prometheus):
    fake_prometheus.answers = {"node_cpu_seconds_total": "83"}
    reading = readings.cpu_utilisation()
    assert reading.percent == 83 and "node-exporter" in reading.source
    query = next(q for q in fake_prometheus.queries if "node_cpu_seconds_total" in q)
    assert 'mode=~"idle|iowait"' in query and "[5m]" in query


# --- Sources against the real services --------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db
def test_database_connections_on_postgresql(client):
    client.get("/")  # opens this process's pool
    data = readings.db_connections()
    assert data.vendor == "postgresql"
    assert data.server_total >= 1 and data.server_max >= data.server_total
    finding = grading.assess_db_connections(data, T["db_connections"])
    assert "max_connections" in finding.summary


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_default_slow_query_source_on_postgresql_answers_or_says_why_not():
    try:
        found = slow_queries.pg_stat_statements(500)
    except slow_queries.Unavailable as exc:
        assert "not yet available" in str(exc)
    else:
        assert all(q.mean_ms > 500 for q in found)


@pytest.mark.django_db
def test_the_default_source_reads_the_slow_statement_log():
    from datetime import timedelta

    from django.utils import timezone

    from monitoring.models import SlowQuery
    from monitoring.services import slow_query_record

    for i in range(12):
        slow_query_record(
            fingerprint=f"fp{i}",
            statement="select",
            table="workbooks_workbook",
            sql=f"SELECT {i}",
            seconds=1.5 + i,
        )
    slow_query_record(
        fingerprint="fp0", statement="select", table="workbooks_workbook", sql="SELECT 0", seconds=0.5
    )
    SlowQuery.objects.filter(fingerprint="fp11").update(last_seen=timezone.now() - timedelta(hours=2))
    found = slow_queries.slow_query_log(1000)
    assert len(found) == 11  # the one last seen two hours ago is out of the window
    assert found[0].query == "SELECT 10" and found[0].max_ms == 11500
    zero = next(q for q in found if q.query == "SELECT 0")
    assert (zero.calls, zero.mean_ms) == (2, 1000)
    finding = grading.assess_slow_queries(1000, T["slow_queries"])
    assert finding.severity == "warning" and finding.value == 11


@pytest.mark.django_db
def test_the_slow_query_source_is_configurable(settings):
    settings.MONITORING_SLOW_QUERY_SOURCE = "tests.monitoring.test_diagnosis.twelve_slow_queries"
    finding = grading.assess_slow_queries(500, T["slow_queries"])
    assert finding.severity == "warning" and finding.value == 12
    assert "1200 ms x4" in finding.summary


def twelve_slow_queries(threshold_ms: float) -> list[slow_queries.SlowQuery]:
    return [slow_queries.SlowQuery('SELECT * FROM "workbooks_workbook" WHERE id = ?', 4, 1200.0)] * 12


@pytest.mark.redis
def test_redis_reachability_and_the_hit_ratio_of_the_sites_own_lookups():
    state = readings.cache_state()
    assert state.backend == "redis" and state.reachable and state.hits is not None
    assert "Redis INFO" not in state.source and "sigma_cache_requests_total" in state.source


@pytest.mark.redis
def test_an_unreachable_redis_is_critical(settings):
    from django.core.cache import caches

    from tests.test_health import CLOSED_PORT_REDIS

    settings.CACHES = CLOSED_PORT_REDIS
    try:
        state = readings.cache_state()
        assert not state.reachable
        assert grading.assess_cache(state, T["cache_hit_ratio"], 100).severity == "critical"
    finally:
        caches["default"].close()


@pytest.mark.redis
def test_queue_lengths_from_the_redis_broker():
    lengths, up = diagnosis.queues.queue_lengths()
    assert up and "celery" in lengths and lengths["celery"] >= 0


def test_queue_lengths_when_the_broker_is_down(settings, monkeypatch):
    from sigma_playground.celery import app

    monkeypatch.setattr(app.conf, "broker_url", "redis://127.0.0.1:1/1")
    lengths, up = diagnosis.queues.queue_lengths()
    assert (lengths, up) == ({}, False)


def test_the_heartbeat_age_comes_from_the_last_heartbeat_task():
    from monitoring.tasks import beat_heartbeat

    assert readings.heartbeat_age_s() is None
    beat_heartbeat.delay()
    assert 0 <= readings.heartbeat_age_s() < 5
    assert readings.heartbeat_age_s(now=time.time() + 600) > 590


# --- Page, JSON, command ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_health_page_is_for_staff_and_shows_every_check(client, user, staff_user):
    assert client.get("/monitoring/health/").status_code == 302
    client.force_login(user)
    assert client.get("/monitoring/health/").status_code == 404
    client.force_login(staff_user)
    response = client.get("/monitoring/health/")
    assert response.status_code == 200
    html = response.content.decode()
    for title in (
        "Request latency p95",
        "5xx error rate",
        "Slow queries",
        "Database connections",
        "Memory",
        "Cache",
        "Celery queue",
        "Celery beat heartbeat",
    ):
        assert title in html
    assert "<meter" in html and 'class="health-status health-' in html
    assert "unsafe-inline" not in response["Content-Security-Policy"]


@pytest.mark.django_db
def test_health_json_for_staff_or_the_token(client, settings, user, staff_user):
    settings.HEALTH_BEARER_TOKEN = "h-" + "y" * 40
    assert client.get("/monitoring/health.json").status_code == 404
    assert client.get("/monitoring/health.json", HTTP_AUTHORIZATION="Bearer wrong").status_code == 404
    client.force_login(user)
    assert client.get("/monitoring/health.json").status_code == 404
    client.logout()
    body = client.get(
        "/monitoring/health.json", HTTP_AUTHORIZATION=f"Bearer {settings.HEALTH_BEARER_TOKEN}"
    ).json()
    assert body["status"] in ("healthy", "warning", "critical")
    assert {c["check"] for c in body["checks"]} >= {"latency", "error_rate", "memory", "cache"}
    client.force_login(staff_user)
    assert client.get("/monitoring/health.json").status_code == 200


@pytest.mark.parametrize(
    "severities,code", [(["ok"], 0), (["ok", "warning"], 1), (["critical", "warning"], 2)]
)
def test_manage_py_diagnose_prints_the_report_and_exits_by_health(monkeypatch, capsys, severities, code):
    from monitoring.management.commands import diagnose as command

    monkeypatch.setattr(
        command, "diagnose", lambda: Report([finding(s) for s in severities], datetime.now(tz=UTC))
    )
    with pytest.raises(SystemExit) as exit_info:
        call_command("diagnose")
    assert exit_info.value.code == code
    out = capsys.readouterr().out
    assert out.startswith(
        f"Health: {Report([finding(s) for s in severities], datetime.now(tz=UTC)).status.upper()}"
    )
    with pytest.raises(SystemExit):
        call_command("diagnose", "--json")
    assert json.loads(capsys.readouterr().out)["status"] in ("healthy", "warning", "critical")


@pytest.mark.django_db
def test_manage_py_diagnose_for_real_exits_with_the_reports_code(capsys):
    with pytest.raises(SystemExit) as exit_info:
        call_command("diagnose", "--json")
    body = json.loads(capsys.readouterr().out)
    assert exit_info.value.code == {"healthy": 0, "warning": 1, "critical": 2}[body["status"]]


def test_the_durable_redis_check_warns_on_an_evicting_policy_or_full_memory():
    ok = grading.assess_durable_redis([], True)
    assert ok.severity == "ok"
    warn = grading.assess_durable_redis(["durable Redis has maxmemory-policy allkeys-lru: ..."], True)
    assert warn.severity == "warning" and "allkeys-lru" in warn.summary
    assert grading.assess_durable_redis([], False).severity == "info"
