"""``User.follower_count`` for the people directory (/users/) and the indexes its two queries use (both
PostgreSQL only: the SQLite default scans its few rows); ``User.email_verified``, set by the link mailed at
sign-up (accounts.services.signup)."""

from django.db import migrations, models

from sigma_playground.migration_ops import PostgresOnlySQL, concurrent_index


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [("accounts", "0004_text_validators")]

    operations = [
        migrations.AddField(
            model_name="user",
            name="email_verified",
            field=models.BooleanField(db_default=False, default=False, editable=False),
        ),
        migrations.AddField(
            model_name="user",
            name="follower_count",
            field=models.PositiveIntegerField(db_default=0, default=0, editable=False),
        ),
        # Existing follows, counted once (new ones are counted by accounts.services).
        migrations.RunSQL(
            "UPDATE accounts_user SET follower_count = "
            "(SELECT count(*) FROM accounts_follow f WHERE f.followed_id = accounts_user.id)",
            reverse_sql=migrations.RunSQL.noop,
        ),
        # /users/ without a search: active people, most followed first (keyset on follower_count, id).
        concurrent_index(
            "accounts_user_most_followed_idx",
            "ON accounts_user (follower_count DESC, id DESC) WHERE is_active",
        ),
        # /users/?q= and the "People" block of a search: a substring of the username or the name
        # (accounts.selectors.people_matching), a trigram GIN lookup instead of a scan of every user.
        PostgresOnlySQL(
            sql="CREATE EXTENSION IF NOT EXISTS pg_trgm",
            reverse_sql=migrations.RunSQL.noop,
        ),
        concurrent_index(
            "accounts_user_name_trgm_idx",
            "ON accounts_user USING gin ((lower(username || ' ' || full_name)) gin_trgm_ops) WHERE is_active",
        ),
    ]
