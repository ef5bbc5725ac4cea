"""The monitoring stack, locally: Prometheus with the project's config and rules, node-exporter,
postgres-exporter and redis-exporter, scraping the local site (``make monitoring``).

Debian's packages (``apt-get install prometheus prometheus-node-exporter prometheus-postgres-exporter
prometheus-redis-exporter``) provide the binaries. Everything runs in the foreground on 127.0.0.1, in one
folder (``--dir``), and stops on Ctrl-C. The Prometheus config is deploy/prometheus/prometheus.yml with its
targets pointed at this machine (same job names, so the rules and the dashboard work unchanged), the rules
are deploy/prometheus/alerts.yml, and no Alertmanager is configured (alerts show on Prometheus' /alerts).

tests/monitoring/test_monitoring_stack.py starts the same stack (through :class:`Stack`) with gunicorn, a
Celery worker and beat, and checks it through Prometheus' HTTP API.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parent
PROMETHEUS_YML = DEPLOY / "prometheus" / "prometheus.yml"
RULES = DEPLOY / "prometheus" / "alerts.yml"

BINARIES = {
    "prometheus": "prometheus",
    "node": "prometheus-node-exporter",
    "postgres": "prometheus-postgres-exporter",
    "redis": "prometheus-redis-exporter",
}
PACKAGES = {
    "prometheus": "prometheus",
    "node": "prometheus-node-exporter",
    "postgres": "prometheus-postgres-exporter",
    "redis": "prometheus-redis-exporter",
}


def missing_binaries() -> list[str]:
    """The Debian packages whose binary is not on PATH."""
    return [PACKAGES[key] for key, binary in BINARIES.items() if shutil.which(binary) is None]


@dataclass
class Targets:
    """host:port of everything Prometheus scrapes, keyed by the job names of prometheus.yml."""

    web: str  # gunicorn or runserver, /metrics; several web instances: host:port,host:port
    celery: str  # the worker's CELERY_METRICS_PORT
    node: str
    postgres: str
    redis: str

    def by_job(self) -> dict[str, str]:
        return {
            "sigma-web": self.web,
            "sigma-celery": self.celery,
            "node": self.node,
            "postgres": self.postgres,
            "redis": self.redis,
        }


def prometheus_config(targets: Targets, *, scrape_interval: str, evaluation_interval: str) -> dict:
    """deploy/prometheus/prometheus.yml with its targets pointed here and the rules by absolute path."""
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    config["global"] = {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval}
    config["rule_files"] = [str(RULES)]
    config.pop("alerting", None)
    by_job = targets.by_job()
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    if jobs != set(by_job):
        raise ValueError(f"prometheus.yml jobs {sorted(jobs)} are not the stack's {sorted(by_job)}")
    for job in config["scrape_configs"]:
        # One target per instance: each series carries its instance label, and the rules and the dashboard
        # aggregate over it (sum by the labels they show), so N instances read as one site.
        job["static_configs"] = [{"targets": by_job[job["job_name"]].split(",")}]
        job["scrape_timeout"] = scrape_interval if _seconds(scrape_interval) < 10 else "10s"
    return config


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for unit in ("ms", "s", "m", "h"):
        if duration.endswith(unit):
            return float(duration[: -len(unit)]) * units[unit]
    return float(duration)


def postgres_dsn(database_url: str) -> str:
    """postgres-exporter's DATA_SOURCE_NAME from DATABASE_URL (libpq URL; no TLS on a local server)."""
    parts = urllib.parse.urlsplit(database_url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    query.setdefault("sslmode", "disable")
    return urllib.parse.urlunsplit(
        ("postgresql", parts.netloc, parts.path, urllib.parse.urlencode(query), "")
    )


def redis_server(redis_url: str) -> str:
    """redis-exporter's --redis.addr: the server, not a database (INFO and the keyspace are server-wide)."""
    parts = urllib.parse.urlsplit(redis_url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "", "", ""))


@dataclass
class Ports:
    prometheus: int
    node: int
    postgres: int
    redis: int


def commands(
    ports: Ports, folder: Path, *, database_url: str, redis_url: str
) -> dict[str, tuple[list, dict]]:
    """What each part runs: (argv, extra environment)."""
    listen = "--web.listen-address=127.0.0.1:{}".format
    return {
        # The default collectors; cpu, meminfo and filesystem feed the rules and the dashboard.
        "node": ([BINARIES["node"], listen(ports.node)], {}),
        # Needs a role that can read pg_stat_database, pg_stat_activity and pg_settings (pg_monitor).
        "postgres": (
            [BINARIES["postgres"], listen(ports.postgres)],
            {"DATA_SOURCE_NAME": postgres_dsn(database_url)},
        ),
        # Reads INFO (keyspace hits/misses, memory) of the whole server: the broker's databases included.
        "redis": ([BINARIES["redis"], listen(ports.redis), f"--redis.addr={redis_server(redis_url)}"], {}),
        "prometheus": (
            [
                BINARIES["prometheus"],
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'data'}",
                "--storage.tsdb.retention.time=2d",
                listen(ports.prometheus),
            ],
            {},
        ),
    }


@dataclass
class Stack:
    """The exporters and Prometheus as child processes, logs in ``folder``; stopped by their pids."""

    folder: Path
    ports: Ports
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.prometheus}"

    def start(
        self,
        *,
        web: str,
        celery: str,
        database_url: str,
        redis_url: str,
        scrape_interval: str = "15s",
        evaluation_interval: str = "15s",
    ) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        targets = Targets(
            web=web,
            celery=celery,
            node=f"127.0.0.1:{self.ports.node}",
            postgres=f"127.0.0.1:{self.ports.postgres}",
            redis=f"127.0.0.1:{self.ports.redis}",
        )
        config = prometheus_config(
            targets, scrape_interval=scrape_interval, evaluation_interval=evaluation_interval
        )
        (self.folder / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        parts = commands(self.ports, self.folder, database_url=database_url, redis_url=redis_url)
        for name in ("node", "postgres", "redis", "prometheus"):
            argv, extra = parts[name]
            log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process in stop())
            self.processes[name] = subprocess.Popen(  # noqa: S603 (our argv, Debian's binaries)
                argv,
                cwd=self.folder,
                env={**os.environ, **extra},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            log.close()
        self.wait_ready()

    def wait_ready(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while True:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited ({process.returncode}):\n{self.log(name)}")
            try:
                with urllib.request.urlopen(f"{self.prometheus_url}/-/ready", timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Prometheus was not ready in {seconds:.0f} s:\n{self.log('prometheus')}")
            time.sleep(0.2)

    def log(self, name: str) -> str:
        path = self.folder / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()

    def api(self, path: str, **params: str) -> dict:
        """GET Prometheus' HTTP API; returns its ``data``."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.prometheus_url}/api/v1/{path}{query}", timeout=10) as response:  # noqa: S310
            body = json.loads(response.read())
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus API {path}: {body}")
        return body["data"]


@contextmanager
def running(stack: Stack, **start: str) -> Iterator[Stack]:
    try:
        stack.start(**start)
        yield stack
    finally:
        stack.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--web", default="127.0.0.1:8000", help="the site's host:port (/metrics); comma-separated for several"
    )
    parser.add_argument("--celery", default="127.0.0.1:9808", help="the worker's CELERY_METRICS_PORT")
    parser.add_argument("--dir", default=".run/monitoring", help="config, data and logs")
    parser.add_argument("--prometheus-port", type=int, default=9090)
    parser.add_argument("--node-port", type=int, default=9100)
    parser.add_argument("--postgres-port", type=int, default=9187)
    parser.add_argument("--redis-port", type=int, default=9121)
    parser.add_argument("--scrape-interval", default="15s")
    args = parser.parse_args(argv)
    missing = missing_binaries()
    if missing:
        print(f"missing: apt-get install {' '.join(missing)}", file=sys.stderr)
        return 2
    database_url = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/sigma_playground"
    redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    stack = Stack(
        Path(args.dir).resolve(),
        Ports(args.prometheus_port, args.node_port, args.postgres_port, args.redis_port),
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with running(
        stack,
        web=args.web,
        celery=args.celery,
        database_url=database_url,
        redis_url=redis_url,
        scrape_interval=args.scrape_interval,
        evaluation_interval=args.scrape_interval,
    ):
        print(f"Prometheus {stack.prometheus_url} (targets: /targets, rules: /rules, alerts: /alerts)")
        print(f"  scraping the site at {args.web}, the worker at {args.celery},")
        print(f"  node-exporter :{args.node_port}, postgres-exporter :{args.postgres_port} ({database_url}),")
        print(f"  redis-exporter :{args.redis_port} ({redis_server(redis_url)}); logs in {stack.folder}")
        print("Ctrl-C stops everything.")
        try:
            while all(p.poll() is None for p in stack.processes.values()):
                time.sleep(1)
        except KeyboardInterrupt:
            return 0
        dead = [name for name, p in stack.processes.items() if p.poll() is not None]
        print(f"{', '.join(dead)} exited; see {stack.folder}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
