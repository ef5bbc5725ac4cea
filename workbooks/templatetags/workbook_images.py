"""``{% workbook_picture workbook %}``: a workbook's thumbnail as a responsive ``<picture>``.

Only derivatives are linked (never the private master). Until they exist, and for workbooks without a
thumbnail, a generated inline SVG chart (workbooks.previews) costs no request. Everything is attributes: the CSP allows no inline
style or script.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import template
from django.core.files.storage import default_storage

from workbooks import previews, thumbnails
from workbooks.models import Workbook

register = template.Library()

DEFAULT_SIZES = "(min-width: 60rem) 22rem, (min-width: 40rem) 45vw, 100vw"
# The <img> src for browsers without srcset support: 640 px or the largest below it.
FALLBACK_WIDTH = 640
PLACEHOLDER_SIZE = (640, 360)


def _entries(description: Mapping[str, Any], mime: str) -> list[tuple[int, int, str]]:
    """Valid (width, height, name) entries, narrowest first; only names in the derivative folder."""
    sources = description.get("sources")
    raw = sources.get(mime) if isinstance(sources, Mapping) else None
    entries = []
    for entry in raw if isinstance(raw, list) else ():
        if not (isinstance(entry, list | tuple) and len(entry) == 3):
            continue
        width, height, name = entry
        if (
            isinstance(width, int)
            and isinstance(height, int)
            and width > 0
            and height > 0
            and isinstance(name, str)
            and name.startswith(f"{thumbnails.DERIVATIVE_DIR}/")
        ):
            entries.append((width, height, name))
    return sorted(entries)


def _srcset(entries: list[tuple[int, int, str]]) -> str:
    return ", ".join(f"{default_storage.url(name)} {width}w" for width, _, name in entries)


def picture_context(description: Any) -> dict[str, Any] | None:
    """What picture.html needs for a ``thumbnail_derivatives`` value, or None to show the placeholder."""
    if not isinstance(description, Mapping):
        return None
    width, height = description.get("width"), description.get("height")
    jpeg = _entries(description, "image/jpeg")
    if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0 and jpeg):
        return None
    fallback = [entry for entry in jpeg if entry[0] <= FALLBACK_WIDTH] or jpeg[:1]
    sources = []
    for mime in ("image/avif", "image/webp"):
        entries = _entries(description, mime)
        if entries:
            sources.append({"type": mime, "srcset": _srcset(entries)})
    return {
        "sources": sources,
        "src": default_storage.url(fallback[-1][2]),
        "srcset": _srcset(jpeg),
        "width": width,
        "height": height,
    }


@register.inclusion_tag("workbooks/includes/picture.html")
def workbook_picture(workbook: Workbook, sizes: str = DEFAULT_SIZES, lazy: Any = True, alt: str = "") -> dict:
    """``lazy``: pass ``False`` for an image above the fold (no lazy loading, high fetch priority).
    Anything else, an undefined template variable included, keeps the safe default: lazy."""
    eager = lazy is False or lazy == 0 or (isinstance(lazy, str) and lazy.lower() == "false")
    picture = picture_context(workbook.thumbnail_derivatives) if workbook.thumbnail else None
    context: dict[str, Any] = {"picture": picture, "sizes": sizes, "lazy": not eager, "alt": alt}
    if picture is None:
        prefetched = getattr(workbook, "_prefetched_objects_cache", {})
        slugs = [tag.slug for tag in workbook.tags.all()] if "tags" in prefetched else []  # never a query
        context["preview"] = previews.preview_svg(
            workbook_id=workbook.pk or 0,
            tag_slugs=slugs,
            colour=thumbnails.placeholder_colour(workbook),
            width=PLACEHOLDER_SIZE[0],
            height=PLACEHOLDER_SIZE[1],
        )
    return context
