"""Hand-written indexes for accounts (PostgreSQL only; the SQLite default skips them).

Not created here, on purpose:
- lower(username) and lower(email): the unique constraints accounts_user_username_ci_uniq and
  accounts_user_email_ci_uniq (0001) are unique indexes on exactly those expressions; they already serve
  log-in (username__lower, see accounts.models.ci), the profile URL lookup and sign-up's duplicate checks. A second index would
  be a duplicate.
- follower+followed: the unique constraint accounts_follow_pair_uniq serves "does A follow B" and the
  feed's "whom does A follow" subquery (index-only on follower_id, followed_id).
"""

from django.db import migrations

from sigma_playground.migration_ops import concurrent_index


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [("accounts", "0001_initial")]

    operations = [
        # Followers page, newest first, keyset by (created_at, id); also the followers count on profiles.
        concurrent_index(
            "accounts_follow_followed_date_idx",
            "ON accounts_follow (followed_id, created_at DESC, id DESC)",
        ),
        # Following page, newest first, keyset by (created_at, id); also the following count.
        concurrent_index(
            "accounts_follow_follower_date_idx",
            "ON accounts_follow (follower_id, created_at DESC, id DESC)",
        ),
    ]
