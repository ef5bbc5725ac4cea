"""deploy/prometheus: the rules agree with the SLA, promtool accepts them, and their unit tests pass."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from django.conf import settings

from monitoring.sla import alert_thresholds

PROMETHEUS_DIR = Path(settings.BASE_DIR) / "deploy" / "prometheus"
RULES = PROMETHEUS_DIR / "alerts.yml"
RULE_TESTS = PROMETHEUS_DIR / "alerts_test.yml"

# The comparison that carries each rule's SLA-derived threshold.
OPERATOR = {
    "HighResponseTime": ">",
    "HighErrorRate": ">",
    "HighCPUUsage": ">",
    "HighMemoryUsage": ">",
    "DiskSpaceHigh": ">",
    "DatabaseConnectionsHigh": ">",
    "CacheHitRatioCollapsed": "<",
    "CeleryBeatHeartbeatMissing": ">",
    "CeleryQueueBacklogGrowing": ">",
    "CeleryQueueUnconsumed": ">",
    "WebVitalsLCPHigh": ">",
    "CDNPurgeFailing": ">",
    "ReplicaLagHigh": ">",
    "ReplicaUnavailable": "<",
}
# The duration ("for") of the design's five rules.
FOR = {
    "HighResponseTime": "2m",
    "HighErrorRate": "1m",
    "HighCPUUsage": "5m",
    "HighMemoryUsage": "5m",
    "DatabaseConnectionsHigh": "2m",
}


def rules() -> dict[str, dict]:
    data = yaml.safe_load(RULES.read_text())
    return {rule["alert"]: rule for group in data["groups"] for rule in group["rules"]}


def number(value: float) -> str:
    return f"{value:g}"


def run_promtool(promtool: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([promtool, *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=120)


def test_every_rule_compares_with_the_threshold_derived_from_the_sla():
    thresholds = alert_thresholds()
    assert set(rules()) == set(thresholds) == set(OPERATOR)
    for name, rule in rules().items():
        pattern = rf"{re.escape(OPERATOR[name])}\s*{re.escape(number(thresholds[name]))}(?![\d.])"
        assert re.search(pattern, rule["expr"]), (
            f"{name}: expected '{OPERATOR[name]} {number(thresholds[name])}'"
        )


def test_the_design_rules_keep_their_durations_and_every_rule_has_a_severity():
    for name, rule in rules().items():
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]
        if name in FOR:
            assert rule["for"] == FOR[name], name
    assert rules()["HighErrorRate"]["labels"]["severity"] == "critical"


def test_the_error_rate_rule_divides_sums_and_compares_a_ratio():
    expr = " ".join(rules()["HighErrorRate"]["expr"].split())
    assert expr.startswith("sum(rate(") and "/ sum(rate(" in expr
    assert (
        "* 100" not in expr and "humanizePercentage" in rules()["HighErrorRate"]["annotations"]["description"]
    )


def test_every_rule_has_a_firing_and_a_quiet_unit_test():
    cases = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in cases:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert firing == set(rules()), f"rules never shown firing: {set(rules()) - firing}"
    assert quiet == set(rules()), f"rules never shown quiet: {set(rules()) - quiet}"


@pytest.mark.promtool
def test_promtool_check_rules(promtool):
    result = run_promtool(promtool, "check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


@pytest.mark.promtool
def test_promtool_test_rules(promtool):
    result = run_promtool(promtool, "test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.promtool
def test_promtool_check_config(promtool):
    result = run_promtool(promtool, "check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs == {"sigma-web", "sigma-celery", "postgres", "redis", "node"}
    assert config["rule_files"] == ["alerts.yml"]


@pytest.mark.promtool
def test_a_wrong_threshold_makes_the_unit_tests_fail(promtool, tmp_path):
    """The unit tests pin the thresholds: 1% -> 3% must break the HighErrorRate case."""
    (tmp_path / "alerts.yml").write_text(RULES.read_text().replace("> 0.01", "> 0.03"))
    (tmp_path / "alerts_test.yml").write_text(RULE_TESTS.read_text())
    result = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "HighErrorRate" in result.stdout + result.stderr
