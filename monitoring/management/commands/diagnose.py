"""``manage.py diagnose``: the health diagnosis on the terminal; exit 0 healthy, 1 warning, 2 critical."""

from __future__ import annotations

import json
import sys

from django.core.management.base import BaseCommand

from monitoring.diagnosis import diagnose


class Command(BaseCommand):
    help = "Diagnose the site's health (latency, errors, database, memory, cache, Celery); exit 0/1/2."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args, **options) -> None:
        report = diagnose()
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        else:
            style = {0: self.style.SUCCESS, 1: self.style.WARNING, 2: self.style.ERROR}[report.exit_code]
            text = report.as_text()
            first, _, rest = text.partition("\n")
            self.stdout.write(style(first))
            self.stdout.write(rest)
        sys.exit(report.exit_code)
