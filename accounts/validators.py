from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible

USERNAME_RE = re.compile(r"^[A-Za-z0-9_-]+\Z")
USERNAME_MIN_LENGTH = 3
USERNAME_MAX_LENGTH = 30


@deconstructible
class UsernameValidator:
    """ASCII letters, digits, ``_`` and ``-``; 3-30 characters; not digits only.

    Narrower than Django's default (which allows ``@ . +`` and any Unicode letter) because usernames are
    URL path segments (``/users/<username>/``) and must not be confusable; digits-only names would be
    mistaken for ids.
    """

    message = "Use 3-30 letters, digits, hyphens or underscores; at least one must be a letter."

    def __call__(self, value: str) -> None:
        if not isinstance(value, str):
            raise ValidationError(self.message, code="invalid")
        if not (USERNAME_MIN_LENGTH <= len(value) <= USERNAME_MAX_LENGTH):
            raise ValidationError(self.message, code="invalid_length")
        if not USERNAME_RE.match(value):
            raise ValidationError(self.message, code="invalid_characters")
        if value.isdigit():
            raise ValidationError("A username cannot be only digits.", code="digits_only")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UsernameValidator)
