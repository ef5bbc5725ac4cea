import pytest
from django.core.exceptions import ValidationError

from workbooks.embed import canonical_embed_url

ID = "1-3UYrtvMY7HQPQgtIxBizvJ"
GOOD = f"https://app.sigmacomputing.com/embed/{ID}"

ACCEPT = {
    GOOD: GOOD,
    f"  {GOOD}  ": GOOD,
    f"{GOOD}/": GOOD,
    f"{GOOD}?:theme=dark": f"{GOOD}?:theme=dark",  # Sigma's display options are kept (allow-list)
    f"{GOOD}?:show_footer=TRUE&:hide_tab_bar=true&:theme=My%20Theme&utm_source=x": (
        f"{GOOD}?:hide_tab_bar=true&:show_footer=true&:theme=My+Theme"  # sorted; unknown keys dropped
    ),
    f"{GOOD}?:hide_menu=yes&:theme=<script>&:lng=en-US&:menu_position=bottom": (
        f"{GOOD}?:lng=en-us&:menu_position=bottom"  # invalid values are dropped
    ),
    f"{GOOD}?:theme=dark&:theme=light": f"{GOOD}?:theme=light",
    f"{GOOD}#tab": GOOD,
    f"{GOOD}\n": GOOD,  # surrounding white space from a paste is trimmed
    f"https://APP.SigmaComputing.com/embed/{ID}": GOOD,  # host names are case-insensitive
    "https://app.sigmacomputing.com/embed/abc-DEF-123": "https://app.sigmacomputing.com/embed/abc-DEF-123",
}

REFUSE = {
    "": "required",
    "javascript:alert(1)": "scheme",
    "JaVaScRiPt:alert(document.cookie)//https://app.sigmacomputing.com/embed/1-abc": "scheme",
    "data:text/html,<script>alert(1)</script>": "scheme",
    f"http://app.sigmacomputing.com/embed/{ID}": "scheme",
    f"//app.sigmacomputing.com/embed/{ID}": "scheme",
    f"ftp://app.sigmacomputing.com/embed/{ID}": "scheme",
    "https://app.sigmacomputing.com.evil.example/embed/1-abc": "host",
    "https://app.sigmacomputing.com@evil.example/embed/1-abc": "userinfo",
    "https://user:pw@app.sigmacomputing.com/embed/1-abc": "userinfo",
    "https://evil.example/embed/1-abc": "host",
    "https://sigmacomputing.com/embed/1-abc": "host",
    "https://evil.app.sigmacomputing.com/embed/1-abc": "host",
    "https://app.sigmacomputing.com:443/embed/1-abc": "port",
    "https://app.sigmacomputing.com:8443/embed/1-abc": "port",
    "https://app.sigmacomputing.com:/embed/1-abc": "port",
    "https://app.sigmacomputing.com:99999/embed/1-abc": "invalid",
    "https://app.sigmacomputing.com./embed/1-abc": "host",
    f"{GOOD}?:nonce=abc&:signature=def": "signed",
    f"{GOOD}?:signature=def": "signed",
    f"{GOOD}?:jwt=eyJhbGciOi": "signed",
    f"{GOOD}?:client_id=x": "signed",
    f"{GOOD}?:email=a@b.c": "signed",
    f"{GOOD}?:external_user_id=7": "signed",
    f"{GOOD}?:mode=userbacked": "signed",
    f"{GOOD}?:time=1700000000": "signed",
    f"{GOOD}?:session_length=600": "signed",
    f"{GOOD}?:ua_region=emea": "signed",
    f"{GOOD}?:NONCE=abc": "signed",
    "https://app.sigmacomputing.com/acme/workbook/Sales-2ZnWk3?:link_source=share": "workbook_url",
    "https://app.sigmacomputing.com/acme/workbook/Sales-2ZnWk3": "workbook_url",
    "https://app.sigmacomputing.com/embed/": "path",
    "https://app.sigmacomputing.com/embed/1-abc/extra": "path",
    "https://app.sigmacomputing.com/embed/1_abc": "embed_id",
    "https://app.sigmacomputing.com/embed/1-abc%2F..": "embed_id",
    "https://app.sigmacomputing.com/embed/<script>": "embed_id",
    "https://app.sigmacomputing.com/e/1-abc": "path",
    "https://app.sigmacomputing.com/embed/1-a\nbc": "invalid",
    "https://app.sigmacomputing.com/embed/1 abc": "invalid",
    "https://app.sigmacomputing.com/embed/1-abc\x00": "invalid",
    "not a url at all": "invalid",
    "app.sigmacomputing.com/embed/1-abc": "scheme",
    "https://[::1]/embed/1-abc": "host",
}


@pytest.mark.parametrize(("raw", "expected"), list(ACCEPT.items()))
def test_accepted_links_are_stored_canonical(raw, expected):
    assert canonical_embed_url(raw) == expected


@pytest.mark.parametrize(("raw", "code"), list(REFUSE.items()))
def test_refused_links(raw, code):
    with pytest.raises(ValidationError) as info:
        canonical_embed_url(raw)
    assert info.value.code == code, info.value.messages


def test_signed_link_message_says_why_and_what_is_needed():
    with pytest.raises(ValidationError) as info:
        canonical_embed_url(f"{GOOD}?:nonce=1&:signature=2")
    message = info.value.messages[0]
    assert "single-use" in message and "public embed link" in message


def test_workbook_link_message_mentions_login():
    with pytest.raises(ValidationError) as info:
        canonical_embed_url("https://app.sigmacomputing.com/acme/workbook/Sales-2ZnWk3")
    assert "Sigma login" in info.value.messages[0]


def test_configured_hosts_are_the_only_hosts(settings):
    settings.SIGMA_EMBED_HOSTS = ["eu.sigmacomputing.example"]
    assert canonical_embed_url("https://eu.sigmacomputing.example/embed/1-x") == (
        "https://eu.sigmacomputing.example/embed/1-x"
    )
    with pytest.raises(ValidationError):
        canonical_embed_url(GOOD)
