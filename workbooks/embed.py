"""Sigma public embed links: what we accept, and the canonical form we store.

A public embed link is ``https://<host>/embed/<id>`` with ``<host>`` one of ``settings.SIGMA_EMBED_HOSTS``.
Secure (signed) embeds and workbook URLs are refused with a reason: a signed link carries a nonce, a
signature or a JWT and works once or for one viewer, and an ``/<org>/workbook/...`` URL needs a Sigma login,
so neither can be shown to the public from a gallery.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

EMBED_ID_RE = re.compile(r"^[A-Za-z0-9-]{1,100}\Z")
# Query keys that mark Sigma's secure (signed) embed URLs.
SIGNED_KEYS = frozenset(
    {
        ":nonce",
        ":signature",
        ":jwt",
        ":client_id",
        ":email",
        ":external_user_id",
        ":external_user_team",
        ":account_type",
        ":mode",
        ":time",
        ":session_length",
        ":embed_path",
        ":eval_connection_id",
    }
)

NEED_PUBLIC = (
    "Paste a public embed link (https://app.sigmacomputing.com/embed/…), from Sigma's "
    "Share → Embed → Public embed."
)
SIGNED_REASON = (
    "This is a secure (signed) embed link: it is single-use and tied to one viewer, so it cannot be shown "
    "in a public gallery. " + NEED_PUBLIC
)
LOGIN_REASON = "This is a link to a workbook inside Sigma, which needs a Sigma login to view. " + NEED_PUBLIC


# Sigma's documented display options for embed URLs, kept (validated) when a link is saved; any other query
# parameter is dropped. Booleans must be true/false; the rest match the pattern given.
_BOOLEAN = re.compile(r"^(true|false)\Z")
DISPLAY_OPTIONS: dict[str, re.Pattern[str]] = {
    ":theme": re.compile(r"^[A-Za-z0-9 _-]{1,40}\Z"),
    ":lng": re.compile(r"^[a-z]{2}(-[A-Za-z]{2})?\Z"),
    ":menu_position": re.compile(r"^(top|bottom|none)\Z"),
    **{
        name: _BOOLEAN
        for name in (
            ":hide_tab_bar",
            ":hide_menu",
            ":show_footer",
            ":hide_folder_navigation",
            ":hide_page_controls",
            ":hide_reload_button",
            ":hide_tooltip",
            ":hide_sheet_interactions",
            ":responsive_height",
            ":disable_mobile_view",
            ":disable_auto_refresh",
        )
    },
}


def display_options(query: str) -> list[tuple[str, str]]:
    """The allow-listed display options of a query string, validated, one per name, sorted (so the stored
    link is canonical)."""
    kept: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=False):
        name = key.lower()
        pattern = DISPLAY_OPTIONS.get(name)
        if pattern is not None:
            value = value.strip() if name == ":theme" else value.strip().lower()
            if pattern.match(value):
                kept[name] = value
    return sorted(kept.items())


def allowed_hosts() -> list[str]:
    return [h.lower() for h in settings.SIGMA_EMBED_HOSTS]


def canonical_embed_url(raw: str) -> str:
    """Validate ``raw`` and return the canonical link (no fragment; of the query, only Sigma's display options
    from DISPLAY_OPTIONS); raise ValidationError."""
    value = (raw or "").strip()
    if not value:
        raise ValidationError("Paste the workbook's public embed link.", code="required")
    if len(value) > 2000 or any(ord(ch) < 33 or ord(ch) == 127 for ch in value):
        raise ValidationError("That does not look like a link. " + NEED_PUBLIC, code="invalid")
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError on a malformed port
    except ValueError:
        raise ValidationError("That does not look like a link. " + NEED_PUBLIC, code="invalid") from None
    if parts.scheme.lower() != "https":
        raise ValidationError("The link must start with https://. " + NEED_PUBLIC, code="scheme")

    netloc = parts.netloc
    if "@" in netloc or parts.username is not None or parts.password is not None:
        raise ValidationError("The link must not contain a user name or password.", code="userinfo")
    # Host names are case-insensitive (RFC 3986): APP.SigmaComputing.com is stored lower-cased.
    host = parts.hostname or ""
    if host.endswith("."):
        raise ValidationError("The host name must not end with a dot.", code="host")
    if host not in allowed_hosts():
        hosts = ", ".join(allowed_hosts())
        raise ValidationError(f"Only Sigma embed links are accepted (host {hosts}).", code="host")
    if port is not None or ":" in netloc:
        raise ValidationError("The link must not name a port.", code="port")

    query_keys = {key.lower() for key, _ in parse_qsl(parts.query, keep_blank_values=True)}
    if query_keys & SIGNED_KEYS or any(key.startswith(":ua_") for key in query_keys):
        raise ValidationError(SIGNED_REASON, code="signed")

    segments = parts.path.split("/")
    if len(segments) >= 3 and segments[2] == "workbook":
        raise ValidationError(LOGIN_REASON, code="workbook_url")
    path = parts.path.rstrip("/")
    match = re.fullmatch(r"/embed/([^/]+)", path)
    if not match:
        raise ValidationError(
            "The link must look like https://<host>/embed/<id>. " + NEED_PUBLIC, code="path"
        )
    embed_id = match.group(1)
    if not EMBED_ID_RE.match(embed_id):
        raise ValidationError("The embed id may contain only letters, digits and hyphens.", code="embed_id")
    options = display_options(parts.query)
    query = "?" + urlencode(options, safe=":") if options else ""
    return f"https://{host}/embed/{embed_id}{query}"


def iframe_src(canonical_url: str) -> str:
    """The iframe ``src`` we render, rebuilt from the stored canonical link (never user text as-is)."""
    return canonical_embed_url(canonical_url)


# --- Link checks (workbooks.linkcheck): one outcome, and when a link is checked again --------------------------


@dataclass(frozen=True)
class Outcome:
    ok: bool
    http_status: int | None
    error: str
    duration_ms: int


def interval(ok: bool) -> dt.timedelta:
    seconds = settings.EMBED_CHECK_INTERVAL_SECONDS if ok else settings.EMBED_CHECK_RETRY_SECONDS
    return dt.timedelta(seconds=max(seconds, settings.EMBED_CHECK_MIN_INTERVAL_SECONDS))
