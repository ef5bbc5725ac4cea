from django.contrib import admin

from monitoring.models import SlowQuery
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
