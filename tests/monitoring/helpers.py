"""Helpers shared by the monitoring tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families


def monitoring_stack():
    """deploy/monitoring_stack.py (a script beside the deploy configs, not a package), imported by path."""
    import importlib.util

    name = "sigma_monitoring_stack"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "deploy" / "monitoring_stack.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


ROOT = Path(__file__).resolve().parents[2]
GUNICORN_CONFIG = ROOT / "deploy" / "gunicorn.conf.py"
DASHBOARD = ROOT / "deploy" / "grafana" / "sigma-playground.json"


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_targets() -> list[tuple[int, str, str]]:
    targets = []
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            targets.append((panel["id"], target["refId"], target["expr"]))
    return targets


def fetch(url: str, *, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


@dataclass
class Fetched:
    status: int
    headers: dict[str, str]
    body: bytes


def fetch_response(url: str, *, headers: dict[str, str] | None = None, timeout: float = 5) -> Fetched:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return Fetched(response.status, dict(response.headers.items()), response.read())


def wait_until_serving(url: str, process: subprocess.Popen, what: str, *, seconds: float = 60) -> None:
    """Poll ``url`` until it answers; fail with the process's output if it dies or never answers.

    Each poll waits up to 30 s for its answer: a request sent while a worker is still booting is served once
    it is up, so giving up on it early and asking again would add requests the tests count (on a loaded
    machine the first answer can take several seconds)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            # A long timeout: with reuse_port a connection can queue on a worker that is still booting; a
            # short one would give up and retry, and the abandoned request would still be served (and
            # counted) once the worker is up.
            fetch(url, timeout=max(2.0, deadline - time.monotonic()))
            return
        except OSError:
            if process.poll() is not None:
                stream = process.stderr or process.stdout
                raise AssertionError(f"{what} exited: {stream.read() if stream else ''}") from None
            assert time.monotonic() < deadline, f"{what} did not start"
            time.sleep(0.2)


def start_gunicorn(env: dict[str, str], *, port: int) -> subprocess.Popen:
    """deploy/gunicorn.conf.py serving the site on 127.0.0.1:``port``, with ``env`` over this environment."""
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONFIG), "sigma_playground.wsgi"],
        cwd=ROOT,
        env={**os.environ, "GUNICORN_BIND": f"127.0.0.1:{port}", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop_gracefully(process: subprocess.Popen) -> None:
    """SIGTERM, as a deploy would: gunicorn or Celery workers finish and run their exit hooks; killed only
    after 30 s. Closes the process's pipes."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for stream in (process.stdout, process.stderr):
        if stream:
            stream.close()


@contextmanager
def gunicorn_serving(
    env: dict[str, str], *, path: str = "/healthz"
) -> Iterator[tuple[str, subprocess.Popen]]:
    """The site under deploy/gunicorn.conf.py on a free port: yields its base URL (once ``path`` answers)
    and the master process, and stops it gracefully afterwards."""
    port = free_port()
    process = start_gunicorn(env, port=port)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base + path, process, "gunicorn")
        yield base, process
    finally:
        stop_gracefully(process)


def services_env(*, redis_url: str, metrics_dir: Path) -> dict[str, str]:
    """Environment for a gunicorn serving the test database and Redis: two workers, a small pool each (none
    behind PgBouncer, where production mode refuses pool sizes: `make test-pgbouncer`)."""
    from django.conf import settings
    from django.db import connections

    db = connections["default"].settings_dict
    env = {
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": redis_url,
        "WEB_CONCURRENCY": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    if settings.DATABASE_POOLER != "pgbouncer":
        env.update({"DB_POOL_MIN_SIZE": "1", "DB_POOL_MAX_SIZE": "2"})
    return env


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    """A sample's current value in this process's registry (0 when it doesn't exist yet)."""
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def scrape(text: str) -> dict[str, list]:
    """Exposition text -> {sample name: [Sample, ...]}."""
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, []).append(s)
    return samples


@dataclass
class FakePrometheus:
    """Prometheus's instant-query API (``/api/v1/query``) on a free local port: a query gets the value of the
    first ``answers`` key it contains, as a one-sample vector, or an empty vector. ``queries`` records what was
    asked. Tests point PROMETHEUS_URL at ``url``."""

    answers: dict[str, str] = field(default_factory=dict)
    queries: list[str] = field(default_factory=list)
    url: str = ""

    def answer(self, query: str) -> bytes:
        self.queries.append(query)
        value = next((v for key, v in self.answers.items() if key in query), None)
        result = [] if value is None else [{"metric": {}, "value": [time.time(), value]}]
        return json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()


@contextmanager
def serve_fake_prometheus() -> Iterator[FakePrometheus]:
    fake = FakePrometheus()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = fake.answer(parse_qs(urlsplit(self.path).query)["query"][0])
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
