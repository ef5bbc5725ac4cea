"""A one-line progress bar for long-running management commands (seed_demo, warm_cache)."""

from __future__ import annotations

import time
from typing import TextIO, cast

from django.core.management.base import OutputWrapper


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def command_stream(wrapper: OutputWrapper) -> TextIO:
    """The stream under a management command's ``self.stdout`` or ``self.stderr``, for a Progress.

    ``OutputWrapper.write`` ends every write with a newline and colours stderr on a terminal, which breaks a
    line redrawn in place with ``\r``.
    """
    # django-stubs types OutputWrapper's undeclared attributes as callables (its __getattr__).
    return cast(TextIO, wrapper._out)


class Progress:
    """A one-line progress bar: label, bar, done/total, rows per second, ETA.

    On a terminal the line is redrawn in place (``\\r``) at most every ``interval`` seconds; elsewhere (a
    log file, a test) a line is printed every 10% so the output stays readable.
    """

    WIDTH = 24

    def __init__(
        self, stream: TextIO | None, label: str, total: int, *, interval: float = 0.2, unit: str = "rows"
    ) -> None:
        self.stream, self.label, self.total, self.interval = stream, label, max(total, 0), interval
        self.unit = unit
        self.start = time.perf_counter()
        self.done = 0
        self._last_draw = 0.0
        self._last_decile = -1
        isatty = getattr(stream, "isatty", None)
        self.tty = bool(isatty and isatty())

    def line(self) -> str:
        elapsed = time.perf_counter() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        fraction = self.done / self.total if self.total else 1.0
        filled = int(self.WIDTH * fraction)
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        return (
            f"{self.label:<27} [{'#' * filled}{'.' * (self.WIDTH - filled)}] "
            f"{self.done:>11,}/{self.total:,} {fraction:6.1%}  {rate:>10,.0f} {self.unit}/s  "
            f"{'ETA ' + duration(eta) if self.done < self.total else 'in ' + duration(elapsed)}"
        )

    def update(self, done: int) -> None:
        self.done = done
        if self.stream is None:
            return
        now = time.perf_counter()
        if self.tty:
            if now - self._last_draw >= self.interval:
                self._last_draw = now
                self.stream.write("\r" + self.line())
                self.stream.flush()
        else:
            decile = int(10 * done / self.total) if self.total else 10
            if decile > self._last_decile and decile < 10:
                self._last_decile = decile
                self.stream.write(self.line() + "\n")

    def close(self) -> None:
        if self.stream is None:
            return
        self.stream.write(("\r" if self.tty else "") + self.line() + "\n")
        self.stream.flush()
