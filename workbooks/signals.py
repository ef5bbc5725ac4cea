"""Events of the gallery that other apps react to (notifications). Sent by workbooks.services after the
write is committed; receivers must be quick and must not fail the write (they queue Celery work)."""

from django.dispatch import Signal

# workbook: Workbook, user: the User who favorited
workbook_favorited = Signal()
# workbook: Workbook (just published: listed or unlisted, never private or a draft)
workbook_published = Signal()
# workbook: Workbook; broken: True when the link was just marked broken, False when it recovered
embed_link_changed = Signal()
