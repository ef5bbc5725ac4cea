"""Serving uploaded media: only derivatives (thumbnails) and re-encoded avatars, never anything else.

Their names change with every upload, so they are cached for MEDIA_CACHE_MAX_AGE (30 days) and marked
immutable. In production a web server or CDN in front should serve /media/ from MEDIA_ROOT with the same
rules; this view keeps the rules true where it does not.
"""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest
from django.http.response import HttpResponseBase
from django.utils.cache import patch_cache_control
from django.views.static import serve

SERVED_PREFIXES = ("thumbs/", "avatars/")


# Our own names are short (thumbs/<id>/<32 hex>-<width>.<ext>); anything longer than the file system takes
# (255 bytes a name on ext4, a few KB a path) made os.stat raise OSError, a 500.
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 1024


def _plausible(path: str) -> bool:
    parts = path.split("/")
    return (
        path.startswith(SERVED_PREFIXES)
        and ".." not in parts
        and len(path.encode()) <= MAX_PATH_BYTES
        and all(len(part.encode()) <= MAX_NAME_BYTES for part in parts)
    )


def media(request: HttpRequest, path: str) -> HttpResponseBase:
    if not _plausible(path):
        raise Http404("Not found.")
    response = serve(request, path, document_root=str(settings.MEDIA_ROOT))
    patch_cache_control(response, public=True, max_age=settings.MEDIA_CACHE_MAX_AGE, immutable=True)
    response["X-Content-Type-Options"] = "nosniff"
    return response
