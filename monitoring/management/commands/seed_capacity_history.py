from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from monitoring.capacity import demo


class Command(BaseCommand):
    help = (
        f"Write {demo.DAYS} days of clearly labelled demo capacity history (hourly aggregates marked demo, "
        "a sample if there is none) and a report from it, so the capacity page shows charts, projections and "
        "crossing dates on a new install. Hours that hold data are left alone. Refused in production."
    )

    def handle(self, *args: object, **options: object) -> None:
        if settings.PRODUCTION:
            raise CommandError("demo capacity history is invented data: not in production.")
        seeded = demo.seed_history()
        if seeded.report is None:
            self.stdout.write(f"Demo capacity history: {seeded.skipped}.")
            return
        analysis = seeded.report.data
        self.stdout.write(
            f"Demo capacity history: {seeded.hours} hourly aggregates written"
            f"{', and a current sample' if seeded.sample else ''}; report {seeded.report.pk} stored "
            f"({analysis['days_with_data']} days, {analysis['demo_days']} of them demo, "
            f"{seeded.report.recommendations} recommendations). See /monitoring/capacity/ (staff)."
        )
