"""PgBouncer for real: deploy/pgbouncer/pgbouncer.ini filled in and run from a run folder, stopped by its pid.

``python deploy/pgbouncer.py test [pytest arguments]`` (``make test-pgbouncer``, and .ci/run) runs the
PostgreSQL + Redis test suite through a PgBouncer in transaction mode on a spare port:

1. the test database (``test_<PGBOUNCER_TEST_DATABASE>``, default ``test_sigma_pgbouncer``; and the database
   itself, which stays empty) is made directly on the server, with the settings a production role carries
   (``ALTER ROLE ... SET`` there, ``ALTER DATABASE`` here: the server's role is shared), because PgBouncer
   holds server connections to it and Django could neither drop an old copy nor, at the end, its own;
2. PgBouncer starts in a temporary folder (as ``postgres`` when run by root: PgBouncer refuses root);
3. pytest runs with ``DATABASE_POOLER=pgbouncer``, ``DATABASE_URL`` at PgBouncer and ``--reuse-db`` (the
   database exists, empty: Django migrates it through PgBouncer);
4. PgBouncer is stopped by its pid and both databases dropped.

Environment: ``REDIS_URL`` (required, as for ``make test``), ``PGBOUNCER_SERVER_URL``
(postgres://postgres@127.0.0.1:5432), ``PGBOUNCER_TEST_DATABASE`` (sigma_pgbouncer), ``PGBOUNCER_PORT`` (a
free one). Standard library and psycopg only: nothing here imports Django.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deploy import edge

ROOT = edge.ROOT
TEMPLATE = ROOT / "deploy" / "pgbouncer" / "pgbouncer.ini"
PGBOUNCER = "/usr/sbin/pgbouncer"
# What a production role carries (docs/operations.md, "PgBouncer"), the values settings.py sets per connection
# without PgBouncer: DB_STATEMENT_TIMEOUT_MS, DB_IDLE_IN_TRANSACTION_TIMEOUT_MS, jit off; and TimeZone UTC, which
# spares Django a SET TIME ZONE on every new connection.
ROLE_SETTINGS = {
    "statement_timeout": "30s",
    "idle_in_transaction_session_timeout": "60s",
    "jit": "off",
    "timezone": "UTC",
}


def render(
    *,
    run_dir: Path,
    listen_port: int,
    server_host: str = "127.0.0.1",
    server_port: int = 5432,
    databases: str | None = None,
    users: tuple[str, ...] = ("postgres",),
    auth_type: str = "trust",
    pool_size: int = 20,
    max_db_connections: int = 40,
    max_client_conn: int = 500,
    query_wait_timeout: int = 10,
) -> str:
    """pgbouncer.ini for 127.0.0.1:``listen_port``; by default any database name maps to the same name on
    ``server_host``:``server_port``."""
    return edge.fill(
        TEMPLATE.read_text(),
        {
            "DATABASES": databases or f"* = host={server_host} port={server_port}",
            "LISTEN_ADDR": "127.0.0.1",
            "LISTEN_PORT": str(listen_port),
            "UNIX_SOCKET_DIR": "",
            "RUN_DIR": str(run_dir),
            "AUTH_TYPE": auth_type,
            "ADMIN_USERS": ", ".join(users),
            "POOL_SIZE": str(pool_size),
            "MAX_DB_CONNECTIONS": str(max_db_connections),
            "MAX_CLIENT_CONN": str(max_client_conn),
            "QUERY_WAIT_TIMEOUT": str(query_wait_timeout),
        },
    )


def start(run_dir: Path, *, port: int | None = None, **options: object) -> edge.Server:
    """PgBouncer in the foreground with its config, log and pid file in ``run_dir``; stop it with .stop()."""
    if not os.access(PGBOUNCER, os.X_OK):
        raise RuntimeError("PgBouncer is missing: apt-get install -y pgbouncer")
    run_dir.mkdir(parents=True, exist_ok=True)
    port = port or edge.free_port()
    users = tuple(options.get("users", ("postgres",)))  # type: ignore[arg-type]
    conf = run_dir / "pgbouncer.ini"
    conf.write_text(render(run_dir=run_dir, listen_port=port, **options))  # type: ignore[arg-type]
    # trust: no password is checked, but the user must be listed.
    (run_dir / "userlist.txt").write_text("".join(f'"{user}" ""\n' for user in users))
    argv = [PGBOUNCER]
    if os.geteuid() == 0:  # PgBouncer will not run as root; it switches to -u after reading its files
        account = pwd.getpwnam("postgres")
        for path in (run_dir, *run_dir.iterdir()):
            os.chown(path, account.pw_uid, account.pw_gid)
        argv += ["-u", "postgres"]
    process = subprocess.Popen(  # noqa: S603 (fixed argv)
        [*argv, str(conf)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=(run_dir / "pgbouncer-stderr.log").open("wb"),
        start_new_session=True,
    )
    server = edge.Server("pgbouncer", port, process, run_dir, run_dir / "pgbouncer.log")
    try:
        edge.wait_for_port(port, process, "pgbouncer")
    except RuntimeError as exc:
        server.stop()
        raise RuntimeError(f"{exc}\n{server.log_tail()}") from None
    return server


def _server_connection(server_url: str):
    import psycopg

    parts = urlsplit(server_url)
    return psycopg.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password or None,
        dbname="postgres",
        autocommit=True,
        connect_timeout=5,
    )


def recreate_database(server_url: str, name: str) -> None:
    """Drop and create ``name`` directly on the server, with the role's settings (ROLE_SETTINGS)."""
    from psycopg import sql

    with _server_connection(server_url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        for setting, value in ROLE_SETTINGS.items():
            conn.execute(
                sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                    sql.Identifier(name), sql.Identifier(setting), sql.Literal(value)
                )
            )


def drop_database(server_url: str, name: str) -> None:
    from psycopg import sql

    with _server_connection(server_url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def run_tests(pytest_args: list[str]) -> int:
    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url:
        sys.exit("[pgbouncer] set REDIS_URL (redis://...): the suite runs on PostgreSQL and Redis")
    server_url = os.environ.get("PGBOUNCER_SERVER_URL") or "postgres://postgres@127.0.0.1:5432"
    database = os.environ.get("PGBOUNCER_TEST_DATABASE") or "sigma_pgbouncer"
    parts = urlsplit(server_url)
    user = parts.username or "postgres"
    test_database = f"test_{database}"
    # The database itself stays empty (the suite works in test_<name>), but DATABASE_URL names it, as CI's
    # sigma_playground for `make test`: whatever connects to it between the tests finds it.
    for name in (database, test_database):
        recreate_database(server_url, name)
    run_dir = Path(tempfile.mkdtemp(prefix="sigma-pgbouncer-"))
    server = None
    try:
        server = start(
            run_dir,
            port=int(os.environ.get("PGBOUNCER_PORT") or 0) or None,
            server_host=parts.hostname or "127.0.0.1",
            server_port=parts.port or 5432,
            users=(user,),
        )
        print(
            f"[pgbouncer] pid {server.process.pid} on 127.0.0.1:{server.port} (transaction mode), {run_dir}"
        )
        password = f":{parts.password}" if parts.password else ""
        env = {
            **os.environ,
            "DATABASE_URL": f"postgres://{user}{password}@127.0.0.1:{server.port}/{database}",
            "DATABASE_POOLER": "pgbouncer",
            "REQUIRE_SERVICES": "1",
        }
        # Behind PgBouncer these are refused in production mode and do nothing otherwise.
        for name in ("DB_POOL_MIN_SIZE", "DB_POOL_MAX_SIZE", "DB_POOL_TIMEOUT"):
            env.pop(name, None)
        argv = [sys.executable, "-m", "pytest", "--reuse-db", *pytest_args]
        print(f"[pgbouncer] {' '.join(argv[1:])}", flush=True)
        result = subprocess.run(argv, cwd=ROOT, env=env, check=False)  # noqa: S603 (our own argv)
        if result.returncode != 0:
            print(f"[pgbouncer] log tail:\n{server.log_tail(40)}")
        return result.returncode
    finally:
        if server is not None:
            server.stop()
            print(f"[pgbouncer] stopped pid {server.process.pid}")
        for name in (database, test_database):
            drop_database(server_url, name)
        shutil.rmtree(run_dir, ignore_errors=True)


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "test":
        sys.exit(__doc__)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop PgBouncer and drop the database on TERM
    return run_tests(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
