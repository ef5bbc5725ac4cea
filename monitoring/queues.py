"""Celery queue lengths, asked of the broker (Redis in production, kombu's in-memory transport otherwise)."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

BROKER_TIMEOUT_S = 0.5


def queue_names() -> list[str]:
    from sigma_playground.celery import app

    names = {app.conf.task_default_queue}
    for queue in app.conf.task_queues or ():
        names.add(getattr(queue, "name", queue))
    routes = app.conf.task_routes
    for route in routes.values() if isinstance(routes, dict) else ():
        if isinstance(route, dict) and route.get("queue"):
            names.add(route["queue"])  # the media queue of thumbnail renders
    return sorted(str(name) for name in names)


def queue_lengths() -> tuple[dict[str, int], bool]:
    """({queue: messages waiting}, broker answered). A queue nobody declared yet holds 0 messages."""
    from sigma_playground.celery import app

    options = {
        **(app.conf.broker_transport_options or {}),
        "socket_timeout": BROKER_TIMEOUT_S,
        "socket_connect_timeout": BROKER_TIMEOUT_S,
        "max_retries": 0,
    }
    lengths: dict[str, int] = {}
    try:
        with app.connection_for_read(transport_options=options, connect_timeout=BROKER_TIMEOUT_S) as conn:
            # kombu takes a float timeout (celery-types says int).
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=BROKER_TIMEOUT_S)  # type: ignore[arg-type]
            # The transport's own Channel: kombu's StdChannel, its declared type, has no queue_declare.
            channel: Any = conn.default_channel
            for name in queue_names():
                try:
                    lengths[name] = int(channel.queue_declare(queue=name, passive=True).message_count)
                except Exception as exc:  # kombu raises ChannelError (404) for a queue never declared
                    if "NOT_FOUND" not in str(exc) and "404" not in repr(getattr(exc, "code", "")):
                        raise
                    lengths[name] = 0
                    channel = conn.channel()
    except Exception as exc:
        logger.warning("queue lengths: broker %s did not answer: %s", _safe_url(), type(exc).__name__)
        return {}, False
    return lengths, True


def _safe_url() -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(settings.CELERY_BROKER_URL)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"
