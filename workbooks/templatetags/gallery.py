from __future__ import annotations

from django import template
from django.contrib.humanize.templatetags.humanize import intcomma

from sigma_playground.pagination import Total

register = template.Library()


def approximate(value: int) -> str:
    """12,345 -> "about 12,000"; 1,234,567 -> "about 1.2 million"."""
    if value >= 1_000_000:
        return f"about {value / 1_000_000:.1f} million".replace(".0 million", " million")
    magnitude = 1000 if value >= 10_000 else 100
    return f"about {intcomma(round(value / magnitude) * magnitude)}"


@register.filter
def total_label(total: Total, noun: str = "workbook") -> str:
    """An exact total as a number, an estimate as "about …": never a precise-looking guess."""
    plural = noun if total.value == 1 and total.exact else f"{noun}s"
    number = intcomma(total.value) if total.exact else approximate(total.value)
    return f"{number} {plural}"
