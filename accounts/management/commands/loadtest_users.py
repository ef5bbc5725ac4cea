"""``manage.py loadtest_users --count N``: the accounts the load test logs in with (accounts/loadtest.py)."""

from django.core.management.base import BaseCommand

from accounts import loadtest


class Command(BaseCommand):
    help = "Create (or reset) N load-test users loadtest-00000… with the known load-test password."

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, default=1000)
        parser.add_argument("--password", default=loadtest.PASSWORD)

    def handle(self, *args, count: int, password: str, **options):
        created, updated = loadtest.create_users(count=count, password=password)
        self.stdout.write(
            f"load-test users: {created} created, {updated} reset "
            f"({loadtest.username(0)} … {loadtest.username(count - 1)})"
        )
