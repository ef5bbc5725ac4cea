"""``make stack``: the whole site as deployed, on this machine, from one command.

Varnish (the CDN) -> nginx (the origin proxy) -> gunicorn, plus a Celery worker (every queue) and beat, on
PostgreSQL and Redis (DATABASE_URL and REDIS_URL must be set). Configurations are generated from deploy/nginx/nginx.conf
and deploy/varnish/default.vcl into the run folder (.run/stack/, emptied at start) with the ports below;
logs, pid files and temp files live there too. It migrates, loads the demo data (idempotent), collects
static files, starts everything, prints the URLs and waits; Ctrl-C (or SIGTERM, or any process dying)
stops them all by pid.

Ports (environment): STACK_CDN_PORT (8080, the site), STACK_NGINX_PORT (8081), STACK_GUNICORN_PORT (8082),
CELERY_METRICS_PORT (9808).

``WEB_INSTANCES=N`` (default 1) runs N gunicorn masters, as N web machines would, on STACK_GUNICORN_PORT and
the N - 1 ports after it, each with its own metrics folder, all behind nginx's upstream. They share nothing
but PostgreSQL and Redis: sessions, CSRF tokens, page generations and purges work across them (docs/scaling.md).

nginx's admission control is on: ``ORIGIN_MAX_IN_FLIGHT`` costly requests per instance (default
``edge.default_max_in_flight``: 1.5 per core shared by the instances, at least 2; 0 turns it off).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deploy import edge

ROOT = edge.ROOT
RUN = ROOT / ".run" / "stack"
PY = sys.executable
# One worker for every queue of settings.WORKER_QUEUES (tests/test_worker_queues.py keeps the two equal);
# production runs one per queue (README "Celery").
WORKER_QUEUES = "celery,counters,media,reports"


def say(message: str) -> None:
    print(f"[stack] {message}", flush=True)


def port(name: str, default: int, *, hint: str = "") -> int:
    value = int((os.environ.get(name) if name else None) or default)
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", value))
        except OSError:
            sys.exit(f"[stack] port {value} is in use: {hint or f'set {name} to a free port'}")
    return value


def web_name(index: int, instances: int) -> str:
    return "gunicorn" if instances == 1 else f"gunicorn-{index + 1}"


def web_metrics_dir(index: int) -> Path:
    return RUN / ("prometheus-web" if index == 0 else f"prometheus-web-{index + 1}")


def main() -> int:
    if not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
        sys.exit(
            "[stack] set DATABASE_URL (postgres://...) and REDIS_URL (redis://...): the stack runs on both"
        )
    missing = edge.missing_packages()
    if missing:
        sys.exit(f"[stack] missing Debian packages: apt-get install -y {' '.join(missing)}")
    cdn_port, nginx_port = port("STACK_CDN_PORT", 8080), port("STACK_NGINX_PORT", 8081)
    instances = int(os.environ.get("WEB_INSTANCES") or 1)
    if instances < 1:
        sys.exit("[stack] WEB_INSTANCES must be 1 or more")
    gunicorn_port = port("STACK_GUNICORN_PORT", 8082)
    hint = f"WEB_INSTANCES={instances} needs the {instances} ports from STACK_GUNICORN_PORT free"
    web_ports = [gunicorn_port, *(port("", gunicorn_port + i, hint=hint) for i in range(1, instances))]
    metrics_port = port("CELERY_METRICS_PORT", 9808)
    if RUN.exists():
        subprocess.run(["rm", "-rf", str(RUN)], check=True)  # noqa: S603, S607
    for sub in ("prometheus-celery", "static", *(web_metrics_dir(i).name for i in range(instances))):
        (RUN / sub).mkdir(parents=True)
    env = {
        **os.environ,
        "DEBUG": os.environ.get("DEBUG", "0"),
        "STATIC_ROOT": str(RUN / "static"),
        "CDN_PURGE_BACKEND": "varnish",
        "CDN_VARNISH_URLS": f"http://127.0.0.1:{cdn_port}",
        # nginx is the only peer whose X-Forwarded-For the site believes (issue 13's setting).
        "TRUSTED_PROXY_NETWORKS": "127.0.0.1/32",
        # nginx stamps X-Request-Start on every request: queue time and shedding (sigma_playground/queue_time.py).
        "REQUEST_START_TRUSTED": "1",
        "PYTHONUNBUFFERED": "1",
    }
    manage = [PY, "manage.py"]
    for step in (["migrate", "--no-input", "-v0"], ["seed_demo"], ["collectstatic", "--no-input", "-v0"]):
        say(" ".join(["manage.py", *step]))
        subprocess.run([*manage, *step], cwd=ROOT, env=env, check=True)  # noqa: S603

    processes: list[tuple[str, subprocess.Popen]] = []
    servers: list[edge.Server] = []

    def spawn(name: str, argv: list[str], extra: dict[str, str]) -> None:
        log = (RUN / f"{name}.log").open("wb")
        processes.append(
            (
                name,
                subprocess.Popen(  # noqa: S603 (fixed argv)
                    argv,
                    cwd=ROOT,
                    env={**env, **extra},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                ),
            )
        )

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        for index, web_port in enumerate(web_ports):
            spawn(
                web_name(index, instances),
                [PY, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "sigma_playground.wsgi"],
                {
                    "GUNICORN_BIND": f"127.0.0.1:{web_port}",
                    "PROMETHEUS_MULTIPROC_DIR": str(web_metrics_dir(index)),
                },
            )
        spawn(
            "worker",
            [
                PY,
                "-m",
                "celery",
                "-A",
                "sigma_playground",
                "worker",
                "-Q",
                WORKER_QUEUES,
                "--loglevel=INFO",
                "--concurrency=2",
            ],
            {
                "PROMETHEUS_MULTIPROC_DIR": str(RUN / "prometheus-celery"),
                "CELERY_METRICS_PORT": str(metrics_port),
            },
        )
        spawn(
            "beat",
            [
                PY,
                "-m",
                "celery",
                "-A",
                "sigma_playground",
                "beat",
                "--loglevel=INFO",
                "-s",
                str(RUN / "beat-schedule"),
            ],
            {},
        )
        for (name, process), web_port in zip(processes, web_ports, strict=False):
            edge.wait_for_port(web_port, process, name, seconds=60)
        servers.append(
            edge.start_nginx(
                RUN / "nginx",
                port=nginx_port,
                upstream=[f"127.0.0.1:{web_port}" for web_port in web_ports],
                static_root=RUN / "static",
                media_root=Path(os.environ.get("MEDIA_ROOT") or ROOT / "media"),
                origin_max_in_flight=int(
                    os.environ.get("ORIGIN_MAX_IN_FLIGHT")
                    or edge.default_max_in_flight(instances=len(web_ports))
                ),
            )
        )
        servers.append(edge.start_varnish(RUN / "varnish", port=cdn_port, origin_port=nginx_port))
        say("running (Ctrl-C stops everything):")
        say(f"  site, through the CDN:  http://127.0.0.1:{cdn_port}/   (Varnish: X-Cache, Age)")
        say(f"  nginx (origin proxy):   http://127.0.0.1:{nginx_port}/")
        for index, web_port in enumerate(web_ports):
            say(f"  {web_name(index, instances) + ':':<24}http://127.0.0.1:{web_port}/   (/metrics)")
        say(f"  Celery worker metrics:  http://127.0.0.1:{metrics_port}/metrics")
        say(f"  configs and logs:       {RUN}")
        say(f"  try: .venv/bin/python manage.py cdn status http://127.0.0.1:{cdn_port}/")
        while not stopping:
            for name, process in processes:
                if process.poll() is not None:
                    say(f"{name} exited with {process.returncode}; see {RUN / (name + '.log')}")
                    return 1
            for server in servers:
                if server.process.poll() is not None:
                    say(f"{server.name} exited; see {server.log_path}")
                    return 1
            time.sleep(0.5)
        return 0
    finally:
        say("stopping")
        for server in reversed(servers):
            server.stop()
        for _, process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, process in reversed(processes):
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
            say(f"{name} stopped")


if __name__ == "__main__":
    sys.exit(main())
