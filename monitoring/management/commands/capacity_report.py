"""``manage.py capacity_report``: the capacity report on the terminal (``--json`` for machines)."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.utils import timezone

from monitoring.capacity import report, services
from monitoring.models import CapacityReport


class Command(BaseCommand):
    help = (
        "Capacity report: current use, projections at 1/3/6/12 months, threshold crossings and "
        "recommendations. Rolls up complete hours first and stores the report, as the daily task does."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        parser.add_argument("--no-store", action="store_true", help="only print: no roll-up, nothing stored")

    def handle(self, *args, **options) -> None:
        if options["no_store"]:
            analysis = report.build(timezone.now())
        else:
            stored = services.capacity_report_generate(trigger=CapacityReport.Trigger.COMMAND)
            analysis = report.CapacityAnalysis.from_dict(stored.data)
        if options["json"]:
            self.stdout.write(analysis.as_json())
            return
        text = analysis.as_text()
        first, _, rest = text.partition("\n")
        self.stdout.write(self.style.MIGRATE_HEADING(first))
        self.stdout.write(rest)
