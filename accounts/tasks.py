"""Celery tasks of accounts."""

from __future__ import annotations

from importlib import import_module

from celery import shared_task
from django.conf import settings


@shared_task(ignore_result=True)
def clear_expired_sessions() -> None:
    """Daily beat task: delete expired sessions (``manage.py clearsessions``); nothing else ever does."""
    import_module(settings.SESSION_ENGINE).SessionStore.clear_expired()
