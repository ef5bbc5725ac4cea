"""Text hygiene for what people type into titles, descriptions, names, bios and tag names.

Control characters (U+0000-U+001F, U+007F) hide text, break layouts and logs; bidirectional overrides and
isolates (U+202A-U+202E, U+2066-U+2069) make text display in another order than it is stored ("Trojan
Source"), so a title can show one thing and say another. They are refused with a form error. Fields that
hold lines (descriptions, bios) may keep tab, line feed and carriage return.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible

_BIDI = "\u202a-\u202e\u2066-\u2069"
_SINGLE_LINE = re.compile(f"[\x00-\x1f\x7f{_BIDI}]")
_MULTI_LINE = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f{_BIDI}]")


def forbidden_characters(value: str, *, multiline: bool = False) -> list[str]:
    """The forbidden characters in ``value``, as ``U+XXXX`` codes (each once, in order of appearance)."""
    pattern = _MULTI_LINE if multiline else _SINGLE_LINE
    return list(dict.fromkeys(f"U+{ord(c):04X}" for c in pattern.findall(value)))


@deconstructible
class PlainTextValidator:
    def __init__(self, *, multiline: bool = False) -> None:
        self.multiline = multiline

    def __call__(self, value: object) -> None:
        if not isinstance(value, str):
            return
        found = forbidden_characters(value, multiline=self.multiline)
        if found:
            raise ValidationError(
                "Remove the invisible control or text-direction characters (%(found)s).",
                code="control_characters",
                params={"found": ", ".join(found[:5])},
            )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlainTextValidator) and other.multiline == self.multiline


SINGLE_LINE = PlainTextValidator()
MULTI_LINE = PlainTextValidator(multiline=True)
