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

``REPLICAS=N`` (default 0) runs the stack on a PostgreSQL of its own instead of DATABASE_URL (the shared
server is never touched): a primary cluster made with initdb (deploy/pg_cluster.py, PostgreSQL's durable
defaults, pg_stat_statements loaded) on STACK_PG_PORT (5440), migrated and seeded, and N hot standbys of it
made with ``pg_basebackup -R`` on the ports after it. Every process gets ``DATABASE_URL`` (the primary) and
``DATABASE_REPLICA_URLS`` (the standbys): the public pages read the standbys (docs/scaling.md, "Read
replicas"). The URLs are printed and written to the run folder's ``databases.json`` (``make loadtest`` needs
the primary's as its DATABASE_URL). ``STACK_SEED_WORKBOOKS=N`` adds N bulk workbooks (and N / 10 users) to the
demo data. The clusters live in temporary folders, removed at the stop; their logs are copied into the run
folder first.

``STACK_RUN_DIR`` replaces .run/stack (a test's own folder).

nginx's admission control is on: ``ORIGIN_MAX_IN_FLIGHT`` costly requests per instance (default
``edge.default_max_in_flight``: 1.5 per core shared by the instances, at least 2; 0 turns it off).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deploy import edge
from deploy.pg_cluster import REPLICATION_SETTINGS, PostgresCluster, wait_caught_up

ROOT = edge.ROOT
RUN = Path(os.environ.get("STACK_RUN_DIR") or ROOT / ".run" / "stack")
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


def make_primary(clusters: list[PostgresCluster], *, replicas: int) -> PostgresCluster:
    """The stack's own primary, started, with its database and pg_stat_statements (how docs/scaling.md
    measures the replicas' share of the statements)."""
    primary_port = port("STACK_PG_PORT", 5440)
    hint = f"REPLICAS={replicas} needs the {replicas} ports after STACK_PG_PORT free"
    for offset in range(1, replicas + 1):
        port("", primary_port + offset, hint=hint)
    primary = PostgresCluster(
        settings={
            **REPLICATION_SETTINGS,
            "max_wal_senders": str(replicas + 5),
            "shared_preload_libraries": "pg_stat_statements",
            # Each web and Celery process keeps a pool per alias (docs/operations.md, "Database connections").
            "max_connections": "300",
        },
        port=primary_port,
        database="sigma_stack",
        durable=True,
        prefix="sigma-stack-pg-",
    )
    clusters.append(primary)
    say(f"PostgreSQL primary: initdb in {primary.dir}, port {primary.port}")
    primary.start()
    primary.create_database()
    primary.query("CREATE EXTENSION pg_stat_statements")
    return primary


def make_standbys(clusters: list[PostgresCluster], primary: PostgresCluster, *, replicas: int) -> None:
    for offset in range(1, replicas + 1):
        say(f"PostgreSQL replica {offset}: pg_basebackup -R from the primary, port {primary.port + offset}")
        standby = PostgresCluster.standby_of(primary, port=primary.port + offset)
        clusters.append(standby)
        standby.start()
    for standby in clusters[1:]:
        wait_caught_up(primary, standby, seconds=120)
        if standby.query("SELECT pg_is_in_recovery()")[0][0] is not True:
            raise RuntimeError(f"the cluster on port {standby.port} is not a standby")


def remove_databases(clusters: list[PostgresCluster]) -> None:
    """Stop and delete the stack's clusters (standbys first), keeping each log in the run folder."""
    for index, cluster in reversed(list(enumerate(clusters))):
        name = "postgres-primary" if index == 0 else f"postgres-replica-{index}"
        try:
            cluster.stop()
        except subprocess.CalledProcessError as exc:
            say(f"{name}: pg_ctl stop failed ({exc.stderr!r}); removing its folder anyway")
        if cluster.log.exists():
            shutil.copyfile(cluster.log, RUN / f"{name}.log")
        cluster.remove()
        say(f"{name} stopped and removed")


def main() -> int:
    replicas = int(os.environ.get("REPLICAS") or 0)
    if replicas < 0:
        sys.exit("[stack] REPLICAS must be 0 or more")
    if not os.environ.get("REDIS_URL") or not (replicas or os.environ.get("DATABASE_URL")):
        sys.exit(
            "[stack] set REDIS_URL (redis://...) and DATABASE_URL (postgres://...): the stack runs on both "
            "(with REPLICAS=N it makes its own PostgreSQL and ignores DATABASE_URL)"
        )
    seed_workbooks = int(os.environ.get("STACK_SEED_WORKBOOKS") or 0)
    if seed_workbooks and not replicas:
        sys.exit(
            "[stack] STACK_SEED_WORKBOOKS adds workbooks at every start: only with REPLICAS, whose database "
            "is new each time (for DATABASE_URL, run seed_demo --workbooks N once yourself)"
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

    processes: list[tuple[str, subprocess.Popen]] = []
    servers: list[edge.Server] = []
    clusters: list[PostgresCluster] = []
    stopping = running = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        if not running:  # still setting up (initdb, migrate, seed...): unwind through the finally below
            raise SystemExit(128 + signum)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

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

    try:
        if replicas:
            primary = make_primary(clusters, replicas=replicas)
            env["DATABASE_URL"] = primary.url
        manage = [PY, "manage.py"]
        steps = [["migrate", "--no-input", "-v0"], ["seed_demo"]]
        if seed_workbooks:
            steps.append(
                ["seed_demo", "--workbooks", str(seed_workbooks), "--users", str(seed_workbooks // 10)]
            )
        for step in (*steps, ["collectstatic", "--no-input", "-v0"]):
            say(" ".join(["manage.py", *step]))
            subprocess.run([*manage, *step], cwd=ROOT, env=env, check=True)  # noqa: S603
        if replicas:
            make_standbys(clusters, primary, replicas=replicas)
            env["DATABASE_REPLICA_URLS"] = ",".join(standby.url for standby in clusters[1:])
            (RUN / "databases.json").write_text(
                json.dumps({"primary": primary.url, "replicas": [c.url for c in clusters[1:]]}, indent=2)
                + "\n"
            )
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
        running = True
        say("running (Ctrl-C stops everything):")
        say(f"  site, through the CDN:  http://127.0.0.1:{cdn_port}/   (Varnish: X-Cache, Age)")
        say(f"  nginx (origin proxy):   http://127.0.0.1:{nginx_port}/")
        for index, web_port in enumerate(web_ports):
            say(f"  {web_name(index, instances) + ':':<24}http://127.0.0.1:{web_port}/   (/metrics)")
        say(f"  Celery worker metrics:  http://127.0.0.1:{metrics_port}/metrics")
        if replicas:
            say(f"  PostgreSQL primary:     {clusters[0].url}")
            for index, standby in enumerate(clusters[1:]):
                say(f"  replica_{index} (standby):   {standby.url}")
            say(f"  for make loadtest:      export DATABASE_URL={clusters[0].url}")
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
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
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
        remove_databases(clusters)


if __name__ == "__main__":
    sys.exit(main())
