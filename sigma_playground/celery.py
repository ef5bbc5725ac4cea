"""The Celery application. Configuration comes from Django settings (``CELERY_*``); task modules are found in
the installed apps. Monitoring connects its signal handlers (request ids, task metrics, the worker's metrics
port) from its AppConfig: monitoring/celery_signals.py."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sigma_playground.settings")

app = Celery("sigma_playground")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
