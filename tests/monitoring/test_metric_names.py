"""The Grafana dashboard is importable, and every metric the rules and the dashboard use exists.

Names from the app must be on /metrics after a little traffic; names from the exporters Prometheus also
scrapes (node-exporter, postgres-exporter, redis-exporter) must be ones those exporters publish.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from django.conf import settings

from tests.factories import WorkbookFactory
from tests.monitoring.helpers import dashboard, dashboard_targets, scrape

RULES = Path(settings.BASE_DIR) / "deploy" / "prometheus" / "alerts.yml"

# Metrics published by the exporters (their documented default collectors), not by this app.
EXPORTER_METRICS = {
    "node_cpu_seconds_total": "node-exporter",
    "node_memory_MemAvailable_bytes": "node-exporter",
    "node_memory_MemTotal_bytes": "node-exporter",
    "node_filesystem_avail_bytes": "node-exporter",
    "node_filesystem_size_bytes": "node-exporter",
    "pg_stat_database_numbackends": "postgres-exporter",
    "pg_settings_max_connections": "postgres-exporter",
    "pg_stat_activity_max_tx_duration": "postgres-exporter",
    "redis_keyspace_hits_total": "redis-exporter",
    "redis_keyspace_misses_total": "redis-exporter",
}
EXPORTER_PREFIXES = ("node_", "pg_", "redis_")
# Published on each Celery worker's metrics port only (monitoring.exposition.worker_registry), not on /metrics.
WORKER_METRICS = {"sigma_celery_worker_queue": "the queues each worker consumes"}
# Counters that a few ordinary requests may not increment: the family must be declared (its # TYPE line on
# /metrics); samples appear with the first event.
# Read replicas (sigma_playground/replicas): their series exist only with DATABASE_REPLICA_URLS, which no test
# site here has (tests/replicas/test_streaming.py reads them from instances that do).
ONLY_WITH_REPLICAS = {
    "sigma_db_replica_lag_seconds": "the replica monitor",
    "sigma_db_replica_up": "the replica monitor",
    "sigma_db_public_reads_total": "the replica middleware",
}
INCREMENTED_ELSEWHERE = {
    "sigma_cache_requests_total": "the caching layer, on its first lookup",
    **ONLY_WITH_REPLICAS,
}

_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
}
_STRIP = [
    re.compile(r'"(?:[^"\\]|\\.)*"'),  # strings (label values, regexes)
    re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"),  # label lists
    re.compile(r"\{[^}]*\}"),  # label matchers
    re.compile(r"\[[^\]]*\]"),  # range selectors
    re.compile(r"\$\{?\w+\}?"),  # Grafana variables
]
_IDENT = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")


def metric_names(expr: str) -> set[str]:
    text = expr
    for pattern in _STRIP:
        text = pattern.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        start = match.start()
        if start and (text[start - 1].isdigit() or text[start - 1] == "."):
            continue  # the exponent or unit of a number
        if match.group(2) or match.group(1) in _KEYWORDS:
            continue  # a function call or an operator
        names.add(match.group(1))
    return names


def test_the_name_extractor():
    assert metric_names(
        'histogram_quantile(0.95, sum by (le) (rate(x_bucket{a=~"5.."}[$__rate_interval]))) / on(job) y > 1e3'
        " and time() - max(z_total) > 180"
    ) == {"x_bucket", "y", "z_total"}


def rule_exprs() -> list[str]:
    data = yaml.safe_load(RULES.read_text())
    return [rule["expr"] for group in data["groups"] for rule in group["rules"]]


def test_the_dashboard_can_be_imported_and_has_a_datasource_variable():
    board = dashboard()
    assert board["title"] and board["uid"] and board["schemaVersion"] >= 36
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}" and target["expr"].strip()


def test_the_dashboard_shows_what_the_issue_asks_for():
    titles = " | ".join(p["title"].lower() for p in dashboard()["panels"])
    for words in [
        "request rate",
        "p50 / p95 / p99",
        "error rate",
        "database connections",
        "query time",
        "cache hit ratio",
        "lcp",
        "cls",
        "tasks",
        "queue",
        "cpu",
        "memory",
        "disk",
        "replica lag",
    ]:
        assert words in titles, words


# Series the web processes record about users' requests and the cache: every query of them must select the
# web job, so that a Celery worker's (warming, tasks) or an exporter's series never mix in.
WEB_SERIES = re.compile(r"\b(django_http_\w+|sigma_cache_requests_total)\b(\{[^}]*\})?")


def web_selections(expr: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2) or "") for m in WEB_SERIES.finditer(expr)]


def test_rules_panels_and_diagnosis_queries_select_the_web_job():
    from monitoring.diagnosis import readings

    exprs = [("alerts.yml", e) for e in rule_exprs()]
    exprs += [(f"dashboard panel {panel_id}", e) for panel_id, _, e in dashboard_targets()]
    exprs += [(f"diagnosis {name}", e) for name, e in readings.prometheus_queries().items()]
    checked = 0
    for where, expr in exprs:
        for name, selector in web_selections(expr):
            checked += 1
            assert f'job="{settings.PROMETHEUS_WEB_JOB}"' in selector, f"{where}: {name}{selector}"
    assert checked > 20
    assert web_selections('rate(x{a="b"}[5m]) + django_http_y') == [("django_http_y", "")]


def test_the_5xx_panel_reads_zero_not_no_data_without_errors_or_traffic():
    panel = next(p for p in dashboard()["panels"] if p["title"].startswith("5xx error rate"))
    (target,) = panel["targets"]
    assert target["expr"].rstrip().endswith("or vector(0)")
    assert "> 0)" in target["expr"]  # no traffic: the division is empty, so the 0 shows


@pytest.mark.promtool
def test_every_dashboard_expression_is_valid_promql(promtool, tmp_path):
    rules = [
        {
            "record": f"dashboard:panel_{panel_id}_{ref}",
            "expr": expr.replace("$__rate_interval", "5m").replace("$route", ".*"),
        }
        for panel_id, ref, expr in dashboard_targets()
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def some_traffic(db, client, monkeypatch):
    """A few requests of every kind, a beacon, a task: what a minute of real use produces."""
    from monitoring.tasks import beat_heartbeat
    from workbooks import views

    workbook = WorkbookFactory()
    for url in ("/", "/workbooks/", workbook.get_absolute_url(), "/no/such/page/"):
        client.get(url)
    beacon = {
        "route": "home",
        "metrics": {"lcp": 900, "inp": 40, "cls": 0.01, "ttfb": 80, "dcl": 300, "load": 500},
        "clicks": {"publish": 1},
        "submits": {"search": 1},
    }
    assert client.post("/monitoring/rum/", json.dumps(beacon), content_type="text/plain").status_code == 204
    beat_heartbeat.delay()
    monkeypatch.setattr(views.selectors, "home_sections", lambda: 1 / 0)
    client.raise_request_exception = False
    assert client.get("/").status_code == 500
    return client


def test_every_metric_used_by_rules_and_dashboard_exists(some_traffic):
    from prometheus_client import generate_latest

    from monitoring.exposition import worker_registry

    text = some_traffic.get("/metrics").content.decode()
    samples = scrape(text)
    worker_samples = scrape(generate_latest(worker_registry(queues=["celery"])).decode())
    declared = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    used: dict[str, set[str]] = {}
    for expr in rule_exprs():
        for name in metric_names(expr):
            used.setdefault(name, set()).add("alerts.yml")
    for panel_id, _, expr in dashboard_targets():
        for name in metric_names(expr):
            used.setdefault(name, set()).add(f"dashboard panel {panel_id}")
    assert len(used) > 20

    missing = []
    for name, where in sorted(used.items()):
        if name.startswith(EXPORTER_PREFIXES):
            if name not in EXPORTER_METRICS:
                missing.append(f"{name} (used by {sorted(where)}) is not a known exporter metric")
        elif name in samples:
            continue
        elif name in WORKER_METRICS:
            if name not in worker_samples:
                missing.append(f"{name} (used by {sorted(where)}) has no sample on a worker's metrics port")
        elif name in INCREMENTED_ELSEWHERE:
            if name not in declared:
                missing.append(f"{name} is not declared on /metrics")
        else:
            missing.append(f"{name} (used by {sorted(where)}) has no sample on /metrics")
    assert not missing, "\n".join(missing)
