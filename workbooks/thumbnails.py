"""Workbook thumbnails: the validated master, its derivatives, the placeholder.

An upload goes through ``sigma_playground.images`` (decoded, checked, oriented, stripped) and becomes a
re-encoded WebP *master* in the private storage, which nothing serves. After the transaction commits a
Celery task (``workbooks.tasks.render_thumbnail_derivatives``) renders the *derivatives* from the master,
AVIF, WebP and JPEG at each width of ``THUMBNAIL_WIDTHS`` that is not wider than the master (a master
narrower than the smallest width gets one derivative at its own width: never an upscale), into the default
storage, and records them in ``Workbook.thumbnail_derivatives``:

    {"master": "thumbnails/7/<token>.webp", "width": 1536, "height": 864,
     "sources": {"image/avif": [[320, 180, "thumbs/7/<token>-320.avif"], ...],
                 "image/webp": [...], "image/jpeg": [...]}}

Derivative names carry the master's token, so a new upload gets new URLs (they can be cached forever).
Pages only ever link derivatives; until they exist the template shows an inline SVG placeholder.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import posixpath
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, default_storage, storages
from django.db import transaction
from PIL import Image

from sigma_playground.images import (
    ProcessedImage,
    encode,
    normalise,
    open_checked,
    read_limited,
)

if TYPE_CHECKING:
    from workbooks.models import Workbook

logger = logging.getLogger(__name__)

THUMBNAIL_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "AVIF"})

# Tall screenshots keep their top, very wide ones their left part: a card shows a 16:9 crop anyway, and
# this keeps every master (at most 1536 px wide) far inside WebP's 16383 px limit.
MAX_ASPECT_RATIO = 3

MASTER_DIR = "thumbnails"
DERIVATIVE_DIR = "thumbs"

# (MIME type, Pillow format, file extension, encoder options), in the order <source> elements appear.
DERIVATIVE_FORMATS: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    ("image/avif", "AVIF", "avif", {"quality": 60, "speed": 6}),
    ("image/webp", "WEBP", "webp", {"quality": 80, "method": 4}),
    ("image/jpeg", "JPEG", "jpg", {"quality": 82}),
)

# Placeholder colours for workbooks without tags (or whose tags were not prefetched).
PLACEHOLDER_PALETTE = ("#2456d3", "#0f766e", "#7c3aed", "#b45309", "#be123c", "#0369a1", "#4d7c0f", "#64748b")
_HEX_COLOUR_RE = re.compile(r"^#[0-9a-fA-F]{6}\Z")
_MASTER_NAME_RE = re.compile(rf"^{MASTER_DIR}/(\d+)/([0-9a-f]{{32}})\.webp\Z")


def private_storage() -> Storage:
    return storages["private"]


def max_width() -> int:
    return max(settings.THUMBNAIL_WIDTHS)


# --- The master -----------------------------------------------------------------------------------------


def _crop_to_aspect(image: Image.Image) -> Image.Image:
    width, height = image.size
    if height > width * MAX_ASPECT_RATIO:
        return image.crop((0, 0, width, width * MAX_ASPECT_RATIO))
    if width > height * MAX_ASPECT_RATIO:
        return image.crop((0, 0, height * MAX_ASPECT_RATIO, height))
    return image


def prepare_master(upload: Any) -> ProcessedImage:
    """Validate an uploaded thumbnail and return the re-encoded WebP master.

    Raises ``ImageRejected`` (its message is for the user) for anything but a still JPEG, PNG, WebP or
    AVIF image within the byte and pixel limits: bombs, polyglots, SVG, truncated files, non-images.
    PNG sources (screenshots, usually) become lossless masters, the rest high-quality lossy ones, so the
    derivatives are encoded from pixels as close to the upload as possible."""
    data = read_limited(upload, settings.THUMBNAIL_MAX_BYTES)
    source = open_checked(data, formats=THUMBNAIL_FORMATS, max_pixels=settings.IMAGE_UPLOAD_MAX_PIXELS)
    lossless = source.format == "PNG"
    image = _crop_to_aspect(normalise(source))
    limit = max_width()
    if image.width > limit:
        height = max(1, round(image.height * limit / image.width))
        image = image.resize((limit, height), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if lossless:
        image.save(out, format="WEBP", lossless=True, quality=50, method=4)
    else:
        image.save(out, format="WEBP", quality=92, method=4)
    return ProcessedImage(
        content=out.getvalue(), width=image.width, height=image.height, format="WEBP", extension="webp"
    )


def save_master(*, workbook_id: int, image: ProcessedImage) -> str:
    """Store a master in the private storage and return its name."""
    name = f"{MASTER_DIR}/{workbook_id}/{uuid.uuid4().hex}.{image.extension}"
    return private_storage().save(name, ContentFile(image.content))


def enqueue_thumbnail_render(workbook_id: int, master_name: str) -> None:
    """Render the derivatives once the transaction that stored the master has committed.

    ``robust``: a broker outage must not turn a committed save into an error page; the workbook keeps its
    placeholder and ``render_pending_thumbnails`` picks it up later."""
    from workbooks.tasks import render_thumbnail_derivatives

    transaction.on_commit(lambda: render_thumbnail_derivatives.delay(workbook_id, master_name), robust=True)


# --- Derivatives ----------------------------------------------------------------------------------------


def derivative_widths(master_width: int) -> list[int]:
    """The listed widths not wider than the master; a master narrower than all of them gets its own."""
    widths = [w for w in sorted(settings.THUMBNAIL_WIDTHS) if w <= master_width]
    return widths or [master_width]


def _token(master_name: str) -> str:
    return posixpath.splitext(posixpath.basename(master_name))[0]


def _derivative_prefix(master_name: str, workbook_id: int) -> str:
    return f"{DERIVATIVE_DIR}/{workbook_id}/{_token(master_name)}-"


def _save_replacing(storage: Storage, name: str, content: bytes) -> str:
    # Deterministic names make a re-run of the task overwrite instead of piling up "_a1b2c3d" copies.
    if storage.exists(name):
        storage.delete(name)
    return storage.save(name, ContentFile(content))


def render_derivatives(master_name: str, *, workbook_id: int) -> dict[str, Any]:
    """Render every derivative of a master into the default storage and return their description."""
    with private_storage().open(master_name, "rb") as fh:
        data = fh.read()
    with Image.open(io.BytesIO(data), formats=["WEBP"]) as opened:
        opened.load()
        master = normalise(opened)
    width, height = master.size
    prefix = _derivative_prefix(master_name, workbook_id)
    sources: dict[str, list[list[int | str]]] = {mime: [] for mime, *_ in DERIVATIVE_FORMATS}
    saved: list[str] = []
    try:
        for w in derivative_widths(width):
            h = max(1, round(height * w / width))
            resized = master if w == width else master.resize((w, h), Image.Resampling.LANCZOS)
            for mime, fmt, ext, options in DERIVATIVE_FORMATS:
                if fmt == "JPEG":
                    content = encode(resized, "JPEG", quality=options["quality"])  # RGB, progressive
                else:
                    out = io.BytesIO()
                    resized.save(out, format=fmt, **options)
                    content = out.getvalue()
                name = _save_replacing(default_storage, f"{prefix}{w}.{ext}", content)
                saved.append(name)
                sources[mime].append([w, h, name])
    except Exception:
        delete_names(default_storage, saved)
        raise
    return {"master": master_name, "width": width, "height": height, "sources": sources}


def derivative_names(description: Mapping[str, Any]) -> list[str]:
    """Every derivative file a description lists (tolerating malformed or empty descriptions)."""
    names: list[str] = []
    sources = description.get("sources") if isinstance(description, Mapping) else None
    if not isinstance(sources, Mapping):
        return names
    for entries in sources.values():
        for entry in entries if isinstance(entries, list) else ():
            if isinstance(entry, list | tuple) and len(entry) == 3 and isinstance(entry[2], str):
                names.append(entry[2])
    return names


def delete_names(storage: Storage, names: Iterable[str]) -> None:
    for name in names:
        try:
            storage.delete(name)
        except Exception:
            logger.warning("thumbnails: could not delete %s", name, exc_info=True)


def _delete_by_prefix(master_name: str) -> None:
    """Delete derivatives of a master that no description lists (a task that rendered while the master
    was being replaced)."""
    match = _MASTER_NAME_RE.match(master_name)
    if not match:
        return
    prefix = _derivative_prefix(master_name, int(match.group(1)))
    directory, stem = posixpath.split(prefix)
    try:
        _, files = default_storage.listdir(directory)
    except (FileNotFoundError, NotImplementedError):
        return
    delete_names(default_storage, [f"{directory}/{f}" for f in files if f.startswith(stem)])


def delete_files(description: Mapping[str, Any]) -> None:
    """Delete a master (``description["master"]``, private storage) and all its derivatives.

    Call it from ``transaction.on_commit`` when a thumbnail is replaced or removed or its workbook is
    deleted. ``description`` is a ``thumbnail_derivatives`` value, possibly ``{}`` plus ``"master"``;
    derivatives of the master are found by name too, so files no description recorded go as well."""
    delete_names(default_storage, derivative_names(description))
    master = description.get("master") if isinstance(description, Mapping) else None
    if isinstance(master, str) and master:
        _delete_by_prefix(master)
        delete_names(private_storage(), [master])


# --- Orphans --------------------------------------------------------------------------------------------

# A master younger than this may belong to a transaction still running: the sweep leaves it alone.
ORPHAN_MIN_AGE_SECONDS = 3600


def sweep_orphan_masters(*, older_than: float = ORPHAN_MIN_AGE_SECONDS) -> int:
    """Delete masters (and their derivatives) that no workbook refers to: left by a transaction that rolled
    back around the service that saved them, or by a process that died in between. Returns how many."""
    from django.utils import timezone

    from workbooks.models import Workbook

    storage = private_storage()
    try:
        directories, _ = storage.listdir(MASTER_DIR)
    except (FileNotFoundError, NotImplementedError):
        return 0
    cutoff = timezone.now() - dt.timedelta(seconds=older_than)
    removed = 0
    for directory in sorted(directories):
        if not directory.isdigit():
            continue
        _, files = storage.listdir(f"{MASTER_DIR}/{directory}")
        used = set(Workbook.objects.filter(pk=int(directory)).values_list("thumbnail", flat=True))
        for file in files:
            name = f"{MASTER_DIR}/{directory}/{file}"
            if name in used or storage.get_modified_time(name) > cutoff:
                continue
            logger.info("thumbnails: removing orphan master %s", name)
            delete_files({"master": name})
            removed += 1
    return removed


# --- Placeholder ----------------------------------------------------------------------------------------


def placeholder_colour(workbook: Workbook) -> str:
    """The colour of the workbook's first tag (by name) when its tags were prefetched, otherwise one
    picked from the workbook id. Never runs a query."""
    prefetched = getattr(workbook, "_prefetched_objects_cache", {})
    if "tags" in prefetched:
        tags = list(workbook.tags.all())  # served by the prefetch
        if tags:
            first = min(tags, key=lambda tag: (tag.name.casefold(), tag.name, tag.pk or 0))
            if _HEX_COLOUR_RE.match(first.colour or ""):
                return first.colour.lower()
    return PLACEHOLDER_PALETTE[(workbook.pk or 0) % len(PLACEHOLDER_PALETTE)]
