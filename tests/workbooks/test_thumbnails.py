"""Thumbnail pipeline: validation of uploads, the master, derivatives, the task and the template tag."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from django.core.files.storage import default_storage, storages
from django.template import Context, Template
from PIL import Image

from sigma_playground.images import ImageRejected, ProcessedImage
from tests import images
from tests.factories import TagFactory, WorkbookFactory
from workbooks import services, thumbnails
from workbooks.models import Workbook
from workbooks.tasks import render_pending_thumbnails, render_thumbnail_derivatives

ALL_WIDTHS = [320, 640, 768, 1024, 1280, 1536]
MIMES = {"image/avif": "AVIF", "image/webp": "WEBP", "image/jpeg": "JPEG"}


def master_from(data: bytes, name: str = "upload.png") -> ProcessedImage:
    return thumbnails.prepare_master(images.upload(data, name))


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def stored_master(workbook: Workbook, size: tuple[int, int] = (700, 394), data: bytes | None = None) -> str:
    """Give ``workbook`` a saved master (no derivatives yet) and return its name."""
    master = master_from(data or images.image_bytes("PNG", size))
    name = thumbnails.save_master(workbook_id=workbook.pk, image=master)
    Workbook.objects.filter(pk=workbook.pk).update(
        thumbnail=name, thumbnail_width=master.width, thumbnail_height=master.height, thumbnail_derivatives={}
    )
    return name


def derivative_files(workbook_id: int) -> list[str]:
    folder = Path(default_storage.path(f"thumbs/{workbook_id}"))
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def render_tag(workbook: Workbook, args: str = "", **context) -> str:
    return Template("{% load workbook_images %}{% workbook_picture wb " + args + " %}").render(
        Context({"wb": workbook, **context})
    )


# --- What is refused ------------------------------------------------------------------------------------

REFUSED = {
    "decompression bomb": images.png_bomb(),
    "PNG followed by HTML": images.polyglot_png(),
    "JPEG followed by HTML": images.polyglot_jpeg(),
    "PNG followed by quiet HTML": images.followed_by(images.image_bytes("PNG")),
    "JPEG followed by quiet HTML": images.followed_by(images.image_bytes("JPEG")),
    "WebP followed by quiet HTML": images.followed_by(images.image_bytes("WEBP")),
    "AVIF followed by quiet HTML": images.followed_by(images.image_bytes("AVIF", (64, 48))),
    # The appended part ends like the image format does, defeating a naive "ends with the end marker" test.
    "JPEG followed by HTML ending in EOI": images.followed_by(
        images.image_bytes("JPEG"), b"<p>hi</p>\xff\xd9"
    ),
    "PNG followed by HTML ending in IEND": images.followed_by(
        images.image_bytes("PNG"), images.QUIET_HTML + b"\x00\x00\x00\x00IEND\xaeB`\x82"
    ),
    "SVG": images.SVG,
    "SVG without script": b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect width="4" height="4"/></svg>',
    "truncated JPEG": images.truncated_jpeg(),
    "truncated PNG": images.truncated_png(),
    "truncated AVIF": images.image_bytes("AVIF", (64, 48))[:150],
    "plain text": b"just some text, not a picture",
    "HTML page": b"<!doctype html><html><body>hello</body></html>",
    "PDF": b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF",
    "GIF": images.image_bytes("GIF"),
    "BMP": images.image_bytes("BMP"),
    "TIFF": images.image_bytes("TIFF"),
    "animated WebP": images.animated_webp(),
    "empty": b"",
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_prepare_master_refuses(case):
    with pytest.raises(ImageRejected) as excinfo:
        master_from(REFUSED[case])
    message = str(excinfo.value)
    assert message and "Traceback" not in message  # a sentence for the user


def test_refusals_say_what_to_upload_instead():
    with pytest.raises(
        ImageRejected,
        match=r"^That file is not a supported image\. Upload a JPEG, PNG, WebP or AVIF image\.$",
    ):
        master_from(images.image_bytes("GIF"))
    with pytest.raises(ImageRejected, match="too many pixels"):
        master_from(images.png_bomb())


def test_refuses_more_bytes_than_the_limit(settings):
    settings.THUMBNAIL_MAX_BYTES = 20_000
    data = images.noisy_image_bytes("PNG", (200, 200))
    assert len(data) > 20_000
    with pytest.raises(ImageRejected, match="larger than"):
        master_from(data)


def test_refuses_more_pixels_than_the_limit(settings):
    settings.IMAGE_UPLOAD_MAX_PIXELS = 1_000_000
    with pytest.raises(ImageRejected, match="too large"):
        master_from(images.image_bytes("PNG", (1200, 1000)))


def test_pixel_limit_is_below_pillows_bomb_threshold(settings):
    assert settings.IMAGE_UPLOAD_MAX_PIXELS < Image.MAX_IMAGE_PIXELS


# --- What is accepted, and what the master is -----------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "AVIF"])
def test_accepts_jpeg_png_webp_avif_and_re_encodes_as_webp(fmt):
    data = images.image_bytes(fmt, (800, 450))
    master = master_from(data, f"upload.{fmt.lower()}")
    assert (master.format, master.extension) == ("WEBP", "webp")
    assert (master.width, master.height) == (800, 450)
    assert master.content != data
    with decode(master.content) as image:
        assert image.format == "WEBP"
        assert image.size == (800, 450)


def test_master_is_downscaled_to_the_widest_derivative_but_never_upscaled():
    wide = master_from(images.image_bytes("JPEG", (3000, 1500)))
    assert (wide.width, wide.height) == (1536, 768)
    small = master_from(images.image_bytes("JPEG", (200, 100)))
    assert (small.width, small.height) == (200, 100)


def test_very_tall_images_keep_their_top():
    master = master_from(images.image_bytes("PNG", (400, 2000)))
    assert (master.width, master.height) == (400, 1200)


def test_exif_orientation_is_applied_and_metadata_stripped():
    data = images.jpeg_with_exif_orientation(size=(400, 200), orientation=6)
    assert b"SecretCam" in data
    master = master_from(data, "photo.jpg")
    assert (master.width, master.height) == (200, 400)  # portrait after rotation
    assert b"SecretCam" not in master.content
    with decode(master.content) as image:
        assert not image.getexif()
        assert "exif" not in image.info


def test_colour_profiles_are_applied_and_stripped():
    master = master_from(images.png_with_icc_profile())
    with decode(master.content) as image:
        assert "icc_profile" not in image.info
        assert image.getpixel((5, 5))[:3] == pytest.approx((20, 160, 90), abs=3)


def test_transparency_survives_in_the_master():
    out = io.BytesIO()
    Image.new("RGBA", (100, 60), (10, 20, 30, 0)).save(out, format="PNG")
    with decode(master_from(out.getvalue()).content) as image:
        assert image.mode == "RGBA"


@pytest.mark.django_db
def test_save_master_stores_privately_under_the_workbook():
    workbook = WorkbookFactory()
    name = thumbnails.save_master(workbook_id=workbook.pk, image=master_from(images.image_bytes("PNG")))
    assert re.fullmatch(rf"thumbnails/{workbook.pk}/[0-9a-f]{{32}}\.webp", name)
    assert storages["private"].exists(name)
    assert not default_storage.exists(name)  # nothing under MEDIA_ROOT, so nothing can serve it


# --- Derivatives ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("master_width", "expected"),
    [(1536, ALL_WIDTHS), (1600, ALL_WIDTHS), (700, [320, 640]), (768, [320, 640, 768]), (200, [200])],
)
def test_derivative_widths_are_those_not_wider_than_the_master(master_width, expected):
    assert thumbnails.derivative_widths(master_width) == expected


def check_description(description: dict, *, workbook_id: int, master_name: str, widths: list[int]) -> None:
    token = Path(master_name).stem
    assert description["master"] == master_name
    assert set(description["sources"]) == set(MIMES)
    width, height = description["width"], description["height"]
    for mime, fmt in MIMES.items():
        entries = description["sources"][mime]
        assert [w for w, _, _ in entries] == widths
        for w, h, name in entries:
            assert name == f"thumbs/{workbook_id}/{token}-{w}.{'jpg' if fmt == 'JPEG' else fmt.lower()}"
            assert h == max(1, round(height * w / width))
            with default_storage.open(name, "rb") as fh:
                data = fh.read()
            assert b"SecretCam" not in data
            with decode(data) as image:
                assert image.format == fmt
                assert image.size == (w, h)
                assert not image.getexif()
                if fmt == "JPEG":
                    assert image.mode == "RGB"
                    assert image.info.get("progressive") or image.info.get("progression")


@pytest.mark.django_db
def test_a_wide_master_gets_all_six_widths_in_three_formats():
    workbook = WorkbookFactory()
    master = master_from(images.image_bytes("PNG", (1600, 900)))
    assert master.width == 1536
    name = thumbnails.save_master(workbook_id=workbook.pk, image=master)
    description = thumbnails.render_derivatives(name, workbook_id=workbook.pk)
    check_description(description, workbook_id=workbook.pk, master_name=name, widths=ALL_WIDTHS)
    assert (description["width"], description["height"]) == (1536, 864)
    assert len(derivative_files(workbook.pk)) == 18


@pytest.mark.django_db
def test_a_700px_master_gets_320_and_640_only():
    workbook = WorkbookFactory()
    name = thumbnails.save_master(
        workbook_id=workbook.pk, image=master_from(images.image_bytes("JPEG", (700, 350)))
    )
    description = thumbnails.render_derivatives(name, workbook_id=workbook.pk)
    check_description(description, workbook_id=workbook.pk, master_name=name, widths=[320, 640])


@pytest.mark.django_db
def test_a_master_narrower_than_320_gets_one_derivative_at_its_width():
    workbook = WorkbookFactory()
    name = thumbnails.save_master(
        workbook_id=workbook.pk, image=master_from(images.image_bytes("PNG", (200, 100)))
    )
    description = thumbnails.render_derivatives(name, workbook_id=workbook.pk)
    check_description(description, workbook_id=workbook.pk, master_name=name, widths=[200])


@pytest.mark.django_db
def test_derivatives_of_a_rotated_photo_are_upright_and_carry_no_metadata():
    workbook = WorkbookFactory()
    data = images.jpeg_with_exif_orientation(size=(800, 400), orientation=6)
    name = thumbnails.save_master(workbook_id=workbook.pk, image=master_from(data, "photo.jpg"))
    description = thumbnails.render_derivatives(name, workbook_id=workbook.pk)
    assert (description["width"], description["height"]) == (400, 800)
    check_description(description, workbook_id=workbook.pk, master_name=name, widths=[320])


@pytest.mark.django_db
def test_delete_files_removes_the_master_and_every_derivative():
    workbook = WorkbookFactory()
    name = stored_master(workbook)
    description = thumbnails.render_derivatives(name, workbook_id=workbook.pk)
    # A stray derivative of the same master that no description recorded goes too.
    default_storage.save(f"thumbs/{workbook.pk}/{Path(name).stem}-999.webp", io.BytesIO(b"x"))
    other = stored_master(WorkbookFactory())
    thumbnails.delete_files(description)
    assert derivative_files(workbook.pk) == []
    assert not storages["private"].exists(name)
    assert storages["private"].exists(other)
    thumbnails.delete_files(description)  # idempotent
    thumbnails.delete_files({"master": ""})
    thumbnails.delete_files({})


# --- The Celery task ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_task_records_the_derivatives():
    workbook = WorkbookFactory()
    name = stored_master(workbook)
    assert render_thumbnail_derivatives.delay(workbook.pk, name).get() is True
    workbook.refresh_from_db()
    check_description(
        workbook.thumbnail_derivatives, workbook_id=workbook.pk, master_name=name, widths=[320, 640]
    )
    assert len(derivative_files(workbook.pk)) == 6


@pytest.mark.django_db
def test_the_task_is_idempotent():
    workbook = WorkbookFactory()
    name = stored_master(workbook)
    render_thumbnail_derivatives.delay(workbook.pk, name)
    first = Workbook.objects.get(pk=workbook.pk).thumbnail_derivatives
    assert render_thumbnail_derivatives.delay(workbook.pk, name).get() is False  # redelivered: nothing to do
    assert render_thumbnail_derivatives.delay(workbook.pk, name, force=True).get() is True
    assert Workbook.objects.get(pk=workbook.pk).thumbnail_derivatives == first
    assert len(derivative_files(workbook.pk)) == 6  # overwritten, not duplicated


@pytest.mark.django_db
def test_a_task_for_a_replaced_master_does_nothing():
    workbook = WorkbookFactory()
    old = stored_master(workbook)
    new = stored_master(workbook)
    assert render_thumbnail_derivatives.delay(workbook.pk, old).get() is False
    workbook.refresh_from_db()
    assert workbook.thumbnail == new
    assert workbook.thumbnail_derivatives == {}
    assert derivative_files(workbook.pk) == []


@pytest.mark.django_db
def test_a_task_for_a_deleted_workbook_or_master_does_nothing():
    workbook = WorkbookFactory()
    name = stored_master(workbook)
    storages["private"].delete(name)
    assert render_thumbnail_derivatives.delay(workbook.pk, name).get() is False
    workbook.delete()
    assert render_thumbnail_derivatives.delay(workbook.pk, name).get() is False
    assert derivative_files(workbook.pk) == []


@pytest.mark.django_db
def test_a_master_replaced_while_rendering_leaves_no_files(monkeypatch):
    workbook = WorkbookFactory()
    name = stored_master(workbook)
    render = thumbnails.render_derivatives

    def render_then_replace(master_name, *, workbook_id):
        description = render(master_name, workbook_id=workbook_id)
        Workbook.objects.filter(pk=workbook_id).update(thumbnail="thumbnails/0/replaced.webp")
        return description

    monkeypatch.setattr(thumbnails, "render_derivatives", render_then_replace)
    assert render_thumbnail_derivatives.delay(workbook.pk, name).get() is False
    assert derivative_files(workbook.pk) == []
    assert Workbook.objects.get(pk=workbook.pk).thumbnail_derivatives == {}


@pytest.mark.django_db
def test_the_task_deletes_the_derivatives_of_an_older_master():
    workbook = WorkbookFactory()
    old = stored_master(workbook)
    render_thumbnail_derivatives.delay(workbook.pk, old)
    old_files = thumbnails.derivative_names(Workbook.objects.get(pk=workbook.pk).thumbnail_derivatives)
    # Replaced, with the old derivatives still recorded (shown until the new ones are ready).
    new_master = master_from(images.image_bytes("PNG", (400, 300), color=(0, 0, 0)))
    new = thumbnails.save_master(workbook_id=workbook.pk, image=new_master)
    Workbook.objects.filter(pk=workbook.pk).update(thumbnail=new)
    assert render_thumbnail_derivatives.delay(workbook.pk, new).get() is True
    assert not any(default_storage.exists(name) for name in old_files)
    assert derivative_files(workbook.pk) == sorted(
        f"{Path(new).stem}-320.{ext}" for ext in ("avif", "jpg", "webp")
    )


@pytest.mark.django_db(transaction=True)
def test_enqueue_renders_only_after_commit():
    from django.db import transaction

    workbook = WorkbookFactory()
    with transaction.atomic():
        name = stored_master(workbook)
        services.thumbnail_render_enqueue(workbook_id=workbook.pk, master_name=name)
        assert derivative_files(workbook.pk) == []  # nothing before the commit
    assert Workbook.objects.get(pk=workbook.pk).thumbnail_derivatives["master"] == name


@pytest.mark.django_db
def test_enqueue_after_a_rollback_renders_nothing(django_capture_on_commit_callbacks):
    from django.db import transaction

    workbook = WorkbookFactory()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                services.thumbnail_render_enqueue(
                    workbook_id=workbook.pk, master_name=stored_master(workbook)
                )
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
    assert callbacks == []


@pytest.mark.django_db
def test_pending_thumbnails_are_rendered_by_the_sweep():
    rendered = WorkbookFactory()
    render_thumbnail_derivatives.delay(rendered.pk, stored_master(rendered))
    pending = WorkbookFactory()
    stored_master(pending)
    WorkbookFactory()  # no thumbnail
    assert render_pending_thumbnails.delay().get() == 1
    assert Workbook.objects.get(pk=pending.pk).thumbnail_derivatives["sources"]


# --- The template tag -----------------------------------------------------------------------------------


@pytest.fixture
def rendered_workbook(db) -> Workbook:
    workbook = WorkbookFactory()
    render_thumbnail_derivatives.delay(workbook.pk, stored_master(workbook, (1100, 619)))
    return Workbook.objects.get(pk=workbook.pk)


def test_picture_has_avif_and_webp_sources_and_reserves_its_box(rendered_workbook, settings):
    html = render_tag(rendered_workbook)
    description = rendered_workbook.thumbnail_derivatives
    assert html.count("<picture") == 1
    assert html.index('type="image/avif"') < html.index('type="image/webp"') < html.index("<img")
    assert f'width="{description["width"]}" height="{description["height"]}"' in html
    assert (description["width"], description["height"]) == (1100, 619)
    assert 'loading="lazy"' in html
    assert 'decoding="async"' in html
    assert "fetchpriority" not in html
    assert 'sizes="(min-width: 60rem) 22rem, (min-width: 40rem) 45vw, 100vw"' in html
    assert 'alt=""' in html
    assert "style=" not in html
    token = Path(rendered_workbook.thumbnail).stem
    src = re.search(r'<img[^>]* src="([^"]+)"', html).group(1)
    assert src == f"{settings.MEDIA_URL}thumbs/{rendered_workbook.pk}/{token}-640.jpg"
    for mime, ext in (("image/avif", "avif"), ("image/webp", "webp"), ("image/jpeg", "jpg")):
        srcset = ", ".join(
            f"{settings.MEDIA_URL}thumbs/{rendered_workbook.pk}/{token}-{w}.{ext} {w}w"
            for w in (320, 640, 768, 1024)
        )
        assert f'srcset="{srcset}"' in html, mime


def test_picture_links_only_derivatives_never_the_master(rendered_workbook, settings):
    html = render_tag(rendered_workbook)
    urls = re.findall(r'(?:src|srcset)="([^"]+)"', html)
    linked = {part.strip().split(" ")[0] for url in urls for part in url.split(",")}
    assert len(linked) == 12  # 4 widths x 3 formats
    for url in linked:
        assert url.startswith(f"{settings.MEDIA_URL}thumbs/{rendered_workbook.pk}/")
        assert default_storage.exists(url.removeprefix(settings.MEDIA_URL))
    assert rendered_workbook.thumbnail not in html
    assert "thumbnails/" not in html


def test_picture_above_the_fold_is_not_lazy(rendered_workbook):
    html = render_tag(rendered_workbook, "lazy=False")
    assert 'fetchpriority="high"' in html
    assert 'loading="lazy"' not in html
    # An undefined variable keeps the safe default.
    assert 'loading="lazy"' in render_tag(rendered_workbook, "lazy=undefined_variable")


def test_custom_sizes_and_alt(rendered_workbook):
    html = render_tag(rendered_workbook, 'sizes="50vw" alt=title', title='Revenue "<dashboard>"')
    assert html.count('sizes="50vw"') == 3
    assert 'alt="Revenue &quot;&lt;dashboard&gt;&quot;"' in html


@pytest.mark.django_db
def test_placeholder_uses_the_first_tags_colour_without_queries(django_assert_num_queries):
    tags = [TagFactory(name="zeta", colour="#111111"), TagFactory(name="Alpha", colour="#00aa55")]
    workbook = WorkbookFactory(tags=tags)
    workbook = Workbook.objects.prefetch_related("tags").get(pk=workbook.pk)
    with django_assert_num_queries(0):
        html = render_tag(workbook)
    assert "<picture" not in html
    assert '<svg class="thumb" role="img"' in html
    assert 'role="img" aria-label="' in html and ' preview" data-chart="' in html
    assert 'viewBox="0 0 160 90" width="640" height="360"' in html
    assert '="#00aa55"' in html  # the first tag's colour
    assert "style=" not in html
    assert "<script" not in html


@pytest.mark.django_db
def test_placeholder_without_prefetched_tags_runs_no_query(django_assert_num_queries):
    workbook = Workbook.objects.get(pk=WorkbookFactory(tags=[TagFactory(colour="#00aa55")]).pk)
    with django_assert_num_queries(0):
        html = render_tag(workbook)
    colour = thumbnails.PLACEHOLDER_PALETTE[workbook.pk % len(thumbnails.PLACEHOLDER_PALETTE)]
    assert f'="{colour}"' in html
    assert thumbnails.placeholder_colour(workbook) == colour


@pytest.mark.django_db
def test_placeholder_until_the_derivatives_exist():
    workbook = WorkbookFactory()
    stored_master(workbook)
    workbook.refresh_from_db()
    html = render_tag(workbook)
    assert 'data-chart="' in html
    assert "<img" not in html
    assert workbook.thumbnail not in html


@pytest.mark.django_db
@pytest.mark.parametrize(
    "derivatives",
    [
        {"width": 10, "height": 5, "sources": {}},
        {"width": 10, "height": 5, "sources": {"image/jpeg": [[10, 5, "thumbnails/1/master.webp"]]}},
        {"sources": {"image/jpeg": [[10, 5, "thumbs/1/x-10.jpg"]]}},
        {"width": 10, "height": 5, "sources": {"image/jpeg": "nonsense"}},
        ["not", "a", "dict"],
    ],
)
def test_malformed_derivatives_fall_back_to_the_placeholder(derivatives):
    workbook = WorkbookFactory()
    workbook.thumbnail, workbook.thumbnail_derivatives = "thumbnails/1/master.webp", derivatives
    html = render_tag(workbook)
    assert 'data-chart="' in html
    assert "thumbnails/" not in html


# --- Orphan masters (issue 12) --------------------------------------------------------------------------


def master_files(workbook_id: int) -> list[str]:
    folder = Path(storages["private"].path(f"thumbnails/{workbook_id}"))
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.django_db(transaction=True)
def test_a_publish_that_rolls_back_leaves_no_master_on_disk(monkeypatch):
    from tests.factories import UserFactory

    def failing(**kwargs):
        raise RuntimeError("something after the master was saved failed")

    monkeypatch.setattr(services, "_search_lexemes_add", failing)
    saved = []
    real_save = thumbnails.save_master
    monkeypatch.setattr(thumbnails, "save_master", lambda **kw: saved.append(real_save(**kw)) or saved[-1])
    with pytest.raises(RuntimeError):
        services.workbook_publish(
            author=UserFactory(),
            title="Rolled back",
            sigma_embed_url="https://app.sigmacomputing.com/embed/1-Orphan",
            thumbnail=master_from(images.image_bytes("PNG", (400, 225))),
        )
    [name] = saved
    assert not storages["private"].exists(name)
    assert not Workbook.objects.filter(title="Rolled back").exists()


@pytest.mark.django_db
def test_the_sweep_removes_old_masters_no_workbook_uses_and_keeps_the_rest():
    import os
    import time

    workbook = WorkbookFactory()
    used = stored_master(workbook)
    orphan = thumbnails.save_master(
        workbook_id=workbook.pk, image=master_from(images.image_bytes("PNG", (400, 225)))
    )
    recent = thumbnails.save_master(
        workbook_id=workbook.pk, image=master_from(images.image_bytes("PNG", (400, 225)))
    )
    old = time.time() - 2 * thumbnails.ORPHAN_MIN_AGE_SECONDS
    for name in (used, orphan):
        os.utime(storages["private"].path(name), (old, old))
    assert services.thumbnail_orphans_sweep() == 1
    private = storages["private"]
    assert private.exists(used) and private.exists(recent)  # in use; too young (a transaction may be open)
    assert not private.exists(orphan)


def test_renders_are_acknowledged_late_and_rejected_when_their_worker_dies():
    assert render_thumbnail_derivatives.acks_late is True
    assert render_thumbnail_derivatives.reject_on_worker_lost is True
