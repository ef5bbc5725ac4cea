"""The request body limit, enforced in front of everything (``sigma_playground.wsgi``).

A request whose ``Content-Length`` is above REQUEST_BODY_MAX_BYTES is answered 413 before a byte of its body
is read: Django would otherwise stream a multipart upload of any size to a temporary file (only the non-file
part of a form is bounded by DATA_UPLOAD_MAX_MEMORY_SIZE). A chunked body (no Content-Length; gunicorn
marks it ``wsgi.input_terminated``) is read here, counting, up to the limit and refused with 413 as soon as
it goes over; one within the limit is handed to Django from memory with its length set. So no request body
above the limit reaches Django, the disk, or more memory than the limit.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings

from sigma_playground.telemetry import metrics

logger = logging.getLogger("sigma_playground.body_limit")

StartResponse = Callable[..., Any]
CHUNK = 64 * 1024
BODIES_REFUSED = metrics.counter(
    "sigma_request_body_refused_total",
    "Requests answered 413 because their body was above REQUEST_BODY_MAX_BYTES, by how that was known.",
    {"reason": ("content_length", "chunked")},
    initialize=True,
)
_PAGE = (
    b"<!doctype html><html lang=en><meta charset=utf-8><title>Request too large</title>"
    b"<h1>Request too large</h1><p>The request body is larger than this site accepts (%d MB at most). "
    b"Images can be up to %d MB.</p></html>"
)


def _too_large(start_response: StartResponse, reason: str, environ: dict) -> Iterable[bytes]:
    limit = settings.REQUEST_BODY_MAX_BYTES
    BODIES_REFUSED.inc(reason=reason)
    logger.warning(
        "request body too large (%s): %s %s, limit %d bytes",
        reason,
        environ.get("REQUEST_METHOD"),
        environ.get("PATH_INFO", "")[:200],
        limit,
        extra={"reason": reason, "limit_bytes": limit},
    )
    body = _PAGE % (max(1, limit // 1_048_576), settings.IMAGE_UPLOAD_MAX_BYTES // 1_048_576)
    start_response(
        "413 Content Too Large",
        [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),  # the unread body must not be taken for the next request
            ("Cache-Control", "no-store"),
        ],
    )
    return [body]


def _content_length(environ: dict) -> int | None:
    raw = (environ.get("CONTENT_LENGTH") or "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        return None


class BodySizeLimit:
    def __init__(self, application: Callable[[dict, StartResponse], Iterable[bytes]]) -> None:
        self.application = application

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        limit = settings.REQUEST_BODY_MAX_BYTES
        length = _content_length(environ)
        if length is not None:
            if length > limit:
                return _too_large(start_response, "content_length", environ)
        elif (
            environ.get("wsgi.input_terminated")
            or "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        ):
            body = io.BytesIO()
            stream = environ["wsgi.input"]
            while True:
                chunk = stream.read(min(CHUNK, limit + 1 - body.tell()))
                if not chunk:
                    break
                body.write(chunk)
                if body.tell() > limit:
                    return _too_large(start_response, "chunked", environ)
            environ["wsgi.input"] = io.BytesIO(body.getvalue())
            environ["CONTENT_LENGTH"] = str(body.tell())
        return self.application(environ, start_response)
