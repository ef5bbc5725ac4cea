"""Servers the fault suite owns: a PostgreSQL cluster and Redis servers on free ports in a temporary folder,
which it stops, pauses, kills and restarts, and removes afterwards. Never the shared ones."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import redis

from tests.monitoring.helpers import free_port


def _pg_bin() -> Path:
    """PG_BIN, or the newest Debian PostgreSQL server's binaries."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    assert found, "the fault suite needs PostgreSQL's server binaries (initdb, pg_ctl): set PG_BIN"
    return found[-1].parent


def _as_postgres(cmd: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: as root (CI), run them as the postgres user."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class PostgresCluster:
    """initdb + pg_ctl from PG_BIN, in its own folder, listening on 127.0.0.1:<free port> (trust auth).

    ``settings``: extra server settings (``-c name=value``) for every start. ``standby_of(primary)`` makes a
    streaming replica of another cluster instead of an empty one (pg_basebackup -R)."""

    def __init__(self, *, settings: dict[str, str] | None = None, _initdb: bool = True) -> None:
        self.bin = _pg_bin()
        self.dir = Path(tempfile.mkdtemp(prefix="sigma-faults-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.settings = dict(settings or {})
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        self.dir.chmod(0o755)
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/sigma_faults"
        if not _initdb:
            return
        subprocess.run(
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
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )

    @classmethod
    def standby_of(cls, primary: PostgresCluster) -> PostgresCluster:
        """A hot standby streaming from ``primary`` (running, with wal_level replica and wal senders, as
        ``REPLICATION_SETTINGS``; initdb's pg_hba.conf already lets local replication connections in with
        trust): pg_basebackup -R copies the data and writes primary_conninfo and standby.signal."""
        standby = cls(settings=primary.settings, _initdb=False)
        subprocess.run(
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
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        return standby

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        options += "".join(f" -c {name}={value}" for name, value in self.settings.items())
        subprocess.run(
            _as_postgres(
                [
                    str(self.bin / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.dir / "log"),
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
        subprocess.run(
            _as_postgres(
                [str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"]
            ),
            check=True,
            capture_output=True,
        )

    def create_database(self) -> None:
        with psycopg.connect(f"postgres://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE sigma_faults")

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.url, connect_timeout=5, autocommit=True) as conn:
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description is not None else []

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# What a primary needs for pg_basebackup and a streaming standby (PostgreSQL 15's defaults, stated).
REPLICATION_SETTINGS = {"wal_level": "replica", "max_wal_senders": "5", "hot_standby": "on"}


class RedisServer:
    """redis-server on 127.0.0.1:<free port>, its files in a temporary folder."""

    def __init__(self, name: str, *options: str) -> None:
        self.name = name
        self.dir = Path(tempfile.mkdtemp(prefix=f"sigma-faults-{name}-"))
        self.port = free_port()
        self.options = list(options)
        self.process: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(port=self.port, db=db, socket_timeout=5)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--save",
                "",
                *self.options,
            ],
            stdout=(self.dir / "log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client().ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, f"redis {self.name} did not start"
                time.sleep(0.05)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def pause(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def remove(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
