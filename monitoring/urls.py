from django.urls import path

from monitoring import views
from monitoring.capacity import views as capacity_views

app_name = "monitoring"

urlpatterns = [
    path("metrics", views.metrics, name="metrics"),
    path("monitoring/rum/", views.rum_beacon, name="rum"),
    path("monitoring/health/", views.health, name="health"),
    path("monitoring/health.json", views.health_json, name="health_json"),
    path("monitoring/capacity/", capacity_views.capacity, name="capacity"),
]
