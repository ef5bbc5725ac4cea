"""The full-text column (PostgreSQL only).

A stored generated tsvector: title weighted A, tag names B, description C, with the 'english'
configuration (to_tsvector(regconfig, text) is immutable, as a generated column requires). Tags live in
another table, which a generated column cannot read, so ``tag_names`` is a denormalised copy that
workbooks.services keeps in step with every tag write. It is not a Django model field: queries reach it
through workbooks.search. Adding it rewrites the table, so on a large existing table run this migration
in a maintenance window.
"""

from django.db import migrations

from sigma_playground.migration_ops import PostgresOnlySQL


class Migration(migrations.Migration):
    dependencies = [("workbooks", "0001_initial")]

    operations = [
        PostgresOnlySQL(
            sql="""
                ALTER TABLE workbooks_workbook ADD COLUMN IF NOT EXISTS search_vector tsvector
                GENERATED ALWAYS AS (
                    setweight(to_tsvector('english'::regconfig, coalesce(title, '')), 'A')
                    || setweight(to_tsvector('english'::regconfig, coalesce(tag_names, '')), 'B')
                    || setweight(to_tsvector('english'::regconfig, coalesce(description, '')), 'C')
                ) STORED
            """,
            reverse_sql="ALTER TABLE workbooks_workbook DROP COLUMN IF EXISTS search_vector",
        ),
    ]
