"""Prefix lookups on the search lexemes (PostgreSQL only)."""

from django.db import migrations

from sigma_playground.migration_ops import concurrent_index


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [("workbooks", "0004_search_lexeme")]

    operations = [
        # workbooks.search.expand_prefix: word LIKE 'reven%' (the primary key's index uses the database
        # collation, which cannot serve LIKE prefixes; text_pattern_ops can).
        concurrent_index("workbooks_lexeme_prefix_idx", "ON workbooks_searchlexeme (word text_pattern_ops)"),
    ]
