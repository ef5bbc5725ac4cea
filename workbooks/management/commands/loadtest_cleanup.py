"""``manage.py loadtest_cleanup``: remove everything load-test users made (accounts/loadtest.py)."""

from django.core.management.base import BaseCommand
from django.db import transaction

from accounts import loadtest
from sigma_playground.progress import Progress, command_stream
from workbooks import services
from workbooks.models import Favorite, Workbook


class Command(BaseCommand):
    help = "Delete the workbooks and favorites of load-test users (and, with --users, the users themselves)."

    def add_arguments(self, parser):
        parser.add_argument("--users", action="store_true", help="also delete the load-test users")

    def handle(self, *args, users: bool, **options):
        authors = loadtest.users()
        workbooks = Workbook.objects.filter(author__in=authors).select_related("author")
        total = workbooks.count()
        progress = Progress(command_stream(self.stdout), "delete load-test workbooks", total)
        deleted = 0
        while True:
            # Through the service, so thumbnails go and cached pages are invalidated, 200 per transaction.
            with transaction.atomic():
                batch = list(workbooks[:200])
                for workbook in batch:
                    services.workbook_delete(workbook=workbook)
            if not batch:
                break
            deleted += len(batch)
            progress.update(deleted)
        favorites = Favorite.objects.filter(user__in=authors).count()
        for favorite in Favorite.objects.filter(user__in=authors).select_related("workbook", "user"):
            services.favorite_remove(user=favorite.user, workbook=favorite.workbook)
        removed_users = authors.delete()[0] if users else 0
        self.stdout.write(
            f"load-test cleanup: {deleted} workbooks, {favorites} favorites"
            + (f", {removed_users} rows with the users" if users else "")
            + " deleted"
        )
