"""``manage.py seed_demo``: the demo gallery (default, idempotent) or bulk scale data.

    seed_demo                                   # ~30 people, 200 workbooks, tags, favorites, follows, stats
    seed_demo --workbooks N [--users M] [--favorites F] [--follows K] [--batch-size B] [--seed S]
    seed_demo --capacity-history                # and 30 days of labelled demo capacity history (make run)

Bulk mode (any ``--workbooks``, 0 included) adds that many rows on top of what exists; see
``workbooks.demo`` for how the data is generated and loaded. Both modes refuse production mode.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import services as account_services
from accounts.demo import DEMO_STAFF_PASSWORD, DEMO_STAFF_USERNAME
from sigma_playground.caching import invalidate
from sigma_playground.progress import command_stream
from workbooks import services
from workbooks.demo.bulk import BulkError, BulkLoader
from workbooks.demo.gallery import seed_gallery

DEFAULT_DEMO_USERS = 30


class Command(BaseCommand):
    help = (
        "Without --workbooks: create the demo gallery (idempotent) and print the demo staff login. "
        "With --workbooks N: bulk-load N workbooks (and --users M users, favorites, follows, tags and 30 "
        "days of statistics) on top of what exists, with COPY on PostgreSQL."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--users",
            type=int,
            default=None,
            help=f"demo mode: number of demo people (default {DEFAULT_DEMO_USERS}); "
            "bulk mode: new users to add (default 0)",
        )
        parser.add_argument(
            "--workbooks", type=int, default=None, help="bulk mode: new workbooks to add (0 is allowed)"
        )
        parser.add_argument(
            "--favorites",
            type=int,
            default=None,
            help="bulk mode: favorites on the new workbooks (default 5 per workbook, at most 25%% of the "
            "possible pairs)",
        )
        parser.add_argument(
            "--follows",
            type=int,
            default=None,
            help="bulk mode: follows made by the new users (default 10 per user, at most 25%% of the "
            "possible pairs)",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=None,
            help="bulk mode: rows per insert batch and progress update (default 10000)",
        )
        parser.add_argument(
            "--capacity-history",
            action="store_true",
            help="also write 30 days of clearly labelled demo capacity history and a report from it "
            "(manage.py seed_capacity_history), so the capacity page shows charts and projections",
        )
        parser.add_argument(
            "--seed",
            type=int,
            default=None,
            help="bulk mode: random seed, for reproducible data (default 2026)",
        )

    def handle(
        self,
        *args: object,
        users: int | None,
        workbooks: int | None,
        favorites: int | None,
        follows: int | None,
        batch_size: int | None,
        seed: int | None,
        capacity_history: bool = False,
        **options: object,
    ) -> None:
        if settings.PRODUCTION:
            raise CommandError(
                "seed_demo creates a staff account with a published password; not in production."
            )
        for name, value in (
            ("--users", users),
            ("--workbooks", workbooks),
            ("--favorites", favorites),
            ("--follows", follows),
        ):
            if value is not None and value < 0:
                raise CommandError(f"{name} must be zero or more (got {value}).")
        if batch_size is not None and batch_size < 1:
            raise CommandError(f"--batch-size must be at least 1 (got {batch_size}).")
        bulk_only = [
            name
            for name, value in (
                ("--favorites", favorites),
                ("--follows", follows),
                ("--batch-size", batch_size),
                ("--seed", seed),
            )
            if value is not None
        ]
        if workbooks is None and bulk_only:
            raise CommandError(
                f"{', '.join(bulk_only)} only apply to bulk mode: add --workbooks N (0 is allowed)."
            )
        verbosity = int(options.get("verbosity", 1))  # type: ignore[call-overload]
        if workbooks is None:
            self._demo(DEFAULT_DEMO_USERS if users is None else users)
        else:
            self._bulk(
                workbooks=workbooks,
                users=users or 0,
                favorites=favorites,
                follows=follows,
                batch_size=batch_size or 10_000,
                seed=2026 if seed is None else seed,
                verbosity=verbosity,
            )
        self._finish()
        if capacity_history:
            # By name: the monitoring app provides it (workbooks does not import the monitoring layer).
            call_command("seed_capacity_history", stdout=self.stdout, stderr=self.stderr)

    def _finish(self) -> None:
        """What the seeded rows need before the site shows them: the prefix-search words (else ``?q=chur``
        finds nothing until the daily refresh), follower counts (the loaders write Follow rows directly),
        and fresh cached pages."""
        started = time.perf_counter()
        words = services.search_lexemes_refresh()
        people = account_services.recount_followers()
        invalidate.lists_changed()
        self.stdout.write(
            f"Search words refreshed ({words:,} words), follower counts of {people:,} people recounted, "
            f"cached pages invalidated in {time.perf_counter() - started:.1f}s."
        )

    def _demo(self, users: int) -> None:
        result = seed_gallery(users=users)
        self.stdout.write(
            f"Demo data: {result['users']} users and {result['follows']} follows created "
            f"({result['total_users']} demo users, {result['total_follows']} follows in all)."
        )
        self.stdout.write(
            f"Demo gallery: {result['workbooks']} workbooks, {result['tags']} tags, {result['favorites']} "
            f"favorites, {result['stats']} daily statistics and {result['thumbnails']} chart thumbnails created "
            f"({result['total_workbooks']} demo "
            f"workbooks, {result['total_favorites']} favorites on them)."
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo staff login: username '{DEMO_STAFF_USERNAME}', password '{DEMO_STAFF_PASSWORD}'"
            )
        )

    def _bulk(
        self,
        *,
        workbooks: int,
        users: int,
        favorites: int | None,
        follows: int | None,
        batch_size: int,
        seed: int,
        verbosity: int,
    ) -> None:
        started = time.perf_counter()
        try:
            loader = BulkLoader(
                workbooks=workbooks,
                users=users,
                favorites=favorites,
                follows=follows,
                batch_size=batch_size,
                seed=seed,
                # Progress goes to stderr so stdout stays a clean summary (and can be redirected).
                progress_stream=command_stream(self.stderr) if verbosity >= 1 else None,
                log=(lambda message: self.stderr.write(message)) if verbosity >= 2 else None,
            )
            result = loader.run()
        except BulkError as exc:
            raise CommandError(str(exc)) from exc
        total = time.perf_counter() - started
        lines = [f"Bulk load finished in {total:.1f}s ({result.rows:,} rows):"]
        for stat in result.tables:
            rate = stat.rows / stat.seconds if stat.seconds > 0 else 0.0
            lines.append(
                f"  {stat.table:<28} {stat.rows:>12,} rows  {stat.seconds:8.1f}s  {rate:>12,.0f} rows/s"
            )
        for name, seconds in result.phases:
            lines.append(f"  {name:<41} {seconds:8.1f}s")
        lines.append(f"  {'total':<28} {result.rows:>12,} rows  {total:8.1f}s")
        self.stdout.write("\n".join(lines))
