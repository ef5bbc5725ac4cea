"""Fixed-window rate limits for costly actions (sign-ups and password resets per client address, image uploads
and email changes per user, reset mails per address).

A counter per action, subject and window in the cache (``cache.add`` then ``INCR``: two round trips, atomic
in Redis). Fails open: with the cache unreachable the action is allowed and the error is counted as a cache
error; the limit is a brake on abuse, not an access control. Every refusal is counted in
``sigma_rate_limited_total{action}`` and logged (at most a line every few seconds per action).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError

from sigma_playground.caching import keys
from sigma_playground.telemetry import metrics

logger = logging.getLogger("sigma_playground.ratelimit")

ACTIONS = ("signup", "image_upload", "email_change", "password_reset")
RATE_LIMITED = metrics.counter(
    "sigma_rate_limited_total",
    "Requests refused by a rate limit, by action (docs/security.md lists the limits).",
    {"action": ACTIONS},
    initialize=True,
)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int  # seconds until the window ends (when refused)


def hit(action: str, subject: str, *, limit: int, window_seconds: int, now: float | None = None) -> Decision:
    """Count one ``action`` by ``subject`` and say whether it is within ``limit`` per window."""
    if action not in ACTIONS:
        raise ValueError(f"unknown rate-limited action {action!r}")
    if limit <= 0:
        return Decision(True, 0)
    now = time.time() if now is None else now
    window = int(now // window_seconds)
    key = keys.rate_limit(action, subject, window)
    try:
        count = 1 if cache.add(key, 1, timeout=window_seconds + 60) else cache.incr(key)
    except Exception as exc:  # the cache is down: fail open
        logger.warning("rate limit %s not checked, cache unavailable: %s", action, type(exc).__name__)
        return Decision(True, 0)
    if count <= limit:
        return Decision(True, 0)
    RATE_LIMITED.inc(action=action)
    retry_after = max(1, int((window + 1) * window_seconds - now))
    logger.warning(
        "rate limited: %s, %d in this window (limit %d per %d s)", action, count, limit, window_seconds,
        extra={"action": action, "retry_after": retry_after},
    )  # fmt: skip
    return Decision(False, retry_after)


def image_upload(user_id: int) -> None:
    """Count an image upload (thumbnail or profile picture) by ``user_id``; a ValidationError (a form error)
    once IMAGE_UPLOADS_PER_HOUR is used up. Checked before the image is decoded: refusing costs nothing."""
    decision = hit(
        "image_upload", f"user:{user_id}", limit=settings.IMAGE_UPLOADS_PER_HOUR, window_seconds=3600
    )
    if not decision.allowed:
        minutes = max(1, round(decision.retry_after / 60))
        raise ValidationError(
            f"You have uploaded {settings.IMAGE_UPLOADS_PER_HOUR} images in the last hour, the most allowed. "
            f"Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
            code="upload_rate_limited",
        )
