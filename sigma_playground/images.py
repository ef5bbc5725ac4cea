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

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

# Formats a browser shows and Pillow decodes safely. SVG is never accepted (it is a document, with script).
DEFAULT_FORMATS = frozenset({"JPEG", "PNG", "WEBP"})
FORMAT_LABELS = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP", "AVIF": "AVIF"}

# Markup or script inside an "image" means a polyglot: a file that is also an HTML page or a script.
_MARKUP_RE = re.compile(rb"<\s*(?:script|html|!doctype|svg|iframe|body|object|embed)\b|<\?php", re.IGNORECASE)


_SRGB = ImageCms.createProfile("sRGB")


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
    size = getattr(upload, "size", None)  # Django's uploaded files know theirs
    if size is not None and size > max_bytes:
        raise ImageRejected(f"The image is larger than {max_bytes // (1024 * 1024)} MB.")
    data = upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ImageRejected(f"The image is larger than {max_bytes // (1024 * 1024)} MB.")
    if not data:
        raise ImageRejected("The file is empty.")
    return data


def _png_end(data: bytes) -> int | None:
    """Offset just past the IEND chunk, walking the chunk list (so "IEND" inside appended text is not
    mistaken for the end)."""
    i, n = 8, len(data)
    while i + 12 <= n:
        length = int.from_bytes(data[i : i + 4], "big")
        kind = data[i + 4 : i + 8]
        i += 12 + length
        if kind == b"IEND":
            return i if i <= n else None
    return None


def _jpeg_end(data: bytes) -> int | None:
    """Offset just past the EOI marker, walking the segments and the entropy-coded scans between them."""
    n = len(data)
    if not data.startswith(b"\xff\xd8"):
        return None
    i = 2
    while i < n:
        if data[i] != 0xFF:
            return None
        while i < n and data[i] == 0xFF:  # fill bytes before a marker
            i += 1
        if i >= n:
            return None
        marker = data[i]
        i += 1
        if marker == 0xD9:  # EOI
            return i
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            continue
        if i + 2 > n:
            return None
        length = int.from_bytes(data[i : i + 2], "big")
        if length < 2:
            return None
        i += length
        if marker == 0xDA:  # SOS: scan data runs to the next marker that is not stuffing or a restart
            while True:
                j = data.find(b"\xff", i)
                if j == -1 or j + 1 >= n:
                    return None
                following = data[j + 1]
                if following == 0x00 or 0xD0 <= following <= 0xD7:
                    i = j + 2
                    continue
                i = j
                break
    return None


def _riff_end(data: bytes) -> int | None:
    if len(data) < 12 or data[:4] != b"RIFF":
        return None
    size = int.from_bytes(data[4:8], "little")
    return 8 + size + (size & 1)


def _isobmff_end(data: bytes) -> int | None:
    """Offset just past the last top-level box of an ISO-BMFF file (AVIF)."""
    i, n = 0, len(data)
    while i + 8 <= n:
        size = int.from_bytes(data[i : i + 4], "big")
        header = 8
        if size == 1:  # 64-bit size follows the type
            if i + 16 > n:
                return None
            size = int.from_bytes(data[i + 8 : i + 16], "big")
            header = 16
        elif size == 0:  # the last box runs to the end of the file
            return n
        if size < header:
            return None
        i += size
    return i


_END_FINDERS = {"PNG": _png_end, "JPEG": _jpeg_end, "MPO": _jpeg_end, "WEBP": _riff_end, "AVIF": _isobmff_end}


def _trailing_data(data: bytes, fmt: str) -> bool:
    """True when bytes follow the image's own end (how image/HTML polyglots are usually built).

    Only padding (NULs, whitespace) may follow. A file whose structure cannot be walked to its end counts
    as trailing data too: it is not a plain image."""
    finder = _END_FINDERS.get(fmt)
    if finder is None:
        return False
    end = finder(data)
    if end is None or end > len(data):
        return True
    return len(data[end:].strip(b"\x00\t\r\n ")) > 0


def _allowed_phrase(formats: frozenset[str]) -> str:
    """``{"PNG", "JPEG", "WEBP"}`` -> "a JPEG, PNG or WebP image"."""
    order = list(FORMAT_LABELS)
    labels = [
        FORMAT_LABELS.get(f, f)
        for f in sorted(formats, key=lambda f: (order.index(f) if f in order else 99, f))
    ]
    listed = labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} or {labels[-1]}"
    article = "an" if listed[:1] in {"A", "E", "I", "O", "U"} else "a"
    return f"{article} {listed} image"


def open_checked(data: bytes, *, formats: frozenset[str], max_pixels: int) -> Image.Image:
    """Decode ``data`` fully, refusing unknown formats, bombs, truncation and polyglots."""
    allowed = _allowed_phrase(formats)
    too_many_pixels = f"The image has too many pixels; the limit is {max_pixels // 1_000_000} megapixels."
    if _MARKUP_RE.search(data):
        raise ImageRejected(f"That file is not a plain image. Upload {allowed}.")
    with warnings.catch_warnings():
        # DecompressionBombWarning becomes an error: we never decode a suspiciously large image.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=list(formats))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageRejected(too_many_pixels) from None
        except UnidentifiedImageError:
            raise ImageRejected(f"That file is not a supported image. Upload {allowed}.") from None
        except Exception:
            raise ImageRejected(f"That image could not be read. Upload {allowed}.") from None
        width, height = image.size
        if width < 1 or height < 1 or width * height > max_pixels:
            raise ImageRejected(
                f"The image is too large ({width}x{height} pixels); the limit is "
                f"{max_pixels // 1_000_000} megapixels."
            )
        if getattr(image, "n_frames", 1) > 1:
            raise ImageRejected("Animated images are not accepted. Upload a still image.")
        try:
            image.load()
        except Exception:
            # Truncated or corrupt pixel data (Pillow raises OSError, SyntaxError, ValueError...).
            raise ImageRejected("That image is damaged or incomplete. Upload it again.") from None
        if _trailing_data(data, image.format or ""):
            raise ImageRejected(f"That file is not a plain image. Upload {allowed}.")
    return image


def _to_srgb(image: Image.Image) -> Image.Image:
    """Convert pixels from an embedded ICC profile (Display P3 photos, CMYK) to sRGB, so the colours stay
    right once the profile is stripped. A profile lcms cannot use is ignored."""
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in {"RGB", "RGBA", "CMYK", "L"}:
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        converted = ImageCms.profileToProfile(
            image, source, _SRGB, outputMode="RGBA" if image.mode == "RGBA" else "RGB"
        )
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return image
    return converted if converted is not None else image


def normalise(image: Image.Image) -> Image.Image:
    """Apply EXIF orientation, convert to sRGB in a mode every encoder takes, and drop all metadata.

    ``info`` is emptied because some encoders copy from it by default (PNG and AVIF the ICC profile,
    JPEG the comment, which is where a polyglot hides its markup)."""
    image = ImageOps.exif_transpose(image)
    image = _to_srgb(image)
    if image.mode in {"RGBA", "LA", "PA"} or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
    else:
        image = image.convert("RGB")
    image.info = {}
    return image


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
