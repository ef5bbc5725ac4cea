"""Monitoring tables. Metrics live in Prometheus and the beat heartbeat in the cache. Here: the slow-statement
aggregate written by sigma_playground.db_instrumentation (the database issue), and capacity planning's
samples, hourly aggregates and reports (monitoring.capacity, docs/capacity.md)."""

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


class CapacitySample(models.Model):
    """One reading of every resource capacity planning watches, taken every minute by a beat task
    (monitoring.capacity.sampler). A source that could not be read leaves its fields null and is named in
    ``missing``; ``notes`` says, per source, how it was measured or why it is missing. Kept at full resolution
    for CAPACITY_RAW_RETENTION_DAYS, then only as hourly aggregates (CapacityHour)."""

    taken_at = models.DateTimeField(default=timezone.now, db_index=True)
    host = models.CharField(max_length=100, blank=True, help_text="the machine whose worker took it")

    cpu_percent = models.FloatField(null=True, blank=True)
    memory_percent = models.FloatField(null=True, blank=True)
    memory_used_bytes = models.BigIntegerField(null=True, blank=True)
    memory_total_bytes = models.BigIntegerField(null=True, blank=True)
    disk_percent = models.FloatField(null=True, blank=True)
    disk_used_bytes = models.BigIntegerField(null=True, blank=True)
    disk_total_bytes = models.BigIntegerField(null=True, blank=True)
    net_in_bytes_per_s = models.FloatField(null=True, blank=True)
    net_out_bytes_per_s = models.FloatField(null=True, blank=True)

    db_connections = models.IntegerField(null=True, blank=True, help_text="client connections on the server")
    db_connections_active = models.IntegerField(null=True, blank=True)
    db_max_connections = models.IntegerField(null=True, blank=True)
    db_pool_in_use = models.IntegerField(null=True, blank=True, help_text="the sampling process's pool")
    db_pool_max = models.IntegerField(null=True, blank=True)
    db_size_bytes = models.BigIntegerField(null=True, blank=True)
    table_rows = models.JSONField(default=dict, blank=True, help_text="estimated rows by table")

    redis_used_memory_bytes = models.BigIntegerField(null=True, blank=True)
    redis_max_memory_bytes = models.BigIntegerField(
        null=True, blank=True, help_text="maxmemory, or the machine's memory when maxmemory is 0"
    )
    redis_memory_percent = models.FloatField(null=True, blank=True)
    cache_hit_ratio = models.FloatField(null=True, blank=True)

    request_rate = models.FloatField(null=True, blank=True, help_text="requests per second")
    latency_p95_ms = models.FloatField(null=True, blank=True)
    queue_length = models.IntegerField(null=True, blank=True, help_text="messages waiting, all queues")

    missing = models.JSONField(default=list, blank=True)
    notes = models.JSONField(default=dict, blank=True)
    counters = models.JSONField(
        default=dict, blank=True, help_text="cumulative counters the next sample turns into rates"
    )

    class Meta:
        verbose_name = "capacity sample"
        ordering = ("-taken_at",)
        # The sampler's "previous sample of this host", every minute.
        indexes = [models.Index(fields=["host", "-taken_at"], name="capacity_sample_host_taken")]

    def __str__(self) -> str:
        return f"{self.taken_at:%Y-%m-%d %H:%M} {self.host}"

    @classmethod
    def metric_fields(cls) -> tuple[str, ...]:
        """The numeric fields: what the hourly aggregates summarise."""
        kinds = (models.FloatField, models.IntegerField)
        return tuple(f.name for f in cls._meta.concrete_fields if isinstance(f, kinds) and not f.primary_key)


class CapacityHour(models.Model):
    """The samples of one UTC hour, summarised: ``stats`` maps each metric (a CapacitySample field, or
    ``rows:<table>``) to ``{"min", "mean", "max", "n"}`` over the samples that had it. Kept
    CAPACITY_HOURLY_RETENTION_DAYS."""

    hour = models.DateTimeField(unique=True)
    samples = models.PositiveIntegerField(default=0)
    stats = models.JSONField(default=dict)

    class Meta:
        verbose_name = "capacity hourly aggregate"
        ordering = ("-hour",)

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} ({self.samples} samples)"


class CapacityReport(models.Model):
    """A capacity report as generated (monitoring.capacity.report): ``data`` is the whole analysis,
    ``text`` what ``manage.py capacity_report`` prints. Kept as long as the hourly aggregates."""

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "daily task"
        COMMAND = "command", "manage.py capacity_report"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.SCHEDULE)
    meaningful = models.BooleanField(default=False, help_text="enough history for projections")
    days_with_data = models.PositiveIntegerField(default=0)
    top_priority = models.CharField(max_length=10, blank=True)
    recommendations = models.PositiveIntegerField(default=0)
    data = models.JSONField(default=dict)
    text = models.TextField(blank=True)

    class Meta:
        verbose_name = "capacity report"
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"Capacity report {self.created_at:%Y-%m-%d %H:%M}"
