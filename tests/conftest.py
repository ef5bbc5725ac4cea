"""Shared fixtures.

Tests that need PostgreSQL or Redis carry the ``postgres`` / ``redis`` markers. On the embedded defaults
(no DATABASE_URL / REDIS_URL) they are deselected and the summary says how many and why. With
``REQUIRE_SERVICES=1`` (CI) a missing or unreachable service stops the run as a failure: never a skip.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import re

import pytest
from django.conf import settings
from django.core.cache import caches
from django.test import Client
from django.utils.module_loading import import_string

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES", "") == "1"
SERVICE_MARKERS = ("postgres", "redis")


def configured_services() -> dict[str, bool]:
    return {
        "postgres": settings.DATABASES["default"]["ENGINE"]
        in ("django.db.backends.postgresql", "sigma_playground.postgresql"),
        "redis": settings.CACHES["default"]["BACKEND"] == "django_redis.cache.RedisCache",
    }


def _unreachable() -> list[str]:
    problems = []
    if configured_services()["postgres"]:
        import psycopg

        db = settings.DATABASES["default"]
        try:
            psycopg.connect(
                host=db["HOST"],
                port=db["PORT"] or 5432,
                user=db["USER"],
                password=db["PASSWORD"] or None,
                dbname="postgres",
                connect_timeout=3,
            ).close()
        except Exception as exc:
            problems.append(f"PostgreSQL at {db['HOST']}:{db['PORT']}: {exc}")
    if configured_services()["redis"]:
        import redis

        try:
            redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3).ping()
        except Exception as exc:
            problems.append(f"Redis at {settings.REDIS_URL}: {exc}")
    return problems


def pytest_sessionstart(session: pytest.Session) -> None:
    if not REQUIRE_SERVICES:
        return
    missing = [name for name, ok in configured_services().items() if not ok]
    if missing:
        raise pytest.UsageError(
            f"REQUIRE_SERVICES=1 but {', '.join(missing)} is not configured: set DATABASE_URL and REDIS_URL."
        )
    problems = _unreachable()
    if problems:
        raise pytest.UsageError("REQUIRE_SERVICES=1 but a service is unreachable: " + "; ".join(problems))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    available = configured_services()
    # The fault suite (tests/faults) runs only when asked for with -m faults (.ci/run does, once).
    faults_asked = "faults" in (config.option.markexpr or "")
    keep, drop, faults = [], [], []
    for item in items:
        needs = [m for m in SERVICE_MARKERS if item.get_closest_marker(m)]
        if item.get_closest_marker("faults") is not None and not faults_asked:
            faults.append(item)
        else:
            (drop if any(not available[m] for m in needs) else keep).append(item)
    if drop or faults:
        config.hook.pytest_deselected(items=[*drop, *faults])
        items[:] = keep
        config.stash[_deselected_key] = len(drop)


_deselected_key = pytest.StashKey[int]()


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    count = config.stash.get(_deselected_key, 0)
    if count:
        terminalreporter.write_line(
            f"{count} tests need PostgreSQL or Redis and were not run: set DATABASE_URL and REDIS_URL "
            "(and REQUIRE_SERVICES=1 to make a missing service a failure).",
            yellow=True,
        )


@pytest.fixture(autouse=True)
def _test_settings(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PRIVATE_MEDIA_ROOT = tmp_path / "private_media"
    settings.STATIC_ROOT = tmp_path / "static"
    settings.STATIC_ROOT.mkdir()
    # The manifest storage needs collectstatic; tests/test_static.py covers it on its own.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        "private": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "private_media"), "base_url": None},
        },
    }
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Page caching is off unless a test turns it on (tests/caching): tests that change rows through factories
    # (which bypass the services, and so the invalidation) must not read pages cached before the change.
    settings.PAGE_CACHE_ENABLED = False
    # Metrics are published as they are recorded, so a test can read them at once; tests/monitoring/
    # test_batched.py covers the batch.
    settings.METRICS_BATCH_SECONDS = 0
    # Whatever a gunicorn on this host left in the default web metrics directory is not this test's traffic.
    settings.PROMETHEUS_WEB_MULTIPROC_DIR = str(tmp_path / "no-web-metrics")
    yield


# Tests that depend on the clock (days, hours, counting windows, freshness, due times) run from this moment,
# set with time-machine, never from the real clock: midday UTC, 5 s past the hour (and past the start of any
# window of up to an hour), so no boundary that a test could cross while it runs falls within its first hour.
CLOCK_START = dt.datetime(2026, 3, 10, 12, 0, 5, tzinfo=dt.UTC)


@pytest.fixture
def clock(time_machine):
    """The clock at CLOCK_START and ticking on from there; ``clock.shift(seconds)`` moves it. List it before
    the fixtures that make rows, so their timestamps come from it too."""
    time_machine.move_to(CLOCK_START, tick=True)
    return time_machine


@pytest.fixture
def frozen_clock(time_machine):
    """The clock stopped at CLOCK_START: only ``frozen_clock.shift(seconds)`` moves it. For freshness and
    due times that a slow, loaded machine must not age while the test runs."""
    time_machine.move_to(CLOCK_START, tick=False)
    return time_machine


@pytest.fixture(autouse=True, scope="session")
def _celery_eager():
    """Tasks run in-process in tests, even with a Redis broker configured; the integration test that
    starts a real worker turns this off for itself."""
    from sigma_playground.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield


@pytest.fixture(autouse=True)
def _not_a_celery_worker():
    """A test that runs a worker in this process (celery.contrib.testing) sends worker_init, which marks the
    process a Celery worker (monitoring.web_metrics then won't read its registry as the site's); the worker
    is gone when the test ends, and so is the mark."""
    from sigma_playground.telemetry import process

    yield
    process.mark_celery_worker(False)


@pytest.fixture(autouse=True)
def _clear_caches():
    from sigma_playground import db_breaker
    from sigma_playground.caching import service
    from workbooks import counters

    db_breaker.reset_all()  # a test that made a database look unreachable must not fail the next ones
    counters.discard_process_views()  # views a test left unsent must not land in the next test's Redis
    service.RECENT_PAGES.clear()
    yield
    counters.discard_process_views()
    service.RECENT_PAGES.clear()
    for alias in settings.CACHES:
        caches[alias].clear()


# --- Browsing as a user would: forms with CSRF enforced -------------------------------------------------

_CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class BrowserClient(Client):
    """A test client that enforces CSRF and posts forms the way a browser does: GET the page, take the
    token from the rendered form, POST it back."""

    def __init__(self, **kwargs):
        super().__init__(enforce_csrf_checks=True, **kwargs)

    def csrf_token_from(self, url: str) -> str:
        response = self.get(url)
        assert response.status_code == 200, f"GET {url} gave {response.status_code}"
        match = _CSRF_RE.search(response.content.decode())
        assert match, f"no CSRF token in the form at {url}"
        return match.group(1)

    def submit(self, url: str, data: dict | None = None, *, form_url: str | None = None, **kwargs):
        token = self.csrf_token_from(form_url or url)
        return self.post(url, {**(data or {}), "csrfmiddlewaretoken": token}, **kwargs)


@pytest.fixture
def browser() -> BrowserClient:
    return BrowserClient()


@pytest.fixture
def user(db):
    from tests.factories import UserFactory

    return UserFactory()


@pytest.fixture
def staff_user(db):
    from tests.factories import UserFactory

    return UserFactory(is_staff=True, is_superuser=True)


@pytest.fixture
def logged_in(browser, user) -> BrowserClient:
    browser.force_login(user)
    return browser


class _Lines:
    def __init__(self, buffer: io.StringIO, handler: logging.Handler):
        self.buffer, self.handler = buffer, handler

    def __call__(self) -> list[dict]:
        return [json.loads(line) for line in self.buffer.getvalue().splitlines()]

    def reattach(self) -> None:
        """Starting a Celery worker runs django.setup(), which reconfigures logging from scratch."""
        root = logging.getLogger()
        if self.handler not in root.handlers:
            root.addHandler(self.handler)
        root.setLevel(logging.INFO)


@pytest.fixture
def json_log():
    """A handler built from production's LOGGING entries (JSON formatter, request-id filter) on the root
    logger, writing to a buffer; yields a function returning the parsed lines."""
    formatter = import_string(settings.LOGGING["formatters"]["json"]["()"])()
    request_filter = import_string(settings.LOGGING["filters"]["request_id"]["()"])()
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(formatter)
    handler.addFilter(request_filter)
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    lines = _Lines(buffer, handler)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
