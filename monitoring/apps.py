from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Declare every metric at start, so /metrics lists them before their first event.
        from monitoring import celery_signals, instruments, services  # noqa: F401
        from sigma_playground import db_instrumentation
        from sigma_playground.telemetry import instruments as core_instruments  # noqa: F401

        # Request ids into tasks, task metrics and the worker's metrics port.
        celery_signals.connect()
        # Time every database statement (the database issue's execute wrapper); slow ones go to the
        # slow-statement aggregate staff read in admin.
        db_instrumentation.install(record_slow=services.slow_query_record)
        # Slow statements are rare: their series exist at zero from the start, so the dashboard's panel
        # shows 0 rather than "No data" and the first slow statement counts in rate().
        db_instrumentation.SLOW_QUERIES.initialize()
