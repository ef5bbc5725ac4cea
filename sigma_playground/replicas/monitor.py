"""How far behind the primary each read replica is, measured by each process.

A background thread (started by the first request that could read a replica, or by ``/readyz``) measures
every replica every ``REPLICA_CHECK_SECONDS``, each in a thread of its own, so a replica that hangs delays
nobody: its last measurement just ages until it is past the bound. One measurement is two cheap queries:

1. on the primary, ``pg_current_wal_insert_lsn()``: the end of everything it has written so far (taken at
   time ``t0``, before the query);
2. on the replica, whether it is a standby (``pg_is_in_recovery()``), whether its replay position has passed
   that LSN, and how old the last transaction it replayed is
   (``clock_timestamp() - pg_last_xact_replay_timestamp()``).

From them, ``visible``: a time before which every commit on the primary is visible on the replica. If it has
replayed past the primary's position, everything committed before ``t0`` (an idle primary: the replay
timestamp is old, yet nothing is missing, so the lag is 0); otherwise the commit time of the last replayed
transaction. ``visible`` never goes back. The lag at any moment is ``now - visible``: it grows by itself
while a replica cannot be measured, so a stale measurement can never keep a replica in use. (Comparing the
replica's receive and replay positions alone would call a replica whose stream from the primary broke
"caught up": it has replayed everything it received. The primary's own position says what exists.)
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import threading
import time
from dataclasses import dataclass, replace

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

from sigma_playground.db_breaker import DatabaseUnavailable, breaker, is_outage
from sigma_playground.telemetry.instruments import DB_REPLICA_LAG, DB_REPLICA_UP

logger = logging.getLogger("sigma_playground.replicas")

PRIMARY_SQL = "SELECT pg_current_wal_insert_lsn()::text"
REPLICA_SQL = (
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn() >= %s::pg_lsn,"
    " EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8"
)
# Bump times and measurements are stamped by different hosts' clocks (NTP keeps them within milliseconds):
# a replica counts as having a write only if it is this far past it.
CLOCK_MARGIN_SECONDS = 0.1


@dataclass(frozen=True)
class ReplicaState:
    alias: str
    visible: float = -math.inf  # every commit on the primary before this time (time.time()) is on the replica
    measured_at: float = 0.0  # when the last measurement succeeded (0: never)
    error: str = ""  # why the last measurement failed; "" when it succeeded

    def lag(self, now: float | None = None) -> float:
        """Seconds behind the primary now (infinite when never measured)."""
        return max(0.0, (time.time() if now is None else now) - self.visible)

    def healthy(self, now: float | None = None) -> bool:
        """Measured, a standby, and within the lag bound."""
        return not self.error and self.lag(now) <= settings.REPLICA_MAX_LAG_SECONDS

    def has_writes_until(self, moment: float) -> bool:
        """Is everything committed before ``moment`` (a time.time() value) visible on it?"""
        return self.visible >= moment + CLOCK_MARGIN_SECONDS

    def describe(self, now: float | None = None) -> str:
        if self.error:
            return self.error
        if not self.measured_at:
            return "not measured yet"
        return f"{self.lag(now):.1f} s behind the primary"


class Monitor:
    """This process's view of the replicas."""

    def __init__(self) -> None:
        self._states: dict[str, ReplicaState] = {}
        self._checking: set[str] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._rotation = itertools.count()

    # --- state ---

    @staticmethod
    def aliases() -> list[str]:
        return list(settings.DATABASE_REPLICAS)

    def state(self, alias: str) -> ReplicaState:
        return self._states.get(alias) or ReplicaState(alias)

    def states(self) -> list[ReplicaState]:
        return [self.state(alias) for alias in self.aliases()]

    def usable(self, alias: str, now: float | None = None) -> bool:
        """May reads go to ``alias`` (whatever they need to see)?"""
        return not breaker(alias).is_open() and self.state(alias).healthy(now)

    def forget(self) -> None:
        """Drop every measurement (tests)."""
        with self._lock:
            self._states.clear()

    # --- choosing ---

    def pick(self, *, changed_at: float) -> tuple[str | None, str]:
        """A replica to read from that has every write committed before ``changed_at``, and the reason
        (a ``sigma_db_public_reads_total`` reason): ``(alias, "replica")``, or ``(None, why not)``."""
        self.ensure_started()
        aliases = self.aliases()
        if not aliases:
            return None, "unavailable"
        now = time.time()
        start = next(self._rotation)
        behind_a_write = False
        for offset in range(len(aliases)):
            alias = aliases[(start + offset) % len(aliases)]
            if not self.usable(alias, now):
                continue
            if not self.state(alias).has_writes_until(changed_at):
                behind_a_write = True
                continue
            if self._connect(alias):
                return alias, "replica"
        return None, "recent_write" if behind_a_write else "unavailable"

    @staticmethod
    def _connect(alias: str) -> bool:
        """Take the request's connection to ``alias`` now, waiting at most REPLICA_CONNECT_WAIT_SECONDS: a
        replica that went away since its last measurement costs this one attempt, then its breaker (tripped by
        the engine) keeps everyone off it. False: read from the primary instead."""
        from sigma_playground.postgresql.base import connect_wait

        connection = connections[alias]
        if connection.connection is not None:
            return True
        try:
            with connect_wait(settings.REPLICA_CONNECT_WAIT_SECONDS):
                connection.ensure_connection()
        except Exception as exc:
            # An outage trips the replica's breaker (one line per outage); a busy pool is only this request's.
            log = logger.warning if is_outage(exc) else logger.info
            log("replica %s: no connection (%s), reading from the primary", alias, type(exc).__name__)
            return False
        return True

    # --- measuring ---

    def ensure_started(self) -> None:
        """Start this process's measuring thread (once; again in a forked child)."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._loop, name="replica-monitor", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            try:
                for alias in self.aliases():
                    self._start_check(alias)
                self.publish()
            except Exception:  # the loop must outlive any bug in one round
                logger.exception("replica monitor: a round failed")
            time.sleep(settings.REPLICA_CHECK_SECONDS)

    def _start_check(self, alias: str) -> None:
        with self._lock:
            if alias in self._checking:  # the last one is still waiting on a hung server
                return
            self._checking.add(alias)
        threading.Thread(
            target=self._check_then_release, args=(alias,), name=f"replica-check-{alias}", daemon=True
        ).start()

    def _check_then_release(self, alias: str) -> None:
        try:
            self.check(alias)
        finally:
            with self._lock:
                self._checking.discard(alias)

    def refresh(self, *, max_age: float = 0.0) -> list[ReplicaState]:
        """Measure, in this thread, every replica whose last measurement is older than ``max_age`` seconds."""
        now = time.time()
        for alias in self.aliases():
            state = self.state(alias)
            if state.error or now - state.measured_at > max_age:
                self.check(alias)
        self.publish()
        return self.states()

    def check(self, alias: str) -> ReplicaState:
        """Measure ``alias`` now and remember the result (in this thread; both connections are returned to
        their pools afterwards)."""
        previous = self.state(alias)
        asked_primary = time.time()
        primary_lsn = self._primary_lsn()
        asked_replica = time.time()
        try:
            in_recovery, caught_up, behind = self._query(alias, REPLICA_SQL, [primary_lsn])
        except Exception as exc:
            if is_outage(exc) and not isinstance(exc, DatabaseUnavailable):
                breaker(alias).failed(exc)  # a statement on a connection the server dropped
            state = replace(previous, error=f"unreachable ({type(exc).__name__})")
        else:
            if not in_recovery:
                state = replace(previous, error="not a standby (promoted?)")
            else:
                candidates = [previous.visible]
                if caught_up:
                    candidates.append(asked_primary)
                if behind is not None:
                    candidates.append(asked_replica - max(0.0, float(behind)))
                state = ReplicaState(alias, visible=max(candidates), measured_at=time.time())
        self._remember(previous, state)
        return state

    def _primary_lsn(self) -> str | None:
        try:
            (lsn,) = self._query(DEFAULT_DB_ALIAS, PRIMARY_SQL, [])
        except Exception as exc:  # the replica's replay timestamp still says something
            logger.warning("replica monitor: the primary's WAL position is unknown (%s)", type(exc).__name__)
            return None
        return lsn

    @staticmethod
    def _query(alias: str, sql: str, params: list) -> tuple:
        from sigma_playground.postgresql.base import connect_wait

        connection = connections[alias]
        opened = connection.connection is None  # a request's own connection (diagnosis) stays open
        try:
            with connect_wait(settings.REPLICA_CONNECT_WAIT_SECONDS), connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchone()
        finally:
            if opened:
                connection.close()

    def _remember(self, previous: ReplicaState, state: ReplicaState) -> None:
        # Two measurements at once (the diagnosis and the thread): the horizon still never goes back.
        with self._lock:
            current = self._states.get(state.alias)
            if current is not None and current.visible > state.visible:
                state = replace(state, visible=current.visible)
            self._states[state.alias] = state
        was, now = previous.healthy(), state.healthy()
        if was and not now:
            logger.warning("replica %s left the rotation: %s", state.alias, state.describe())
        elif now and not was and previous.measured_at:
            logger.warning("replica %s is back in the rotation: %s", state.alias, state.describe())

    def publish(self) -> None:
        """Copy every replica's lag (aged to now) and usability into the gauges."""
        now = time.time()
        for state in self.states():
            if math.isfinite(state.visible):
                DB_REPLICA_LAG.set(state.lag(now), replica=state.alias)
            DB_REPLICA_UP.set(1 if self.usable(state.alias, now) else 0, replica=state.alias)

    # --- reporting ---

    def warnings(self) -> list[str]:
        """What /readyz warns about (never a failure: reads fall back to the primary). No queries."""
        aliases = self.aliases()
        if not aliases:
            return []
        self.ensure_started()
        out = []
        now = time.time()
        for state in self.states():
            if self.usable(state.alias, now) or not (state.measured_at or state.error):
                continue
            why = state.describe(now)
            if breaker(state.alias).is_open() and not state.error:
                why = "unreachable (circuit open)"
            bound = settings.REPLICA_MAX_LAG_SECONDS
            out.append(f"read replica {state.alias}: {why} (bound {bound:g} s); its reads go to the primary")
        if len(out) == len(aliases):
            out.append("no read replica is usable: the primary takes every read")
        return out

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._thread = None
        self._checking = set()


MONITOR = Monitor()
os.register_at_fork(after_in_child=MONITOR._after_fork)
