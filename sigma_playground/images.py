"""Validation and re-encoding of uploaded images.

An upload is never stored or served as sent. It is read with a byte limit, its header decoded to check
the format and the pixel count before any pixel is decompressed, then fully decoded (which catches
truncation), rotated by its EXIF orientation, resized, and re-encoded without metadata. Everything that
goes wrong becomes an ``ImageRejected`` with a message fit to show the user.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from typing import IO

from PIL import Image, ImageOps, UnidentifiedImageError

# Formats a browser shows and Pillow decodes safely. SVG is never accepted (it is a document, with script).
DEFAULT_FORMATS = frozenset({"JPEG", "PNG", "WEBP"})
FORMAT_LABELS = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP", "AVIF": "AVIF"}

# Markup or script inside an "image" means a polyglot: a file that is also an HTML page or a script.
_MARKUP_RE = re.compile(rb"<\s*(?:script|html|!doctype|svg|iframe|body|object|embed)\b|<\?php", re.IGNORECASE)


class ImageRejected(ValueError):
    """The upload is not an acceptable image; ``str(exc)`` is the message for the user."""


@dataclass(frozen=True)
class ProcessedImage:
    content: bytes
    width: int
    height: int
    format: str  # Pillow format name of the re-encoded image
    extension: str


def read_limited(upload: IO[bytes], max_bytes: int) -> bytes:
    """Read at most ``max_bytes``; refuse anything larger without reading it all."""
    if hasattr(upload, "seek"):
        upload.seek(0)
    if getattr(upload, "size", None) is not None and upload.size > max_bytes:
        raise ImageRejected(f"The image is larger than {max_bytes // (1024 * 1024)} MB.")
    data = upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ImageRejected(f"The image is larger than {max_bytes // (1024 * 1024)} MB.")
    if not data:
        raise ImageRejected("The file is empty.")
    return data


def _trailing_data(data: bytes, fmt: str) -> bool:
    """True when bytes follow the image's end marker (how image/HTML polyglots are usually built)."""
    if fmt == "PNG":
        end = data.rfind(b"IEND")
        return end == -1 or len(data[end + 8 :].strip(b"\x00")) > 0
    if fmt == "JPEG":
        return not data.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9")
    return False


def open_checked(data: bytes, *, formats: frozenset[str], max_pixels: int) -> Image.Image:
    """Decode ``data`` fully, refusing unknown formats, bombs, truncation and polyglots."""
    allowed = ", ".join(sorted(FORMAT_LABELS.get(f, f) for f in formats))
    if _MARKUP_RE.search(data):
        raise ImageRejected(f"That file is not a plain image. Upload a {allowed} image.")
    with warnings.catch_warnings():
        # DecompressionBombWarning becomes an error: we never decode a suspiciously large image.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=list(formats))
        except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageRejected(f"That file is not a supported image. Upload a {allowed} image.") from None
        except Exception:
            raise ImageRejected(f"That image could not be read. Upload a {allowed} image.") from None
        width, height = image.size
        if width < 1 or height < 1 or width * height > max_pixels:
            raise ImageRejected(
                f"The image is too large ({width}x{height} pixels); the limit is "
                f"{max_pixels // 1_000_000} megapixels."
            )
        if getattr(image, "n_frames", 1) > 1:
            raise ImageRejected("Animated images are not accepted. Upload a still image.")
        if _trailing_data(data, image.format or ""):
            raise ImageRejected(f"That file is not a plain image. Upload a {allowed} image.")
        try:
            image.load()
        except Exception:
            # Truncated or corrupt pixel data (Pillow raises OSError, SyntaxError, ValueError...).
            raise ImageRejected("That image is damaged or incomplete. Upload it again.") from None
    return image


def normalise(image: Image.Image) -> Image.Image:
    """Apply EXIF orientation and convert to a mode every encoder takes (metadata is dropped on save)."""
    image = ImageOps.exif_transpose(image)
    if image.mode in {"RGBA", "LA"} or (image.mode == "P" and "transparency" in image.info):
        return image.convert("RGBA")
    return image.convert("RGB")


def encode(image: Image.Image, fmt: str = "WEBP", quality: int = 82) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG" and image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        image = background
    # No exif=, no icc_profile=: the re-encoded file carries pixels only.
    params: dict[str, object] = {"quality": quality}
    if fmt == "JPEG":
        params.update(optimize=True, progressive=True)
    elif fmt == "WEBP":
        params.update(method=4)
    image.save(out, format=fmt, **params)
    return out.getvalue()


def process_upload(
    upload: IO[bytes],
    *,
    max_bytes: int,
    max_pixels: int,
    box: tuple[int, int],
    formats: frozenset[str] = DEFAULT_FORMATS,
    crop_square: bool = False,
) -> ProcessedImage:
    """Validate an upload and return a re-encoded WebP no larger than ``box``."""
    data = read_limited(upload, max_bytes)
    image = normalise(open_checked(data, formats=formats, max_pixels=max_pixels))
    if crop_square:
        image = ImageOps.fit(image, box, method=Image.Resampling.LANCZOS)
    else:
        image.thumbnail(box, Image.Resampling.LANCZOS)
    content = encode(image, "WEBP")
    return ProcessedImage(
        content=content, width=image.width, height=image.height, format="WEBP", extension="webp"
    )
