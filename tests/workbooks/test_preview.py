"""Previews taken from the embed: a real Celery worker on the `media` queue drives Debian's chromium against the
local fake Sigma server (tests/fake_sigma.py). A chart page becomes a thumbnail with its derivatives; a page
that never loads is abandoned at the time limit and leaves the generated preview. Plus the rules (no
browser in a web process, uploads win, link changes and weekly refreshes) without a worker."""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from PIL import Image

from tests import images
from tests.factories import UserFactory, WorkbookFactory
from tests.fake_sigma import FakeSigma
from workbooks import services, tasks, thumbnails
from workbooks.models import EmbedCheck, Visibility, Workbook

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"


def test_previews_are_off_in_the_embedded_defaults_and_on_in_production_with_chromium():
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "DATABASE_POOLER", "REDIS_URL", "DJANGO_ENV"}
    }
    code = "from django.conf import settings; print(settings.EMBED_PREVIEWS_ENABLED)"
    run = lambda extra: subprocess.run(  # noqa: E731
        [sys.executable, "-c", f"import django, os; django.setup(); {code}"],
        env={**env, "DJANGO_SETTINGS_MODULE": "sigma_playground.settings", **extra},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert run({}) == "False"
    production = {
        "DJANGO_ENV": "production",
        "SECRET_KEY": "x" * 50,
        "ALLOWED_HOSTS": "example.com",
        "CHROMIUM_PATH": CHROMIUM,
    }
    assert run(production) == str(os.access(CHROMIUM, os.X_OK))
    assert run({**production, "CHROMIUM_PATH": "/nonexistent/chromium"}) == "False"


@pytest.mark.django_db
def test_the_browser_never_runs_eagerly_in_a_web_process(settings, monkeypatch):
    settings.EMBED_PREVIEWS_ENABLED = True
    workbook = WorkbookFactory()
    monkeypatch.setattr("workbooks.preview.capture", lambda *a, **k: pytest.fail("the browser was started"))
    assert tasks.capture_embed_preview.delay(workbook.pk).get() == "eager"


@pytest.mark.django_db
def test_which_workbooks_want_a_preview_and_when(settings, django_capture_on_commit_callbacks, monkeypatch):
    settings.EMBED_PREVIEWS_ENABLED = True
    queued: list[int] = []
    monkeypatch.setattr(tasks.capture_embed_preview, "delay", lambda pk: queued.append(pk))
    author = UserFactory()
    with django_capture_on_commit_callbacks(execute=True):
        plain = services.workbook_publish(
            author=author, title="Plain", sigma_embed_url="https://app.sigmacomputing.com/embed/1-plain"
        )
        uploaded = services.workbook_publish(
            author=author,
            title="Uploaded",
            sigma_embed_url="https://app.sigmacomputing.com/embed/1-up",
            thumbnail=thumbnails.prepare_master(io.BytesIO(images.image_bytes("PNG", (800, 450)))),
        )
    assert queued == [plain.pk]  # a new link without a picture: queued at once
    assert EmbedCheck.objects.get(workbook=uploaded).preview_next_at is None
    assert uploaded.thumbnail_source == "upload"

    def edit(workbook, **changes):
        fields = {
            "title": workbook.title,
            "sigma_embed_url": workbook.sigma_embed_url,
            "description": "",
            "tags": [],
            "visibility": Visibility.PUBLIC,
            "publish": True,
            **changes,
        }
        with django_capture_on_commit_callbacks(execute=True):
            services.workbook_update(workbook=workbook, **fields)

    queued.clear()
    edit(plain, title="Renamed")  # same link: nothing
    edit(plain, sigma_embed_url="https://app.sigmacomputing.com/embed/1-plain2")  # new link: re-taken
    edit(uploaded, sigma_embed_url="https://app.sigmacomputing.com/embed/1-up2")  # an upload wins
    assert queued == [plain.pk]
    edit(uploaded, clear_thumbnail=True)  # picture removed: a preview is wanted again
    assert queued == [plain.pk, uploaded.pk]

    # A screenshot lands only where it still applies, and is refreshed at most weekly.
    shot = thumbnails.prepare_master(io.BytesIO(images.image_bytes("PNG", (1280, 720))))
    assert not services.workbook_preview_captured(
        workbook_id=plain.pk, url="https://elsewhere/old", image=shot
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert services.workbook_preview_captured(workbook_id=plain.pk, url=plain.sigma_embed_url, image=shot)
    plain.refresh_from_db()
    assert plain.thumbnail_source == "embed" and plain.thumbnail_derivatives.get("sources")
    row = EmbedCheck.objects.get(workbook=plain)
    week = dt.timedelta(days=settings.EMBED_PREVIEW_MAX_AGE_DAYS)
    assert abs(row.preview_next_at - (row.preview_taken_at + week)) < dt.timedelta(seconds=1)
    queued.clear()
    assert tasks.refresh_embed_previews() == 1 and queued == [uploaded.pk]  # its picture was removed
    queued.clear()
    assert tasks.refresh_embed_previews() == 0  # the screenshot of `plain` is not due for a week
    EmbedCheck.objects.filter(workbook=plain).update(preview_next_at=timezone.now() - dt.timedelta(seconds=1))
    assert tasks.refresh_embed_previews() == 1 and queued == [plain.pk]
    assert tasks.refresh_embed_previews() == 0  # claimed: not queued twice


# --- A real worker, a real browser --------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_turns_the_embed_into_a_thumbnail_and_abandons_a_hanging_page(tmp_path):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"Debian's chromium is missing at {CHROMIUM}: apt-get install -y chromium (.ci/run does)")
    from sigma_playground.celery import app

    fake = FakeSigma().start()
    own_queue = f"preview-test-{uuid.uuid4().hex[:8]}"
    db = connection.settings_dict
    timeout = 4
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "DB_POOL_MIN_SIZE": "1",
        "DB_POOL_MAX_SIZE": "2",
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "PRIVATE_MEDIA_ROOT": str(settings.PRIVATE_MEDIA_ROOT),
        "SIGMA_EMBED_HOSTS": "127.0.0.1",
        "EMBED_PREVIEWS_ENABLED": "1",
        "EMBED_PREVIEW_TIMEOUT_SECONDS": str(timeout),
        "EMBED_PREVIEW_RETRIES": "0",
        "CHROMIUM_PATH": CHROMIUM,
        "CELERY_TASK_DEFAULT_QUEUE": own_queue,
    }
    chart = WorkbookFactory(sigma_embed_url=fake.url("chart-1"), title="Chart")
    hang = WorkbookFactory(sigma_embed_url=fake.url("hang-1"), title="Hang")
    for workbook in (chart, hang):
        EmbedCheck.objects.create(workbook=workbook, url=workbook.sigma_embed_url)
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        # `media` and a default queue of its own (where the thumbnail render it queues goes): tests running
        # alongside start workers on the shared default queue of the same broker; none may take another's tasks.
        [sys.executable, "-m", "celery", "-A", "sigma_playground", "worker", "-Q", f"media,{own_queue}", "--pool=solo",
         "--purge", "--without-gossip", "--without-mingle", "--loglevel=INFO"],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    app.conf.task_always_eager = False
    try:
        ready_by = time.monotonic() + 60  # after --purge has emptied the queues, not before
        while "ready." not in log.read_text() and time.monotonic() < ready_by:
            assert worker.poll() is None, "the worker exited:\n" + log.read_text()[-3000:]
            time.sleep(0.2)
        tasks.capture_embed_preview.delay(chart.pk)
        tasks.capture_embed_preview.delay(hang.pk)
        deadline = time.monotonic() + 150
        rendered = failed = False
        while time.monotonic() < deadline and not (rendered and failed):
            time.sleep(0.5)
            assert worker.poll() is None, "the worker exited:\n" + log.read_text()[-3000:]
            chart.refresh_from_db()
            rendered = bool(chart.thumbnail_derivatives.get("sources"))
            hang_row = EmbedCheck.objects.get(workbook=hang)
            if not failed and hang_row.preview_error:
                failed = True
    finally:
        app.conf.task_always_eager = True
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        fake.stop()
    logs = log.read_text()
    assert rendered, "the chart page did not become a thumbnail\n" + logs[-3000:]
    assert failed, "the hanging page was not abandoned\n" + logs[-3000:]
    # The chart page became the master and its derivatives, in every format, taken from the drawn page.
    assert chart.thumbnail_source == "embed" and (chart.thumbnail_width, chart.thumbnail_height) == (
        1280,
        720,
    )
    sources = chart.thumbnail_derivatives["sources"]
    assert set(sources) == {"image/avif", "image/webp", "image/jpeg"}
    for entries in sources.values():
        assert [w for w, _, _ in entries] == [320, 640, 768, 1024, 1280]
        for _, _, name in entries:
            assert (Path(settings.MEDIA_ROOT) / name).is_file()
    with thumbnails.private_storage().open(chart.thumbnail, "rb") as fh, Image.open(fh) as master:
        pixel = master.convert("RGB").getpixel((660, 300))  # inside the tallest bar the script draws
    assert pixel[2] > 150 and pixel[0] < 80, f"the screenshot was taken before the chart was drawn: {pixel}"
    # The hanging page: abandoned at the time limit, the workbook keeps the generated preview.
    hang.refresh_from_db()
    hang_row = EmbedCheck.objects.get(workbook=hang)
    assert hang.thumbnail == "" and hang.thumbnail_source == ""
    assert f"did not load within {timeout} s" in hang_row.preview_error and hang_row.preview_failures == 1
    assert any(s.path.endswith("/hang-1") for s in fake.seen), "the browser never asked for the page"
    took = [
        float(x)
        for x in re.findall(r"capture_embed_preview\[[^\]]+\] succeeded in ([\d.]+)s: 'failed'", logs)
    ]
    print(f"hanging page: the task gave up after {took}s (limit {timeout}s, browser start included)")
    # At the limit: not before it, and not much after (a generous bound for starting chromium on a busy machine).
    assert len(took) == 1 and timeout <= took[0] < timeout + 30, took
    assert hang_row.preview_next_at > timezone.now() + dt.timedelta(days=6)  # no retries left: next week
    assert not Workbook.objects.filter(pk=hang.pk, thumbnail_derivatives__has_key="sources").exists()
