from __future__ import annotations

import re

from django import forms
from django.utils.text import slugify

from sigma_playground import ratelimit, text
from sigma_playground.images import ImageRejected, ProcessedImage
from workbooks import thumbnails
from workbooks.embed import canonical_embed_url
from workbooks.models import Visibility, Workbook
from workbooks.services import MAX_TAG_LENGTH, MAX_TAGS


def parse_tags(raw: str) -> list[str]:
    """Comma-separated names: trimmed, inner whitespace collapsed, duplicates (by slug) dropped. Every
    problem is reported at once (too many tags and a too-long one are two errors, not the first found)."""
    names: list[str] = []
    seen: set[str] = set()
    found = text.forbidden_characters(raw or "")
    if found:
        raise forms.ValidationError(
            "Remove the invisible control or text-direction characters (%(found)s) from the tags.",
            code="control_characters",
            params={"found": ", ".join(found[:5])},
        )
    errors: list[forms.ValidationError] = []
    for part in (raw or "").split(","):
        name = re.sub(r"\s+", " ", part).strip()
        if not name:
            continue
        if len(name) > MAX_TAG_LENGTH:
            errors.append(
                forms.ValidationError(
                    f"Each tag can be at most {MAX_TAG_LENGTH} characters (“{name[:20]}…” is longer).",
                    code="tag_length",
                )
            )
            continue
        slug = slugify(name)
        if not slug:
            errors.append(
                forms.ValidationError(f"“{name}” needs at least one letter or digit.", code="tag_empty")
            )
            continue
        if slug not in seen:
            seen.add(slug)
            names.append(name)
    if len(names) + len(errors) > MAX_TAGS:
        errors.insert(0, forms.ValidationError(f"Use at most {MAX_TAGS} tags.", code="too_many_tags"))
    if errors:
        raise forms.ValidationError(errors)
    return names


class WorkbookForm(forms.Form):
    title = forms.CharField(max_length=200, validators=[text.SINGLE_LINE])
    description = forms.CharField(
        max_length=5000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 6}),
        validators=[text.MULTI_LINE],
    )
    sigma_embed_url = forms.CharField(
        label="Sigma embed link",
        max_length=2000,
        help_text="The public embed link from Sigma: Share → Embed → Public embed.",
        widget=forms.URLInput(attrs={"placeholder": "https://app.sigmacomputing.com/embed/…"}),
    )
    tags = forms.CharField(
        required=False,
        max_length=600,
        help_text=f"Comma-separated, at most {MAX_TAGS}, each up to {MAX_TAG_LENGTH} characters.",
    )
    visibility = forms.ChoiceField(
        choices=Visibility.choices, initial=Visibility.PUBLIC, widget=forms.RadioSelect
    )
    thumbnail = forms.FileField(
        required=False,
        help_text="JPEG, PNG, WebP or AVIF, up to 5 MB. Shown as the card picture.",
        widget=forms.ClearableFileInput(attrs={"accept": "image/jpeg,image/png,image/webp,image/avif"}),
    )
    clear_thumbnail = forms.BooleanField(required=False, label="Remove the current thumbnail")
    publish = forms.BooleanField(
        required=False,
        initial=True,
        label="Publish now",
        help_text="Untick to keep it as a draft only you can see.",
    )

    processed_thumbnail: ProcessedImage | None = None

    def __init__(self, *args, instance: Workbook | None = None, uploader_id: int | None = None, **kwargs):
        self.uploader_id = uploader_id
        if instance is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "title": instance.title,
                "description": instance.description,
                "sigma_embed_url": instance.sigma_embed_url,
                "tags": ", ".join(tag.name for tag in instance.tags.all()),
                "visibility": instance.visibility,
                "publish": instance.published_at is not None,
            }
        super().__init__(*args, **kwargs)
        if instance is None or not instance.thumbnail:
            del self.fields["clear_thumbnail"]

    def clean_title(self) -> str:
        title = re.sub(r"\s+", " ", self.cleaned_data["title"]).strip()
        if not title:
            raise forms.ValidationError("Give the workbook a title.", code="required")
        return title

    def clean_sigma_embed_url(self) -> str:
        return canonical_embed_url(self.cleaned_data["sigma_embed_url"])

    def clean_tags(self) -> list[str]:
        return parse_tags(self.cleaned_data.get("tags", ""))

    def clean_thumbnail(self):
        upload = self.cleaned_data.get("thumbnail")
        if not upload:
            return None
        if self.uploader_id is not None:
            ratelimit.image_upload(self.uploader_id)
        try:
            self.processed_thumbnail = thumbnails.prepare_master(upload)
        except ImageRejected as exc:
            raise forms.ValidationError(str(exc), code="invalid_image") from None
        return upload
