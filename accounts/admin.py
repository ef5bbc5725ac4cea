from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.http import HttpRequest

from accounts import services
from accounts.forms import process_avatar
from accounts.models import Follow, User
from sigma_playground.images import ProcessedImage
from sigma_playground.pagination import EstimatedCountPaginator


class UserAdminChangeForm(UserChangeForm):
    class Meta(UserChangeForm.Meta):  # type: ignore[name-defined]  # django-stubs omits the forms' Meta
        model = User
        fields = "__all__"

    processed_avatar: ProcessedImage | None = None

    def clean_avatar(self):
        """A picture uploaded here is re-encoded like one uploaded on the site (never stored as sent)."""
        upload = self.cleaned_data.get("avatar")
        self.processed_avatar = process_avatar(upload)
        return upload


class UserAdminCreationForm(AdminUserCreationForm):
    class Meta(AdminUserCreationForm.Meta):  # type: ignore[name-defined]  # as above
        model = User
        fields = ("username", "email")


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    form = UserAdminChangeForm
    add_form = UserAdminCreationForm
    list_display = ("username", "email", "full_name", "is_staff", "is_active", "created_at")
    list_filter = ("is_staff", "is_superuser", "is_active", "created_at")
    search_fields = ("username", "email", "full_name")
    ordering = ("-created_at", "-id")
    readonly_fields = ("created_at", "last_login", "date_joined")
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Profile", {"fields": ("full_name", "email", "bio", "avatar")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("created_at", "last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("username", "email", "usable_password", "password1", "password2"),
            },
        ),
    )

    # Every write goes through accounts.services, which invalidates the pages it changes.
    def save_model(self, request, obj, form, change):
        if not change:
            services.user_add(user=obj)
            return
        data = form.cleaned_data
        services.user_staff_update(
            user=obj,
            username=obj.username,
            email=obj.email,
            full_name=obj.full_name,
            bio=obj.bio,
            is_active=obj.is_active,
            is_staff=obj.is_staff,
            is_superuser=obj.is_superuser,
            avatar=form.processed_avatar,
            clear_avatar=data.get("avatar") is False,
        )

    def delete_model(self, request, obj):
        services.user_delete(user=obj)

    def delete_queryset(self, request, queryset):
        for user in queryset:
            services.user_delete(user=user)


@admin.register(Follow)
class FollowAdmin(admin.ModelAdmin):
    list_display = ("follower", "followed", "created_at")
    list_select_related = ("follower", "followed")
    search_fields = ("follower__username", "followed__username")
    raw_id_fields = ("follower", "followed")
    readonly_fields = ("created_at",)
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-id")
    show_full_result_count = False
    paginator = EstimatedCountPaginator

    # A follow is a pair: staff add or remove one, through the services (counts, pages, notifications), and
    # never turn it into another pair.
    def has_change_permission(self, request: HttpRequest, obj: Follow | None = None) -> bool:
        return False

    def save_model(self, request, obj, form, change):
        services.follow(follower=obj.follower, followed=obj.followed)
        stored = Follow.objects.get(follower=obj.follower, followed=obj.followed)
        obj.pk, obj.created_at = stored.pk, stored.created_at

    def delete_model(self, request, obj):
        services.unfollow(follower=obj.follower, followed=obj.followed)

    def delete_queryset(self, request, queryset):
        for link in queryset.select_related("follower", "followed"):
            services.unfollow(follower=link.follower, followed=link.followed)
