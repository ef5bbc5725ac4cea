"""Writes for monitoring data."""

from __future__ import annotations

from django.db import transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from monitoring.models import SlowQuery


def slow_query_record(*, fingerprint: str, statement: str, table: str, sql: str, seconds: float) -> None:
    """Add one slow execution to its fingerprint's aggregate (created on first sight)."""
    now = timezone.now()
    with transaction.atomic():
        updated = SlowQuery.objects.filter(fingerprint=fingerprint).update(
            calls=F("calls") + 1,
            total_seconds=F("total_seconds") + seconds,
            max_seconds=Greatest(F("max_seconds"), seconds),
            last_seen=now,
        )
        if not updated:
            SlowQuery.objects.bulk_create(
                [
                    SlowQuery(
                        fingerprint=fingerprint, statement=statement, table=table, sql=sql, calls=1,
                        total_seconds=seconds, max_seconds=seconds, first_seen=now, last_seen=now,
                    )
                ],
                # A concurrent first sighting wins; this one is then lost, which an aggregate can afford.
                ignore_conflicts=True,
            )  # fmt: skip
