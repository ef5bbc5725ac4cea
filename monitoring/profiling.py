"""The design's profiler: a context manager and a decorator.

Each profiled section records its wall time, the calling thread's CPU time (user and system, from
``getrusage(RUSAGE_THREAD)`` so other requests on other threads don't count) and the change of the process's
resident memory into histograms labelled by the section's name, and logs one debug line. Names are chosen in
code; the label set holds at most 200 of them (see ``instruments.PROFILE_NAMES``). Memory is process-wide:
with several threads busy the delta is only a hint.

    with profile("workbooks.home_sections") as result:
        ...
    result.duration_s

    @profiled()                      # name: module.qualname
    def expensive(): ...
"""

from __future__ import annotations

import functools
import inspect
import logging
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import psutil

from monitoring import instruments

logger = logging.getLogger(__name__)

_RUSAGE = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)
_PROCESS = psutil.Process()

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class ProfileResult:
    name: str
    duration_s: float = 0.0
    cpu_user_s: float = 0.0
    cpu_system_s: float = 0.0
    memory_delta_bytes: int = 0


@contextmanager
def profile(name: str) -> Iterator[ProfileResult]:
    """Profile the block; the yielded result is filled in when the block ends (also when it raises)."""
    result = ProfileResult(name=name)
    rss_before = _PROCESS.memory_info().rss
    usage_before = resource.getrusage(_RUSAGE)
    started = time.perf_counter()
    try:
        yield result
    finally:
        result.duration_s = time.perf_counter() - started
        usage_after = resource.getrusage(_RUSAGE)
        result.cpu_user_s = max(0.0, usage_after.ru_utime - usage_before.ru_utime)
        result.cpu_system_s = max(0.0, usage_after.ru_stime - usage_before.ru_stime)
        result.memory_delta_bytes = _PROCESS.memory_info().rss - rss_before
        _record(result)


def _record(result: ProfileResult) -> None:
    instruments.PROFILE_SECONDS.observe(result.duration_s, name=result.name)
    instruments.PROFILE_CPU_SECONDS.observe(result.cpu_user_s, name=result.name, mode="user")
    instruments.PROFILE_CPU_SECONDS.observe(result.cpu_system_s, name=result.name, mode="system")
    instruments.PROFILE_MEMORY_DELTA.observe(result.memory_delta_bytes, name=result.name)
    logger.debug(
        "profile %s: %.1f ms wall, %.1f ms user, %.1f ms system, %+d KiB RSS",
        result.name,
        result.duration_s * 1000,
        result.cpu_user_s * 1000,
        result.cpu_system_s * 1000,
        result.memory_delta_bytes // 1024,
        extra={
            "profile": result.name,
            "duration_ms": round(result.duration_s * 1000, 3),
            "cpu_user_ms": round(result.cpu_user_s * 1000, 3),
            "cpu_system_ms": round(result.cpu_system_s * 1000, 3),
            "memory_delta_bytes": result.memory_delta_bytes,
        },
    )


def profiled(name: str | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a function (or coroutine function) to profile every call."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        section = name or f"{func.__module__}.{func.__qualname__}".lower()
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs):
                with profile(section):
                    return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with profile(section):
                return func(*args, **kwargs)

        return wrapper

    return decorate
