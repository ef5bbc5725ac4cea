from django.contrib import admin

from notifications.models import Notification
from sigma_playground.pagination import EstimatedCountPaginator


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("recipient", "kind", "group_key", "count", "updated_at", "read_at")
    list_filter = ("kind",)
    raw_id_fields = ("recipient", "actor", "workbook")
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    ordering = ("-id",)
