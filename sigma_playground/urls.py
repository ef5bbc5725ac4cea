from django.contrib import admin
from django.urls import include, path

from sigma_playground import health, media, site
from workbooks import sharing
from workbooks import views as workbook_views

urlpatterns = [
    path("", workbook_views.home, name="home"),
    path("robots.txt", site.robots_txt, name="robots_txt"),
    path("favicon.ico", site.favicon, name="favicon"),
    path("sitemap.xml", sharing.sitemap_index, name="sitemap_index"),
    path("sitemaps/pages.xml", sharing.sitemap_pages, name="sitemap_pages"),
    path("sitemaps/workbooks-<int:chunk>.xml", sharing.sitemap_workbooks, name="sitemap_workbooks"),
    path("oembed", sharing.oembed, name="oembed"),
    path("feeds/newest/", sharing.newest_feed, name="feed_newest"),
    path("", include("workbooks.urls")),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("", include("monitoring.urls")),
    path("accounts/", include("accounts.urls")),
    path("users/", include("accounts.profile_urls")),
    path("notifications/", include("notifications.urls")),
    path("admin/", admin.site.urls),
    path("media/<path:path>", media.media, name="media"),
]

# A request that fails because the database is unreachable gets the styled 503, anything else the 500 page.
handler500 = "sigma_playground.db_breaker.server_error"
