from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Declare every metric at start, so /metrics lists them before their first event.
        from monitoring import instruments  # noqa: F401

        # Time every database statement (the database issue's execute wrapper and slow-query log).
        from sigma_playground import db_instrumentation

        db_instrumentation.install()
        # Slow statements are rare: their series exist at zero from the start, so the dashboard's panel
        # shows 0 rather than "No data" and the first slow statement counts in rate().
        db_instrumentation.SLOW_QUERIES.initialize()
