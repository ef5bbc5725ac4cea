"""Celery tasks of accounts."""

from __future__ import annotations

from celery import shared_task

from accounts import services


@shared_task(ignore_result=True)
def clear_expired_sessions() -> None:
    """Daily beat task: delete expired sessions (``manage.py clearsessions``); nothing else ever does."""
    services.sessions_clear_expired()
