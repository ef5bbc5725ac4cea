"""A PostgreSQL cluster of our own: initdb and pg_ctl from the server's binaries, in its own folder, on a
port of 127.0.0.1 (trust authentication), and hot standbys of it made with ``pg_basebackup -R``.

Used by ``make stack REPLICAS=N`` (deploy/stack.py), the fault suite (tests/faults) and the replica tests
(tests/replicas/test_streaming.py). Never the shared server: each cluster is made, started, stopped and
removed here, by its own data directory. As root (CI containers) the server runs as the ``postgres`` user,
since initdb and postgres refuse root. Standard library and psycopg only: nothing here imports Django.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from deploy.edge import free_port

# What a primary needs for pg_basebackup and a streaming standby (PostgreSQL 15's defaults, stated).
REPLICATION_SETTINGS = {"wal_level": "replica", "max_wal_senders": "5", "hot_standby": "on"}
# For a throwaway cluster whose data nobody needs after a crash: no flush to disk at all.
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def pg_bin() -> Path:
    """PG_BIN, or the newest Debian PostgreSQL server's binaries."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise RuntimeError(
            "PostgreSQL's server binaries (initdb, pg_ctl, pg_basebackup) were not found under "
            "/usr/lib/postgresql: install Debian's postgresql package or set PG_BIN"
        )
    return found[-1].parent


def _as_postgres(cmd: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: as root, run them as the postgres user."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class PostgresCluster:
    """initdb + pg_ctl from PG_BIN, in its own temporary folder, listening on 127.0.0.1:``port`` (a free one
    by default) with trust authentication.

    ``settings``: extra server settings (``-c name=value``) for every start, after the defaults (so they win).
    ``durable``: False (tests) turns fsync, synchronous commit and full-page writes off; True keeps
    PostgreSQL's own defaults, as a real server runs (``make stack``, whose figures are compared with ones
    measured on the shared server). ``database``: the name :meth:`create_database` makes and :attr:`url`
    points at. ``standby_of(primary)`` makes a streaming replica of another cluster instead of an empty one.
    """

    def __init__(
        self,
        *,
        settings: dict[str, str] | None = None,
        port: int | None = None,
        database: str = "sigma_faults",
        durable: bool = False,
        prefix: str = "sigma-faults-pg-",
        _initdb: bool = True,
    ) -> None:
        self.bin = pg_bin()
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.data = self.dir / "data"
        self.log = self.dir / "log"
        self.port = port or free_port()
        self.settings = dict(settings or {})
        self.database = database
        self.durable = durable
        self.prefix = prefix
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        self.dir.chmod(0o755)
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/{database}"
        if not _initdb:
            return
        subprocess.run(  # noqa: S603 (fixed argv)
            _as_postgres(
                [
                    str(self.bin / "initdb"),
                    "-D",
                    str(self.data),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    *([] if durable else ["--no-sync"]),
                ]
            ),
            check=True,
            capture_output=True,
        )

    @classmethod
    def standby_of(cls, primary: PostgresCluster, *, port: int | None = None) -> PostgresCluster:
        """A hot standby streaming from ``primary`` (running, with wal_level replica and wal senders, as
        ``REPLICATION_SETTINGS``; initdb's pg_hba.conf already lets local replication connections in with
        trust): pg_basebackup -R copies the data and writes primary_conninfo and standby.signal. Same
        settings, database name and durability as the primary; not started."""
        standby = cls(
            settings=primary.settings,
            port=port,
            database=primary.database,
            durable=primary.durable,
            prefix=primary.prefix,
            _initdb=False,
        )
        subprocess.run(  # noqa: S603 (fixed argv)
            _as_postgres(
                [
                    str(standby.bin / "pg_basebackup"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(primary.port),
                    "-U",
                    "postgres",
                    "-D",
                    str(standby.data),
                    "-R",  # standby.signal + primary_conninfo
                    "-X",
                    "stream",
                    "--checkpoint=fast",
                    *([] if primary.durable else ["--no-sync"]),
                ]
            ),
            check=True,
            capture_output=True,
            timeout=600,
        )
        return standby

    def start(self) -> None:
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.dir),
            "max_connections": "100",
            **({} if self.durable else FAST_SETTINGS),
            **self.settings,
        }
        options = f"-p {self.port}" + "".join(f" -c {name}={value}" for name, value in settings.items())
        subprocess.run(  # noqa: S603 (fixed argv)
            _as_postgres(
                [
                    str(self.bin / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(  # noqa: S603 (fixed argv)
            _as_postgres(
                [str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"]
            ),
            check=True,
            capture_output=True,
        )

    def create_database(self) -> None:
        with psycopg.connect(f"postgres://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.url, connect_timeout=5, autocommit=True) as conn:
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description is not None else []

    def remove(self) -> None:
        """Stop it (if it runs) and delete its folder."""
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def caught_up(primary: PostgresCluster, standby: PostgresCluster) -> bool:
    """The standby has replayed everything the primary had written when asked."""
    (lsn,) = primary.query("SELECT pg_current_wal_insert_lsn()::text")[0]
    return bool(standby.query("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))[0][0])


def wait_caught_up(primary: PostgresCluster, standby: PostgresCluster, *, seconds: float = 60) -> float:
    """Seconds until the standby has replayed the primary's WAL as of now; RuntimeError after ``seconds``."""
    started = time.monotonic()
    while not caught_up(primary, standby):
        if time.monotonic() - started > seconds:
            raise RuntimeError(f"the standby on port {standby.port} did not catch up within {seconds:.0f} s")
        time.sleep(0.1)
    return time.monotonic() - started
