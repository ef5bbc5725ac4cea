from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path

from sigma_playground import health
from workbooks import views as workbook_views

urlpatterns = [
    path("", workbook_views.home, name="home"),
    path("", include("workbooks.urls")),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("", include("monitoring.urls")),
    path("accounts/", include("accounts.urls")),
    path("users/", include("accounts.profile_urls")),
    path("admin/", admin.site.urls),
]

if settings.DEBUG:
    # Development only; in production a web server or object store serves MEDIA_ROOT.
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
