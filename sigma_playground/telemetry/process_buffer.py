"""Work a web process batches in memory and hands on from a daemon thread, every few tenths of a second.

A request that only adds to an in-process buffer does no I/O: view counts (workbooks/counters.py) and the
request metrics of cached pages (telemetry/batched.py) are collected this way. Each buffer owns one daemon
thread per process, started by the first addition in that process (a gunicorn worker forked from a master that
imported the module starts its own), and hands its contents on when the process exits normally.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

State = TypeVar("State")

_NAP_SECONDS = 0.1  # short naps: a changed interval takes effect at once


class ProcessBuffer(Generic[State]):
    """Subclasses say what the buffer holds (``empty``), how often it is handed on (``interval``) and where
    to (``deliver``); callers change the state inside ``with buffer.updating() as state``."""

    thread_name = "process-buffer"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = self.empty()
        self._pid = 0  # the process that owns the state and the thread
        os.register_at_fork(after_in_child=self._after_fork)
        atexit.register(self.flush)

    def empty(self) -> State:
        raise NotImplementedError

    def interval(self) -> float:
        raise NotImplementedError

    def deliver(self, state: State) -> None:
        raise NotImplementedError

    def after_delivery(self) -> None:
        """Runs in the thread after each delivery (e.g. to close the thread's database connection)."""

    @contextmanager
    def updating(self) -> Iterator[State]:
        with self._lock:
            yield self._claim()

    def _claim(self) -> State:
        """This process's state; call with ``self._lock`` held (hot paths use the lock directly: a context
        manager costs more than what they add). A forked child starts afresh, with its own thread."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._state = self.empty()
            threading.Thread(target=self._run, name=self.thread_name, daemon=True).start()
        return self._state

    def drain(self) -> State:
        with self._lock:
            state, self._state = self._state, self.empty()
        return state

    def flush(self) -> None:
        self.deliver(self.drain())

    def _after_fork(self) -> None:
        # A lock held by a parent thread at the fork would never be released in the child.
        self._lock = threading.Lock()

    def _run(self) -> None:
        pid, delivered = os.getpid(), time.monotonic()
        while self._pid == pid:
            time.sleep(_NAP_SECONDS)
            if time.monotonic() - delivered < self.interval():
                continue
            delivered = time.monotonic()
            try:
                self.flush()
            except Exception:  # the thread must outlive any one failure
                logger.exception("%s: delivery failed", self.thread_name)
            finally:
                self.after_delivery()
