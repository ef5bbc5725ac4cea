"""Image payloads for upload tests, made on the fly with Pillow."""

from __future__ import annotations

import io
import struct
import zlib

from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (400, 300), color=(200, 30, 30), **save) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format=fmt, **save)
    return out.getvalue()


def upload(data: bytes, name: str = "picture.png", content_type: str = "image/png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def jpeg_with_exif_orientation(size=(400, 200), orientation: int = 6) -> bytes:
    """A landscape JPEG whose EXIF says "rotate 90°", with a GPS-ish tag that must not survive."""
    image = Image.new("RGB", size, (10, 120, 200))
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    exif[0x010F] = "SecretCam"  # Make: metadata to be stripped
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


def png_bomb(width: int = 20_000, height: int = 20_000) -> bytes:
    """A PNG header claiming width x height pixels with a tiny compressed body: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(min(height, 2000))) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def truncated_jpeg() -> bytes:
    data = image_bytes("JPEG", (800, 600))
    return data[: len(data) // 2]


def polyglot_png() -> bytes:
    return image_bytes("PNG") + b"<html><script>alert(document.cookie)</script></html>"


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>'


# Markup the simple "is there HTML in it" scan does not look for: only the structural end-of-image check
# catches an image followed by it.
QUIET_HTML = b"<img src=x onerror=alert(document.domain)>"


def followed_by(data: bytes, tail: bytes = QUIET_HTML) -> bytes:
    """An image with something appended after its end: the usual way to build an image/HTML polyglot."""
    return data + tail


def polyglot_jpeg() -> bytes:
    return image_bytes("JPEG") + b"<html><body><script>alert(document.cookie)</script></body></html>"


def truncated_png() -> bytes:
    data = noisy_image_bytes("PNG", (300, 200))
    return data[: len(data) // 2]


def noisy_image_bytes(fmt: str = "PNG", size: tuple[int, int] = (400, 300), **save) -> bytes:
    """Random pixels: an image that does not compress to almost nothing."""
    import os

    image = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    out = io.BytesIO()
    image.save(out, format=fmt, **save)
    return out.getvalue()


def animated_webp(size: tuple[int, int] = (40, 30)) -> bytes:
    frames = [Image.new("RGB", size, colour) for colour in ((255, 0, 0), (0, 0, 255))]
    out = io.BytesIO()
    frames[0].save(out, format="WEBP", save_all=True, append_images=frames[1:], duration=100)
    return out.getvalue()


def png_with_icc_profile(size: tuple[int, int] = (300, 200)) -> bytes:
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    out = io.BytesIO()
    Image.new("RGB", size, (20, 160, 90)).save(out, format="PNG", icc_profile=profile)
    return out.getvalue()
