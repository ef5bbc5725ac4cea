from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from accounts.models import ci
from sigma_playground.pagination import EstimatedCountPaginator
from workbooks import search, services
from workbooks.models import EmbedCheck, Favorite, Tag, Visibility, Workbook

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

    class _Usage(TypedDict):
        usage_count: int  # TagAdmin.get_queryset's annotation


class WorkbookAdminForm(forms.ModelForm):
    """Refuses in the form what the service would refuse (a reserved slug, a publish date in the future), so
    staff read why next to the field instead of a "changed successfully" for an edit that was not made.
    (The admin builds the form for its model and fields from this class.)"""

    def clean(self) -> dict:
        super().clean()
        data = self.cleaned_data
        problems = services.staff_edit_problems(
            slug=data.get("slug", ""), published_at=data.get("published_at")
        )
        for field, message in problems.items():
            self.add_error(field, message)
        return data


@admin.register(Workbook)
class WorkbookAdmin(admin.ModelAdmin):
    form = WorkbookAdminForm
    list_display = (
        "title",
        "author",
        "visibility",
        "is_featured",
        "favorite_count",
        "view_count",
        "published_at",
        "embed_broken",
    )
    list_select_related = ("author",)
    list_filter = (
        "visibility",
        "is_featured",
        ("embed_broken", admin.BooleanFieldListFilter),
        ("published_at", admin.EmptyFieldListFilter),
        "published_at",
    )
    search_fields = ("title", "author__username")
    raw_id_fields = ("author",)
    readonly_fields = (
        "view_count",
        "favorite_count",
        "trending_score",
        "thumbnail",
        "thumbnail_derivatives",
        "created_at",
        "updated_at",
    )
    # Counting a million rows on every changelist view is what makes admin slow; the paginator shows
    # "show all" without a total instead.
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    ordering = ("-id",)
    list_per_page = 50
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    actions = ("feature", "unfeature", "publish", "unpublish", "make_private")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Workbook]:
        return super().get_queryset(request).defer("description", "thumbnail_derivatives", "tag_names")

    def get_search_results(self, request, queryset, search_term):
        """On PostgreSQL, title words through the full-text index (an ``icontains`` over a million titles
        is a sequential scan), or an exact author username; elsewhere Django's default search."""
        term = search_term.strip()[: search.MAX_QUERY_LENGTH]
        if not term or not search.is_postgres():
            return super().get_search_results(request, queryset, search_term)
        by_author = queryset.filter(author__username__lower=ci(term))
        return search.matches(queryset, term) | by_author, False

    def _done(self, request: HttpRequest, count: int, what: str) -> None:
        self.message_user(request, f"{count} workbook{'s' if count != 1 else ''} {what}.", messages.SUCCESS)

    @admin.action(description="Feature selected workbooks")
    def feature(self, request, queryset):
        self._done(
            request, services.workbooks_set_featured(workbook_ids=_ids(queryset), featured=True), "featured"
        )

    @admin.action(description="Unfeature selected workbooks")
    def unfeature(self, request, queryset):
        self._done(
            request,
            services.workbooks_set_featured(workbook_ids=_ids(queryset), featured=False),
            "unfeatured",
        )

    @admin.action(description="Publish selected drafts now")
    def publish(self, request, queryset):
        self._done(
            request,
            services.workbooks_set_published(workbook_ids=_ids(queryset), published=True),
            "published",
        )

    @admin.action(description="Unpublish selected (back to draft)")
    def unpublish(self, request, queryset):
        self._done(
            request,
            services.workbooks_set_published(workbook_ids=_ids(queryset), published=False),
            "unpublished",
        )

    @admin.action(description="Make selected private")
    def make_private(self, request, queryset):
        count = services.workbooks_set_visibility(workbook_ids=_ids(queryset), visibility=Visibility.PRIVATE)
        self._done(request, count, "made private")

    # Authors publish through the site, where the embed link and thumbnail are validated.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def save_model(self, request, obj, form, change):
        # Admin edits go through the service, which compares them with the stored row (``obj`` already
        # carries the form's values) and invalidates what changed, as for the site's own writes. The date
        # and time widgets drop microseconds: a date nobody touched is the stored one.
        untouched = "published_at" not in form.changed_data
        services.workbook_staff_update(
            workbook_id=obj.pk,
            author=obj.author,
            title=obj.title,
            slug=obj.slug,
            description=obj.description,
            sigma_embed_url=obj.sigma_embed_url,
            visibility=obj.visibility,
            published_at=form.initial.get("published_at") if untouched else obj.published_at,
            is_featured=obj.is_featured,
        )

    def delete_model(self, request, obj):
        services.workbook_delete(workbook=obj)

    def delete_queryset(self, request, queryset):
        for workbook in queryset:
            services.workbook_delete(workbook=workbook)


def _ids(queryset: QuerySet) -> list[int]:
    return list(queryset.values_list("pk", flat=True))


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "colour", "usage")
    search_fields = ("name", "slug")
    readonly_fields = ("created_at",)
    prepopulated_fields = {"slug": ("name",)}
    ordering = ("name",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tag]:
        return super().get_queryset(request).annotate(usage_count=Count("workbook_links"))

    def get_readonly_fields(self, request, obj=None):
        # A tag's slug is its URL and its identity; it is set once.
        return (*self.readonly_fields, "slug") if obj else self.readonly_fields

    def get_prepopulated_fields(self, request, obj=None):
        return {} if obj else self.prepopulated_fields

    def save_model(self, request, obj, form, change):
        # ``obj`` already carries the form's values: the service compares them with the stored row.
        if change:
            services.tag_update(tag=obj, name=obj.name, colour=obj.colour)
        else:
            obj.pk = services.tag_create(name=obj.name, slug=obj.slug, colour=obj.colour).pk

    def delete_model(self, request, obj):
        services.tag_delete(tag=obj)

    def delete_queryset(self, request, queryset):
        for tag in queryset:
            services.tag_delete(tag=tag)

    @admin.display(description="Workbooks", ordering="usage_count")
    def usage(self, obj: WithAnnotations[Tag, _Usage]) -> int:
        return obj.usage_count


@admin.register(Favorite)
class FavoriteAdmin(admin.ModelAdmin):
    list_display = ("user", "workbook", "created_at")
    list_select_related = ("user", "workbook")
    search_fields = ("user__username", "workbook__title")
    raw_id_fields = ("user", "workbook")
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    ordering = ("-id",)

    # Favorites belong to their users; staff may remove one (abuse), through the service so that
    # favorite_count stays equal to the rows.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def delete_model(self, request, obj):
        services.favorite_remove(user=obj.user, workbook=obj.workbook)

    def delete_queryset(self, request, queryset):
        for favorite in queryset.select_related("user", "workbook"):
            services.favorite_remove(user=favorite.user, workbook=favorite.workbook)


@admin.register(EmbedCheck)
class EmbedCheckAdmin(admin.ModelAdmin):
    """The embed link checker's state per workbook (workbooks.linkcheck). Read-only: the checker writes it."""

    list_display = (
        "workbook",
        "status",
        "http_status",
        "error",
        "consecutive_failures",
        "checked_at",
        "next_check_at",
    )
    list_select_related = ("workbook",)
    list_filter = ("status",)
    search_fields = ("url",)
    raw_id_fields = ("workbook",)
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    ordering = ("-pk",)
    list_per_page = 50

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: EmbedCheck | None = None) -> bool:
        return False
