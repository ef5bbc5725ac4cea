"""``ENGINE = "sigma_playground.postgresql"``: Django's PostgreSQL backend and its psycopg pool, with two changes.

- Asking for a connection first asks the breaker (``sigma_playground.db_breaker``): while it is open,
  ``DatabaseUnavailable`` is raised without touching the pool.
- Waiting for a pooled connection stops as soon as the pool's own attempt to connect has failed, instead of
  after the pool timeout: a pool that *cannot* connect is an outage, answered at once; a pool that is merely
  busy is still waited for, up to the pool timeout. When the breaker trips, the pool is discarded (its
  reconnect attempts back off for minutes); the probe request builds a new one, whose first connection
  attempt says at once whether the server is back.

Each alias (the primary ``default``, read replicas ``replica_0``...) has its own pool and its own breaker,
and every database error raised through the wrapper carries its alias (``db_breaker.alias_of``), so an
outage is charged to the database it happened on.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import ClassVar

from django.db.backends.base.base import NO_DB_ALIAS
from django.db.backends.postgresql import base
from django.db.utils import DEFAULT_DB_ALIAS, DatabaseErrorWrapper
from django.utils.functional import cached_property
from psycopg import Connection
from psycopg_pool import ConnectionPool, PoolTimeout

from sigma_playground.db_breaker import ALIAS_ATTRIBUTE, BREAKER, Breaker, breaker, is_outage

_WAIT_SLICE = 0.1  # how often a waiting request looks for a failed connection attempt
_RECENT_ERROR = 1.0  # a connection attempt that failed this recently means the server is unreachable
_limits = threading.local()


@contextmanager
def connect_wait(seconds: float):
    """Wait at most ``seconds`` for a connection in this block (readiness checks answer within a second)."""
    previous = getattr(_limits, "wait", None)
    _limits.wait = seconds
    try:
        yield
    finally:
        _limits.wait = previous


class _BreakerPool(ConnectionPool):
    last_error = float("-inf")  # monotonic time of the last failed connection attempt

    def _connect(self, timeout: float | None = None):
        try:
            return super()._connect(timeout)
        except Exception:
            self.last_error = time.monotonic()
            raise

    def getconn(self, timeout: float | None = None):
        total = self.timeout if timeout is None else timeout
        limit = getattr(_limits, "wait", None)
        if limit is not None:
            total = min(total, limit)
        started = time.monotonic()
        deadline = started + total
        while True:
            try:
                return super().getconn(timeout=max(0.001, min(_WAIT_SLICE, deadline - time.monotonic())))
            except PoolTimeout:
                if self.last_error > started - _RECENT_ERROR:
                    raise PoolTimeout("cannot connect: the pool's connection attempts are failing") from None
                if time.monotonic() >= deadline:
                    raise PoolTimeout(f"couldn't get a connection after {total:.2f} sec") from None


class _AliasErrorWrapper(DatabaseErrorWrapper):
    """Django's error translation, plus the alias on whatever leaves it."""

    wrapper: base.DatabaseWrapper  # set by Django's __init__; django-stubs does not declare it

    def __exit__(self, exc_type, exc_value, traceback):
        try:
            super().__exit__(exc_type, exc_value, traceback)
        except Exception as exc:
            setattr(exc, ALIAS_ATTRIBUTE, self.wrapper.alias)
            raise
        if isinstance(exc_value, Exception):  # not translated (our own DatabaseUnavailable): tag it as is
            setattr(exc_value, ALIAS_ATTRIBUTE, self.wrapper.alias)


_hooked: set[str] = set()
_hooked_lock = threading.Lock()


def _breaker_of(alias: str) -> Breaker:
    """The alias's breaker, with the hook that discards the alias's pool when it trips."""
    found = breaker(alias)
    if alias not in _hooked:
        with _hooked_lock:
            if alias not in _hooked:
                if alias != DEFAULT_DB_ALIAS:  # the primary's hook is added below, at import
                    found.on_trip.append(functools.partial(_discard_pool, alias))
                _hooked.add(alias)
    return found


class DatabaseWrapper(base.DatabaseWrapper):
    # Django's own (5.2), which django-stubs does not declare: the process's pools by alias, and the setup
    # every new connection gets.
    _connection_pools: ClassVar[dict[str, ConnectionPool]]
    _configure_connection: Callable[[Connection], None]

    @cached_property
    def wrap_database_errors(self) -> DatabaseErrorWrapper:
        return _AliasErrorWrapper(self)

    @property
    def pool(self):
        """Django's pool property (5.2), building a _BreakerPool."""
        pool_options = self.settings_dict["OPTIONS"].get("pool")
        if self.alias == NO_DB_ALIAS or not pool_options:
            return None
        if self.alias not in self._connection_pools:
            connect_kwargs = self.get_connection_params()
            connect_kwargs["autocommit"] = True
            checks = self.settings_dict["CONN_HEALTH_CHECKS"]
            pool = _BreakerPool(
                kwargs=connect_kwargs,
                open=False,
                configure=self._configure_connection,
                check=ConnectionPool.check_connection if checks else None,
                **({} if pool_options is True else pool_options),
            )
            self._connection_pools.setdefault(self.alias, pool)
        return self._connection_pools[self.alias]

    def get_new_connection(self, conn_params):
        circuit = _breaker_of(self.alias)
        circuit.before_connect()
        probing = circuit.is_open()
        try:
            connection = super().get_new_connection(conn_params)
            if probing:
                try:
                    _probe(connection)
                except Exception:
                    connection.close()
                    raise
        except Exception as exc:
            if is_outage(exc):
                circuit.failed(exc)
            raise
        circuit.succeeded()
        return connection


def _probe(connection) -> None:
    """The probe's connection opened; a statement says whether the server is back. Behind PgBouncer
    (DATABASE_POOLER=pgbouncer) the pooler accepts connections with PostgreSQL gone, so an open connection
    alone would close the breaker for one request's worth of failures at a time."""
    connection.execute("SELECT 1")
    if not connection.autocommit:
        connection.rollback()  # Django sets autocommit next, which needs an idle connection


def _discard_pool(alias: str = DEFAULT_DB_ALIAS) -> None:
    """Drop the process's pool; connections out of it are closed when returned. Closed in a thread: closing
    joins the pool's workers, which may be inside a connection attempt."""
    pool = DatabaseWrapper._connection_pools.pop(alias, None)  # Django's class attribute, shared
    if pool is not None:
        threading.Thread(target=pool.close, kwargs={"timeout": 1.0}, daemon=True).start()


BREAKER.on_trip.append(_discard_pool)
