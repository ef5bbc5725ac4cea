from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from monitoring.models import CapacityHour, CapacityReport, CapacitySample, SlowQuery
from sigma_playground.db_instrumentation import pg_stat_statements_top


@admin.register(SlowQuery)
class SlowQueryAdmin(admin.ModelAdmin):
    """Slow statements by fingerprint (read-only), and pg_stat_statements' top statements when available."""

    list_display = ("statement", "table", "calls", "mean_ms", "max_ms", "total_s", "last_seen", "short_sql")
    list_filter = ("statement", "table")
    search_fields = ("sql", "fingerprint")
    ordering = ("-total_seconds",)
    readonly_fields = [f.name for f in SlowQuery._meta.fields]
    change_list_template = "admin/monitoring/slowquery/change_list.html"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="mean (ms)", ordering="total_seconds")
    def mean_ms(self, obj: SlowQuery) -> str:
        return f"{obj.mean_seconds * 1000:.0f}"

    @admin.display(description="max (ms)", ordering="max_seconds")
    def max_ms(self, obj: SlowQuery) -> str:
        return f"{obj.max_seconds * 1000:.0f}"

    @admin.display(description="total (s)", ordering="total_seconds")
    def total_s(self, obj: SlowQuery) -> str:
        return f"{obj.total_seconds:.1f}"

    @admin.display(description="SQL (normalised)")
    def short_sql(self, obj: SlowQuery) -> str:
        return obj.sql[:160]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "pg_stat_statements": pg_stat_statements_top()}
        return super().changelist_view(request, extra_context)


class _ReadOnlyAdmin(admin.ModelAdmin):
    """Written by the capacity tasks only; staff read and may delete."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(CapacityReport)
class CapacityReportAdmin(_ReadOnlyAdmin):
    list_display = (
        "created_at",
        "trigger",
        "days_with_data",
        "meaningful",
        "top_priority",
        "recommendations",
    )
    list_filter = ("trigger", "meaningful", "top_priority")
    date_hierarchy = "created_at"
    fields = ("created_at", "trigger", "days_with_data", "meaningful", "top_priority", "page", "report")
    readonly_fields = fields

    @admin.display(description="with charts")
    def page(self, obj: CapacityReport) -> str:
        return format_html(
            '<a href="{}?report={}">the capacity page</a>', reverse("monitoring:capacity"), obj.pk
        )

    @admin.display(description="report")
    def report(self, obj: CapacityReport) -> str:
        return format_html('<pre class="capacity-report-text">{}</pre>', obj.text)


@admin.register(CapacitySample)
class CapacitySampleAdmin(_ReadOnlyAdmin):
    list_display = (
        "taken_at",
        "host",
        "cpu_percent",
        "memory_percent",
        "disk_percent",
        "db_connections",
        "redis_memory_percent",
        "request_rate",
        "queue_length",
        "missing_sources",
    )
    list_filter = ("host",)
    date_hierarchy = "taken_at"
    readonly_fields = [f.name for f in CapacitySample._meta.fields]

    @admin.display(description="missing")
    def missing_sources(self, obj: CapacitySample) -> str:
        return ", ".join(obj.missing) or "-"


@admin.register(CapacityHour)
class CapacityHourAdmin(_ReadOnlyAdmin):
    list_display = ("hour", "samples", "cpu", "memory", "disk")
    date_hierarchy = "hour"
    readonly_fields = ("hour", "samples", "stats")

    def _mean(self, obj: CapacityHour, key: str) -> str:
        item = obj.stats.get(key)
        return "-" if not item else f"{item['min']:.1f} / {item['mean']:.1f} / {item['max']:.1f}"

    @admin.display(description="CPU % min/mean/max")
    def cpu(self, obj: CapacityHour) -> str:
        return self._mean(obj, "cpu_percent")

    @admin.display(description="memory % min/mean/max")
    def memory(self, obj: CapacityHour) -> str:
        return self._mean(obj, "memory_percent")

    @admin.display(description="disk % min/mean/max")
    def disk(self, obj: CapacityHour) -> str:
        return self._mean(obj, "disk_percent")
