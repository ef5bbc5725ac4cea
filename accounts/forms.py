from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.forms import BaseUserCreationForm

from accounts import throttling
from accounts.models import User, ci
from sigma_playground import ratelimit
from sigma_playground.images import ImageRejected, ProcessedImage, process_upload


class SignUpForm(BaseUserCreationForm):
    email = forms.EmailField(max_length=254, help_text="Used for password resets; never shown publicly.")

    class Meta:
        model = User
        fields = ("username", "email")

    def clean_username(self) -> str:
        username = self.cleaned_data["username"]
        if User.objects.filter(username__lower=ci(username)).exists():
            raise forms.ValidationError("That username is taken.", code="unique")
        return username

    def clean_email(self) -> str:
        # No "already exists" error: that would tell anyone which addresses have accounts. A taken address
        # is handled by accounts.services.signup (its owner gets an email).
        return User.objects.normalize_email(self.cleaned_data["email"])

    def _get_validation_exclusions(self) -> set[str]:
        """The email's unique constraint must not become a form error either (see above)."""
        # Django's private hook, absent from django-stubs.
        return {*super()._get_validation_exclusions(), "email"}  # type: ignore[misc]


class EmailChangeForm(forms.Form):
    """A new address for ``user``, who must give their password: a session left open on a shared computer is
    not enough to take the account over (the new address could reset the password)."""

    email = forms.EmailField(
        max_length=254,
        label="New email address",
        help_text="We send a link to it; your address changes when you open that link.",
    )
    password = forms.CharField(
        label="Your password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    # Seconds until the next try is allowed, when this submit was over EMAIL_CHANGES_PER_HOUR (a 429).
    retry_after: int | None = None

    def __init__(self, *args, user: User, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_email(self) -> str:
        # No "already in use" error (see SignUpForm.clean_email): accounts.services.email_change_request
        # handles a taken address.
        email = User.objects.normalize_email(self.cleaned_data["email"])
        if email.lower() == self.user.email.lower():
            raise forms.ValidationError("That is already your address.", code="same_email")
        return email

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        decision = throttling.email_change_allowed(self.user.pk)
        if not decision.allowed:  # counted before the hash: no password guessing through this form
            self.retry_after = decision.retry_after
            minutes = max(1, round(decision.retry_after / 60))
            limit = settings.EMAIL_CHANGES_PER_HOUR
            self.add_error(
                None,
                forms.ValidationError(
                    f"You asked to change your address {limit} times in the last hour, the most allowed. "
                    f"Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
                    code="rate_limited",
                ),
            )
            return ""
        if not self.user.check_password(password):
            raise forms.ValidationError("That is not your password.", code="password_incorrect")
        return password


class ProfileForm(forms.ModelForm):
    avatar = forms.FileField(
        required=False,
        label="Profile image",
        help_text="JPEG, PNG or WebP, up to 5 MB. It is resized to a square.",
        widget=forms.ClearableFileInput(attrs={"accept": "image/jpeg,image/png,image/webp"}),
    )

    class Meta:
        model = User
        fields = ("full_name", "bio", "avatar")
        widgets = {"bio": forms.Textarea(attrs={"rows": 5})}

    processed_avatar: ProcessedImage | None = None

    def clean_avatar(self):
        upload = self.cleaned_data.get("avatar")
        if is_new_upload(upload) and self.instance.pk is not None:
            ratelimit.image_upload(self.instance.pk)
        self.processed_avatar = process_avatar(upload)
        return upload


def is_new_upload(value: object) -> bool:
    """A file field's cleaned value is a new upload (False: "clear" was ticked; None or the current FieldFile:
    unchanged)."""
    return bool(value) and hasattr(value, "content_type")


def process_avatar(upload: Any) -> ProcessedImage | None:
    """A new upload re-encoded as a square avatar (what is stored and served, never the uploaded bytes);
    None when ``upload`` is not a new upload. Raises ValidationError with a message for the person."""
    if not is_new_upload(upload):
        return None
    try:
        return process_upload(
            upload,
            max_bytes=settings.IMAGE_UPLOAD_MAX_BYTES,
            max_pixels=settings.IMAGE_UPLOAD_MAX_PIXELS,
            box=(settings.AVATAR_SIZE, settings.AVATAR_SIZE),
            crop_square=True,
        )
    except ImageRejected as exc:
        raise forms.ValidationError(str(exc), code="invalid_image") from None
