"""Signal receivers: each event becomes a Celery task queued after the write commits (the senders send on
commit). ``robust``-style: a broker outage loses the notification, never the favorite or the follow."""

from __future__ import annotations

import logging

from django.dispatch import receiver

from accounts.signals import user_followed
from notifications import tasks
from workbooks.signals import embed_link_changed, workbook_favorited, workbook_published

logger = logging.getLogger(__name__)


def _queue(task, *args) -> None:
    try:
        task.delay(*args)
    except Exception:
        logger.exception("notifications: could not queue %s%s", task.name, args)


@receiver(user_followed)
def on_follow(sender, follower, followed, **kwargs) -> None:
    _queue(tasks.notify_new_follower, follower.pk, followed.pk)


@receiver(workbook_favorited)
def on_favorite(sender, workbook, user, **kwargs) -> None:
    if workbook.author_id != user.pk:
        _queue(tasks.notify_favorite, workbook.pk, user.pk)


@receiver(workbook_published)
def on_publish(sender, workbook, **kwargs) -> None:
    _queue(tasks.fan_out_new_workbook, workbook.pk, None)


@receiver(embed_link_changed)
def on_embed_link(sender, workbook, broken, **kwargs) -> None:
    _queue(tasks.notify_embed_link, workbook.pk, broken)
