"""Behind a real PgBouncer in transaction mode (DATABASE_POOLER=pgbouncer): the database circuit breaker still
tells an outage from a bad query, and the site recovers when the server comes back.

The test's own PgBouncer (deploy/pgbouncer.py, from deploy/pgbouncer/pgbouncer.ini) reaches the test database
through a TCP relay in this process, which the test cuts and restores to make the server "go away" and
come back, without touching the shared PostgreSQL. The whole suite through PgBouncer is `make test-pgbouncer`.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest
from django.db import OperationalError, connection

from deploy import pgbouncer
from sigma_playground import db_breaker

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

QUERY_WAIT_TIMEOUT = 2  # seconds: the template's 10, shortened for the test


class Relay:
    """127.0.0.1:<port> forwarded to ``target``; ``cut()`` closes the listener and every connection (the
    server is gone: refused at once), ``restore()`` listens again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = pgbouncer.edge.free_port()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None

    def restore(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() below; close() alone would not
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while True:
                readable, _, _ = select.select(list(peers), [], [], 1.0)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for sock in peers:
                sock.close()


@pytest.fixture
def bouncer():
    if not os.access(pgbouncer.PGBOUNCER, os.X_OK):
        pytest.fail("PgBouncer is missing: apt-get install -y pgbouncer (.ci/run does)")
    db = connection.settings_dict
    relay = Relay((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)))
    relay.restore()
    # Not under tmp_path: as root, PgBouncer runs as postgres, who cannot enter pytest's private folders.
    run_dir = Path(tempfile.mkdtemp(prefix="sigma-pgbouncer-test-"))
    server = None
    try:
        server = pgbouncer.start(
            run_dir,
            databases=f"* = host=127.0.0.1 port={relay.port}",
            users=(db["USER"] or "postgres",),
            query_wait_timeout=QUERY_WAIT_TIMEOUT,
        )
        yield server, relay
    finally:
        if server is not None:
            server.stop()
        relay.cut()
        shutil.rmtree(run_dir, ignore_errors=True)


def _wrapper(port: int):
    """A connection as settings.py configures one behind PgBouncer (DATABASE_POOLER=pgbouncer)."""
    from sigma_playground.postgresql.base import DatabaseWrapper

    params = {**connection.settings_dict, "HOST": "127.0.0.1", "PORT": str(port), "CONN_MAX_AGE": 0}
    options = {k: v for k, v in params["OPTIONS"].items() if k not in {"pool", "options"}}
    params["OPTIONS"] = {**options, "prepare_threshold": None}
    params["DISABLE_SERVER_SIDE_CURSORS"] = True
    return DatabaseWrapper(params, alias="pgbouncer_test")


def _query(port: int) -> tuple[float, BaseException | None]:
    wrapper = _wrapper(port)
    started = time.perf_counter()
    try:
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return time.perf_counter() - started, None
    except OperationalError as exc:
        return time.perf_counter() - started, exc
    finally:
        wrapper.close()


def test_an_outage_behind_pgbouncer_trips_the_breaker_and_a_bad_query_does_not(bouncer, settings):
    server, relay = bouncer
    settings.DB_BREAKER_SECONDS = 0.5
    # The wrapper's own alias has its own breaker (issue 20: one per database alias).
    circuit = db_breaker.breaker("pgbouncer_test")
    circuit.reset()
    assert _query(server.port) == (pytest.approx(0, abs=5), None)

    # A bad query through PgBouncer is not an outage.
    wrapper = _wrapper(server.port)
    try:
        with pytest.raises(Exception) as bad, wrapper.cursor() as cursor:
            cursor.execute("SELECT 1 / 0")
    finally:
        wrapper.close()
    assert not db_breaker.is_outage(bad.value)

    relay.cut()  # PostgreSQL is gone; PgBouncer still answers
    first, error = _query(server.port)
    assert error is not None and db_breaker.is_outage(error), error
    assert db_breaker.alias_of(error) == "pgbouncer_test"
    circuit.failed(error)  # what DatabaseUnavailableMiddleware does with it
    probes = []
    for _ in range(3):
        with pytest.raises(db_breaker.DatabaseUnavailable):
            _wrapper(server.port).ensure_connection()  # the breaker answers without trying
        time.sleep(0.6)
        # The probe: PgBouncer accepts the connection, the probe's statement fails at once ("server login has
        # been failing") and the breaker stays open: an open connection is not a server that is back.
        took, error = _query(server.port)
        assert error is not None and db_breaker.is_outage(error), error
        assert circuit.is_open()
        probes.append(took)
    print(
        f"behind PgBouncer, server gone: first query failed after {first:.2f} s "
        f"(query_wait_timeout {QUERY_WAIT_TIMEOUT} s), probes failed after {', '.join(f'{t:.2f}' for t in probes)} s"
    )
    assert first < QUERY_WAIT_TIMEOUT + 5
    assert max(probes) < 1.0

    relay.restore()
    time.sleep(1.2)  # PgBouncer's server_login_retry
    deadline = time.monotonic() + 10
    while True:
        time.sleep(0.6)
        took, error = _query(server.port)
        if error is None:
            break
        assert time.monotonic() < deadline, f"still failing after the server came back: {error}"
    assert not circuit.is_open()  # the probe's success closed it
