"""Every URL the resolver knows, with hostile values in each path and query parameter, as an anonymous
visitor, a logged-in user and staff: never a 5xx (issue 13, section 1). Runs on PostgreSQL, where NUL and
wrongly typed values used to fail in the database.

Each example is one set of hostile values sent to every route of the site and a few of admin's, so every
route meets every kind of value. Bounded: FUZZ_EXAMPLES examples per kind of visitor (seconds each); the
seed is derandomised so a run in CI is repeatable, and a failure prints the request that caused it."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import quote

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.factories import FavoriteFactory, FollowFactory, TagFactory, UserFactory, WorkbookFactory
from tests.security.test_no_500 import five_xx

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]
FUZZ_EXAMPLES = 30

_CONVERTER = re.compile(r"<(?:(?P<conv>[^>:]+):)?(?P<name>[^>]+)>")


def routes(resolver: URLResolver | None = None, prefix: str = "") -> list[str]:
    """Every route of the URLconf, as ``route`` strings with their ``<converter:name>`` parts."""
    out = []
    for pattern in (resolver or get_resolver()).url_patterns:
        text = str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            out += routes(pattern, prefix + text)
        elif isinstance(pattern, URLPattern):
            out.append(prefix + text)
    # Regex routes (admin's): their named groups become parameters like a converter's.
    out = [_GROUP.sub(lambda m: f"<{m['name']}>", r) for r in out]
    return [r.replace("^", "").replace("$", "").replace("\\Z", "") for r in out]


_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>[^)]*\)")
ROUTES = sorted(set(routes()))
# The site's own routes are drawn three times as often as Django admin's many generic ones.
WEIGHTED_ROUTES = [r for r in ROUTES if not r.startswith("admin/")] * 3 + ROUTES


def forged_cursor(values: list) -> str:
    raw = json.dumps({"v": values, "f": True, "p": 2}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.builds(lambda t: {"t": t}, st.sampled_from(["2024-01-01T00:00:00", "2024-01-01T00:00:00+00:00", "x"])),
)
CONTROL = st.characters(min_codepoint=0, max_codepoint=0x1F) | st.sampled_from(["\x7f", "\u202e", "\u2066"])

# Already percent-encoded pieces of a URL (so invalid UTF-8 escapes like %ff survive as they are).
hostile_raw = st.one_of(
    st.sampled_from(["%00", "a%00", "%00b", "%01", "%1f", "%7f", "%e2%80%ae", "%09", "%0a", "%0d%0a"]),
    st.text(alphabet=CONTROL, min_size=1, max_size=5).map(lambda t: quote(t, safe="")),
    st.sampled_from(["%ff", "%c3%28", "%e2%82", "%ed%a0%80", "%", "%zz", "..", "%2e%2e", "-1", "0", "%2F"]),
    st.sampled_from(["9" * 30, "-" + "9" * 19, "1e400", "NaN", "Infinity"]),
    st.just("x" * 10_240),
    st.builds(forged_cursor, st.lists(json_scalars, min_size=0, max_size=3)),
    st.text(max_size=30).map(lambda t: quote(t, safe="")),
)
# The parameters pages read (the list's, admin changelists', login's) and made-up ones.
QUERY_NAMES = ["q", "tag", "sort", "cursor", "per_page", "page", "next", "o", "p", "e", "_changelist_filters"]
query_names = st.one_of(
    st.sampled_from(QUERY_NAMES),
    st.sampled_from(["visibility__exact", "is_staff__exact", "author__id__exact", "%00"]),
    st.text(min_size=1, max_size=8).map(lambda t: quote(t, safe="")),
)
queries = st.lists(st.tuples(query_names, hostile_raw), max_size=6).map(
    lambda pairs: "&".join(f"{name}={value}" for name, value in pairs)
)


SITE_ROUTES = [r for r in ROUTES if not r.startswith("admin/")]
ADMIN_ROUTES = [r for r in ROUTES if r.startswith("admin/")]
path_values = hostile_raw | st.sampled_from(["1", "alice", "finance"])


@st.composite
def hostile_rounds(draw):
    """One set of hostile values, sent to every route of the site and to a few of admin's: (method, path
    with its query) pairs. Every route sees every kind of value, so rare shapes are not left to chance."""
    value = draw(path_values)
    query = draw(queries)
    method = draw(st.sampled_from(["GET", "HEAD", "POST"]))
    admin = draw(st.lists(st.sampled_from(ADMIN_ROUTES), min_size=1, max_size=4))
    out = []
    for route in [*SITE_ROUTES, *admin]:
        path = "/" + _CONVERTER.sub(lambda m: value, route)
        verb = "GET" if method == "POST" and route.endswith("logout/") else method
        out.append((verb, path + (f"?{query}" if query else "")))
    return out


@pytest.fixture
def gallery():
    alice, bob = UserFactory(username="alice"), UserFactory(username="bobby")
    FollowFactory(follower=alice, followed=bob)
    workbook = WorkbookFactory(author=bob)
    workbook.tags.add(TagFactory(slug="finance", name="Finance"))
    FavoriteFactory(user=alice, workbook=workbook)
    staff = UserFactory(username="staffer", is_staff=True, is_superuser=True)
    return {"anonymous": None, "user": alice, "staff": staff}


@pytest.mark.parametrize("who", ["anonymous", "user", "staff"])
def test_no_url_answers_5xx_to_hostile_values(who, gallery):
    client = Client(raise_request_exception=False)
    if gallery[who] is not None:
        client.force_login(gallery[who])
    before = five_xx()

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(hostile_rounds())
    @example([("GET", "/users/%00/"), ("GET", "/workbooks/?q=%00"), ("POST", "/users/%00/follow/")])
    @example(
        [("GET", f"/workbooks/?cursor={forged_cursor(['x', 1])}"), ("GET", "/media/thumbs/" + "a" * 300)]
    )
    def check(requests):
        for method, url in requests:
            response = getattr(client, method.lower())(url)
            assert response.status_code < 500, f"{method} {url[:300]} answered {response.status_code}"

    check()
    assert five_xx() == before
