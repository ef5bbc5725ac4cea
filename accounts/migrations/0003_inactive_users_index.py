"""The few deactivated accounts (PostgreSQL only; the SQLite default skips it)."""

from django.db import migrations

from sigma_playground.migration_ops import concurrent_index


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [("accounts", "0002_indexes")]

    operations = [
        # Workbook.objects.listed() and the follow lists exclude deactivated people with an anti-join
        # "NOT EXISTS (user with this id and not is_active)": a probe of this tiny partial index per row,
        # where a join on is_active would hash all 100,000 users (bench-db: the rare-word search and the
        # follower count at 1M rows were 15-30 ms slower for it).
        concurrent_index("accounts_user_inactive_idx", "ON accounts_user (id) WHERE NOT is_active"),
    ]
