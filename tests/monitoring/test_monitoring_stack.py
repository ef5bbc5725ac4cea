"""The whole monitoring stack, for real: gunicorn in production mode (SSL redirect on), a Celery worker and
beat, Prometheus with the project's config and rules, node-exporter, postgres-exporter and redis-exporter,
all on free ports in a temporary folder. After some traffic, through Prometheus' HTTP API: every target is
up, every rule has been evaluated with health ok, every metric name a rule or a dashboard panel uses returns
data, scrapes are not traffic, the 5xx panel reads 0, and a worker restart does not make the heartbeat alert
pending.

Short scrape and evaluation intervals (1 s) keep it to about a minute. Marked ``monitoring_stack``: with
REQUIRE_SERVICES=1 (CI) missing binaries fail it, and ``.ci/run`` installs them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from tests.factories import UserFactory, WorkbookFactory
from tests.monitoring.helpers import (
    ROOT,
    free_port,
    monitoring_stack,
    services_env,
    start_gunicorn,
    stop_gracefully,
    wait_until_serving,
)
from tests.monitoring.test_metric_names import (
    ONLY_WITH_REPLICAS,
    dashboard,
    dashboard_targets,
    metric_names,
    rule_exprs,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.monitoring_stack]

INTERVAL = "1s"
SECRET_KEY = "s" * 10 + "Zq8-vT3xW_pL2mN7sR4yB9cF6hJ1dG5aE0uK" + "t" * 10
HTTPS = {"X-Forwarded-Proto": "https"}  # as the TLS proxy in front of gunicorn says


def get(url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, data=data, headers={**HTTPS, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def collectstatic(env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "-v0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr


def celery(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "sigma_playground", *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def start_worker(env: dict[str, str], folder: Path, port: int) -> subprocess.Popen:
    worker = celery(
        [
            "worker",
            "--pool=prefork",
            "--concurrency=1",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            f"stack-{uuid.uuid4().hex[:6]}@%h",
        ],
        env,
        folder / "worker.log",
    )
    wait_until_serving(f"http://127.0.0.1:{port}/metrics", worker, "the Celery worker's metrics port")
    return worker


def wait_for(what: str, check, seconds: float = 60, every: float = 0.5):
    """Poll ``check()`` until it returns something truthy; fail with its last answer."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what}: {check(details=True)}"
        time.sleep(every)


@pytest.fixture
def stack_site(transactional_db, tmp_path, monitoring_binaries):
    """Data, then gunicorn + worker + beat + the monitoring stack; yields (stack, base URL, env, folder)."""
    author = UserFactory(username="stackauthor")
    workbooks = WorkbookFactory.create_batch(3, author=author, favorite_count=2)
    static_root = tmp_path / "static"
    queue = f"stack-{uuid.uuid4().hex[:8]}"  # this test's worker takes only this test's tasks
    celery_port = free_port()
    env = {
        **os.environ,
        **services_env(redis_url=settings.REDIS_URL, metrics_dir=tmp_path / "prometheus-web"),
        "DJANGO_ENV": "production",
        "SECRET_KEY": SECRET_KEY,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "STATIC_ROOT": str(static_root),
        "MEDIA_ROOT": str(tmp_path / "media"),
        "PRIVATE_MEDIA_ROOT": str(tmp_path / "private_media"),
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "BEAT_HEARTBEAT_SECONDS": "2",
        "CELERY_SKIP_CHECKS": "1",
    }
    env.pop("DEBUG", None)
    collectstatic(env)
    worker_env = {
        **env,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus-celery"),
        "CELERY_METRICS_PORT": str(celery_port),
        "CELERY_METRICS_ADDR": "127.0.0.1",
    }
    beat_env = {k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    web_port = free_port()
    module = monitoring_stack()
    stack = module.Stack(
        tmp_path / "monitoring", module.Ports(free_port(), free_port(), free_port(), free_port())
    )
    processes: dict[str, subprocess.Popen] = {}
    try:
        processes["gunicorn"] = start_gunicorn(env, port=web_port)
        base = f"http://127.0.0.1:{web_port}"
        wait_until_serving(base + "/healthz", processes["gunicorn"], "gunicorn")
        processes["worker"] = start_worker(worker_env, tmp_path, celery_port)
        processes["beat"] = celery(
            ["beat", "--loglevel=INFO", f"--pidfile={tmp_path / 'beat.pid'}"], beat_env, tmp_path / "beat.log"
        )
        stack.start(
            web=f"127.0.0.1:{web_port}",
            celery=f"127.0.0.1:{celery_port}",
            database_url=env["DATABASE_URL"],
            redis_url=settings.REDIS_URL,
            scrape_interval=INTERVAL,
            evaluation_interval=INTERVAL,
        )
        yield {
            "stack": stack,
            "base": base,
            "workbooks": workbooks,
            "processes": processes,
            "worker_env": worker_env,
            "celery_port": celery_port,
            "folder": tmp_path,
        }
    finally:
        stack.stop()
        for name in ("beat", "worker", "gunicorn"):
            if name in processes:
                stop_gracefully(processes[name])


def send_traffic(base: str, workbooks) -> None:
    for _ in range(3):
        for path in ("/", "/workbooks/", "/workbooks/?sort=popular", workbooks[0].get_absolute_url()):
            assert get(base + path) == 200, path
    assert get(base + "/users/stackauthor/") == 200
    assert get(base + "/no/such/page/") == 404
    assert get(base + "/tags/no-such-tag/") == 404
    beacon = {
        "route": "home",
        "metrics": {"lcp": 900, "inp": 40, "cls": 0.01, "ttfb": 80, "dcl": 300, "load": 500},
        "clicks": {"publish": 1},
        "submits": {"search": 1},
    }
    status = get(
        base + "/monitoring/rum/", data=json.dumps(beacon).encode(), headers={"Content-Type": "text/plain"}
    )
    assert status == 204


def used_metric_names() -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    for expr in rule_exprs():
        for name in metric_names(expr):
            used.setdefault(name, set()).add("alerts.yml")
    for panel_id, _, expr in dashboard_targets():
        for name in metric_names(expr):
            used.setdefault(name, set()).add(f"panel {panel_id}")
    return used


def test_the_whole_stack(stack_site):
    """One stack for both checks: starting it costs most of the time."""
    check_every_target_rule_and_metric(stack_site)
    check_a_worker_restart_does_not_make_the_heartbeat_alert_pending(stack_site)


def check_every_target_rule_and_metric(stack_site) -> None:
    stack, base = stack_site["stack"], stack_site["base"]
    assert get(base + "/") == 200
    assert urllib.request.urlopen(base + "/metrics", timeout=5).status == 200  # plain http: not redirected
    send_traffic(base, stack_site["workbooks"])

    # Every target up (the web answers Prometheus' plain-HTTP scrape despite SECURE_SSL_REDIRECT).
    def targets(details: bool = False):
        active = stack.api("targets")["activeTargets"]
        state = {t["labels"]["job"]: (t["health"], t.get("lastError", "")) for t in active}
        if details:
            return state
        return len(state) == 5 and all(health == "up" for health, _ in state.values())

    wait_for("every target up", targets)

    # Every rule evaluated, health ok.
    def rules(details: bool = False):
        found = {
            rule["name"]: (rule["health"], rule.get("lastError", ""), rule.get("lastEvaluation", ""))
            for group in stack.api("rules")["groups"]
            for rule in group["rules"]
        }
        if details:
            return found
        return len(found) == len(rule_exprs()) and all(
            health == "ok" and not evaluated.startswith("0001") for health, _, evaluated in found.values()
        )

    wait_for("every rule evaluated with health ok", rules)

    # Every metric name used by a rule or a panel returns data (the replicas' only where there are replicas).
    used = {name: where for name, where in used_metric_names().items() if name not in ONLY_WITH_REPLICAS}
    assert len(used) > 25

    def missing(details: bool = False):
        absent = [
            f"{name} (used by {sorted(where)})"
            for name, where in sorted(used.items())
            if not stack.api("query", query=f"count({name})")["result"]
        ]
        return absent if details else not absent

    wait_for("metric names with no data", missing, seconds=60, every=1)

    # Scrapes and probes are not traffic; the web job's 5xx series exist at zero, so the panel reads 0.
    scraped = stack.api(
        "query", query='django_http_responses_total_by_status_view_method_total{job="sigma-web"}'
    )
    views = {series["metric"]["view"] for series in scraped["result"]}
    assert "home" in views and not views & {"monitoring:metrics", "healthz", "readyz"}
    five_xx = stack.api(
        "query",
        query='sum(django_http_responses_total_by_status_view_method_total{job="sigma-web",status=~"5.."})',
    )
    assert float(five_xx["result"][0]["value"][1]) == 0
    panel = next(p for p in dashboard()["panels"] if p["title"].startswith("5xx error rate"))
    expr = panel["targets"][0]["expr"].replace("$__rate_interval", "1m")
    (value,) = stack.api("query", query=expr)["result"]
    assert float(value["value"][1]) == 0
    # The worker's series never carry the web job's label, and the heartbeat is current.
    heartbeat = stack.api("query", query="time() - max(sigma_celery_beat_heartbeat_timestamp_seconds)")
    assert float(heartbeat["result"][0]["value"][1]) < 30


def check_a_worker_restart_does_not_make_the_heartbeat_alert_pending(stack_site) -> None:
    stack, processes = stack_site["stack"], stack_site["processes"]

    def heartbeat_seen(details: bool = False):
        result = stack.api("query", query="sigma_celery_beat_heartbeat_timestamp_seconds")["result"]
        return result if details else bool(result)

    wait_for("a first heartbeat", heartbeat_seen)

    def alert_state() -> str:
        for alert in stack.api("alerts")["alerts"]:
            if alert["labels"]["alertname"] == "CeleryBeatHeartbeatMissing":
                return alert["state"]
        return "inactive"

    def quiet(details: bool = False):
        state = alert_state()
        return state if details else state == "inactive"

    wait_for("the heartbeat alert inactive with a worker running", quiet)
    # A normal restart: SIGTERM, the worker finishes and exits, a new one starts (its metrics directory is
    # emptied at start, so the gauge is gone until the next heartbeat) and the heartbeat comes back.
    stop_gracefully(processes["worker"])
    seen = set()
    down_until = time.monotonic() + 3
    while time.monotonic() < down_until:  # the target is down meanwhile
        seen.add(alert_state())
        time.sleep(0.5)
    processes["worker"] = start_worker(
        stack_site["worker_env"], stack_site["folder"], stack_site["celery_port"]
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        seen.add(alert_state())
        result = stack.api(
            "query",
            query='up{job="sigma-celery"} and on() count(sigma_celery_beat_heartbeat_timestamp_seconds)',
        )["result"]
        if result and float(result[0]["value"][1]) == 1:
            break
        time.sleep(0.5)
    else:
        pytest.fail("the restarted worker's heartbeat never came back")
    for _ in range(4):  # a few more evaluations after the heartbeat is back
        seen.add(alert_state())
        time.sleep(0.5)
    assert seen == {"inactive"}, seen
