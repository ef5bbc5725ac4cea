from django.contrib import admin
from django.urls import include, path

from sigma_playground import health, media, site

urlpatterns = [
    path("", include("workbooks.site_urls")),
    path("robots.txt", site.robots_txt, name="robots_txt"),
    path("favicon.ico", site.favicon, name="favicon"),
    path("", include("workbooks.urls")),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("", include("monitoring.urls")),
    path("accounts/", include("accounts.urls")),
    path("users/", include("workbooks.profile_urls")),
    path("notifications/", include("notifications.urls")),
    path("admin/", admin.site.urls),
    path("media/<path:path>", media.media, name="media"),
]

# A request that fails because the database is unreachable gets the styled 503, anything else the 500 page.
handler500 = "sigma_playground.db_breaker.server_error"
