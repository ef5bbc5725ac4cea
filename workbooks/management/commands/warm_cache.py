from typing import Any

from django.core.management.base import BaseCommand, CommandError

from sigma_playground.progress import Progress, command_stream
from workbooks import warming


class Command(BaseCommand):
    help = "Render the most requested pages into the page cache, with progress and a summary."

    def handle(self, *args: Any, **options: Any) -> None:
        bar: Progress | None = None

        def progress(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                bar = Progress(command_stream(self.stderr), "warming pages", total, unit="pages")
            bar.update(done)

        result = warming.warm(progress=progress)
        if bar is not None:
            bar.close()
        for failure in result.failures:
            self.stderr.write(f"  not warmed: {failure}")
        summary = (
            f"{result.written} entries written, {result.already_fresh} already fresh, "
            f"{result.failed} failed, in {result.seconds:.1f} s."
        )
        if result.failed:
            # A non-zero exit: a deploy step or cron job must not report success with pages missing.
            raise CommandError(f"Cache warming failed for {result.failed} pages (listed above): {summary}")
        self.stdout.write(self.style.SUCCESS(f"Cache warmed: {summary}"))
