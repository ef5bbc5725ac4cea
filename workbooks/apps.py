from django.apps import AppConfig


class WorkbooksConfig(AppConfig):
    name = "workbooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The services queue the render and preview tasks by their registered names (workbooks.tasks calls
        # the services, so they never import it): register the tasks in every process, a web process or a
        # management command included, not only in the Celery worker that autodiscovers them.
        from workbooks import tasks  # noqa: F401
