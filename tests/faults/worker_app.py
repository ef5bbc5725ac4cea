"""The Celery app for the fault suite's worker: the site's own, with two places where a test can hold a task
so it can kill the worker process in the middle of it. A test creates ``<FAULT_CONTROL_DIR>/slow_flush`` (or
``slow_render``); the next flush that applies a batch (or the next render) writes its pid to
``slow_flush.started`` and sleeps until it is killed. Nothing here runs in the site itself."""

from __future__ import annotations

import os
import time
from pathlib import Path

import django

from sigma_playground.celery import app

django.setup()

from workbooks import services, thumbnails  # noqa: E402

CONTROL = Path(os.environ["FAULT_CONTROL_DIR"])


def _hold(name: str) -> None:
    if (CONTROL / name).exists():
        (CONTROL / f"{name}.started").write_text(str(os.getpid()))
        time.sleep(120)  # killed here


_apply_views = services.workbook_views_apply
_render = thumbnails.render_derivatives


def apply_views(*, counts, batch_id=None):
    if batch_id is not None:
        _hold("slow_flush")
    return _apply_views(counts=counts, batch_id=batch_id)


def render_derivatives(master_name, *, workbook_id):
    _hold("slow_render")
    return _render(master_name, workbook_id=workbook_id)


services.workbook_views_apply = apply_views
thumbnails.render_derivatives = render_derivatives

__all__ = ["app"]
