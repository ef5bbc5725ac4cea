"""Monitoring tables. Metrics live in Prometheus and the beat heartbeat in the cache; the one table here is
the slow-statement aggregate written by sigma_playground.db_instrumentation (the database issue)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class SlowQuery(models.Model):
    """Statements slower than DB_SLOW_QUERY_SECONDS, aggregated by normalised fingerprint
    (sigma_playground.db_instrumentation). The SQL is normalised: literals and parameters are ``?``."""

    fingerprint = models.CharField(max_length=32, unique=True)
    statement = models.CharField(max_length=10)
    table = models.CharField(max_length=100)
    sql = models.TextField()
    calls = models.PositiveBigIntegerField(default=0)
    total_seconds = models.FloatField(default=0.0)
    max_seconds = models.FloatField(default=0.0)
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "slow query"
        verbose_name_plural = "slow queries"

    def __str__(self) -> str:
        return f"{self.statement} {self.table} ({self.calls}x)"

    @property
    def mean_seconds(self) -> float:
        return self.total_seconds / self.calls if self.calls else 0.0
