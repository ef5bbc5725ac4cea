"""Migration operations for PostgreSQL-only SQL (indexes the embedded SQLite default does without)."""

from __future__ import annotations

from django.db import migrations


class PostgresOnlySQL(migrations.RunSQL):
    """``RunSQL`` that runs on PostgreSQL and is a no-op elsewhere, in both directions.

    Index migrations use it with ``CREATE INDEX CONCURRENTLY IF NOT EXISTS`` forwards and
    ``DROP INDEX CONCURRENTLY IF EXISTS`` backwards, inside a migration with ``atomic = False``
    (CONCURRENTLY refuses to run in a transaction block).
    """

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)

    def describe(self) -> str:
        return f"PostgreSQL only: {str(self.sql).strip().splitlines()[0][:80]}"


def concurrent_index(name: str, definition: str) -> PostgresOnlySQL:
    """``CREATE INDEX CONCURRENTLY IF NOT EXISTS <name> <definition>`` with its reverse."""
    return PostgresOnlySQL(
        sql=f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} {definition}",
        reverse_sql=f"DROP INDEX CONCURRENTLY IF EXISTS {name}",
    )
