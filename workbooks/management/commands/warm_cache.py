from django.core.management.base import BaseCommand

from sigma_playground.progress import Progress
from workbooks import warming


class Command(BaseCommand):
    help = "Render the most requested pages into the page cache, with progress and a summary."

    def handle(self, *args, **options):
        bar: Progress | None = None

        def progress(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                bar = Progress(self.stderr._out, "warming pages", total, unit="pages")
            bar.update(done)

        result = warming.warm(progress=progress)
        if bar is not None:
            bar.close()
        for failure in result.failures:
            self.stderr.write(f"  not warmed: {failure}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Cache warmed: {result.written} entries written, {result.already_fresh} already fresh, "
                f"{result.failed} failed, in {result.seconds:.1f} s."
            )
        )
