from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.demo import DEMO_STAFF_PASSWORD, DEMO_STAFF_USERNAME, seed_people


class Command(BaseCommand):
    help = "Create demo users and follows (idempotent) and print the demo staff login."

    def add_arguments(self, parser):
        parser.add_argument("--users", type=int, default=30, help="number of demo users (default 30)")

    def handle(self, *args, users: int, **options):
        if settings.PRODUCTION:
            raise CommandError(
                "seed_demo creates a staff account with a published password; not in production."
            )
        if users < 0:
            raise CommandError("--users must be zero or more.")
        result = seed_people(users)
        self.stdout.write(
            f"Demo data: {result['users']} users and {result['follows']} follows created "
            f"({result['total_users']} demo users, {result['total_follows']} follows in all)."
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo staff login: username '{DEMO_STAFF_USERNAME}', password '{DEMO_STAFF_PASSWORD}'"
            )
        )
