"""Hand-written indexes for the gallery (PostgreSQL only; the SQLite default skips them).

"Listed" below is the filter every public list shares (Workbook.objects.listed()):
visibility = 'public' AND published_at IS NOT NULL (plus author.is_active, checked by a join on the
user's primary key). The list indexes are partial on it, so unlisted, private and draft rows cost
nothing in them, and each one is ordered exactly as its list is sorted, with id as the unique
tie-break that keyset pagination seeks on: ``WHERE (key, id) < (%s, %s) ORDER BY key DESC, id DESC``
is one index range scan, so page 500 costs what page 1 costs.

Where the design document was wrong:
- Its "recent workbooks" index has ``WHERE created_at > NOW() - INTERVAL '30 days'``: PostgreSQL
  refuses it (index predicates must be immutable, and NOW() is not); and it would go stale anyway.
  Recent-window queries (``published_at >= now() - interval '7 days'``) are range scans on
  workbooks_listed_newest_idx below, and trending reads a stored score (workbooks.trending).
- Its covering index leads with ``id``, so it can serve neither ``ORDER BY published_at`` nor an
  ORDER BY on counts; the four list indexes below lead with their sort key instead. They are not
  INCLUDE-covering for the card columns on purpose: the page reads 20 heap rows, and copying title,
  slug and thumbnail data into four indexes would more than double their size for no measurable gain.
"""

from django.db import migrations

from sigma_playground.migration_ops import concurrent_index

LISTED = "WHERE visibility = 'public' AND published_at IS NOT NULL"


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [("workbooks", "0002_search_vector")]

    operations = [
        # /workbooks/?sort=newest (the default), home "Newest", the exact/estimated list count; read
        # backwards it serves sort=oldest too.
        concurrent_index(
            "workbooks_listed_newest_idx", f"ON workbooks_workbook (published_at DESC, id DESC) {LISTED}"
        ),
        # /workbooks/?sort=popular
        concurrent_index(
            "workbooks_listed_popular_idx", f"ON workbooks_workbook (favorite_count DESC, id DESC) {LISTED}"
        ),
        # /workbooks/?sort=trending and home "Trending"
        concurrent_index(
            "workbooks_listed_trending_idx", f"ON workbooks_workbook (trending_score DESC, id DESC) {LISTED}"
        ),
        # Profile: the 12 newest listed workbooks of one author; the profile counts (count and sum of
        # favorite_count, index-only thanks to INCLUDE); the feed (author_id IN followed, newest first).
        concurrent_index(
            "workbooks_author_listed_idx",
            f"ON workbooks_workbook (author_id, published_at DESC, id DESC) INCLUDE (favorite_count) {LISTED}",
        ),
        # Home "Featured": a handful of rows, newest first.
        concurrent_index(
            "workbooks_featured_idx",
            f"ON workbooks_workbook (published_at DESC, id DESC) {LISTED} AND is_featured",
        ),
        # Full-text search: search_vector @@ tsquery (workbooks.search).
        concurrent_index("workbooks_search_idx", "ON workbooks_workbook USING gin (search_vector)"),
        # Tag filter (EXISTS on tag_id), tag pages, related workbooks, tag usage counts: index-only on
        # (tag_id) INCLUDE (workbook_id). The unique pair (workbook_id, tag_id) serves the other direction.
        concurrent_index(
            "workbooks_wbtag_tag_idx", "ON workbooks_workbooktag (tag_id) INCLUDE (workbook_id)"
        ),
        # /favorites/: one user's favorites, newest first, keyset by (created_at, id).
        concurrent_index(
            "workbooks_fav_user_date_idx", "ON workbooks_favorite (user_id, created_at DESC, id DESC)"
        ),
        # Favorites of one workbook: the nightly counter recount and the cascade when a workbook is
        # deleted (the unique pair index leads with user_id and cannot serve these).
        concurrent_index("workbooks_fav_workbook_idx", "ON workbooks_favorite (workbook_id)"),
        # Trending recompute: the last 7 days of statistics, index-only.
        concurrent_index(
            "workbooks_dailystat_date_idx",
            "ON workbooks_workbookdailystat (date) INCLUDE (workbook_id, views, favorites)",
        ),
    ]
