import datetime as dt

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.utils import timezone

from accounts.tasks import clear_expired_sessions


@pytest.mark.django_db
def test_the_beat_task_clears_expired_sessions_only():
    now = timezone.now()
    Session.objects.create(session_key="a" * 32, session_data="x", expire_date=now - dt.timedelta(days=1))
    Session.objects.create(session_key="b" * 32, session_data="x", expire_date=now + dt.timedelta(days=1))
    clear_expired_sessions.delay()
    assert list(Session.objects.values_list("session_key", flat=True)) == ["b" * 32]


def test_it_is_scheduled():
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"accounts.tasks.clear_expired_sessions", "workbooks.tasks.sweep_orphan_masters"} <= tasks
