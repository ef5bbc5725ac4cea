"""Every URL in the resolver, for every kind of visitor: the status each one gets.

A URL pattern added without a row here fails ``test_every_url_is_in_the_table``.
"""

from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests.factories import UserFactory, WorkbookFactory
from workbooks.models import Visibility

ROLES = ("anonymous", "owner", "other", "staff")


def S(anonymous, owner, other, staff):  # an upper-case name, so the table reads as one
    return dict(zip(ROLES, (anonymous, owner, other, staff), strict=True))


ALL_200 = S(200, 200, 200, 200)
LOGIN_ONLY = S(302, 200, 200, 200)
POST_ONLY_LOGIN = S(302, 405, 405, 405)

# name -> (kwargs builder, expected GET status per role). `w` is a public workbook by `owner`,
# `p` a private one and `u` an unlisted one by `owner`.
TABLE = {
    "home": (lambda o: {}, ALL_200),
    "healthz": (lambda o: {}, ALL_200),
    "readyz": (lambda o: {}, ALL_200),
    "workbooks:list": (lambda o: {}, ALL_200),
    "workbooks:create": (lambda o: {}, LOGIN_ONLY),
    "workbooks:redirect": (lambda o: {"pk": o["w"].pk}, S(301, 301, 301, 301)),
    "workbooks:detail": (lambda o: {"pk": o["w"].pk, "slug": o["w"].slug}, ALL_200),
    "workbooks:detail (private)": (lambda o: {"pk": o["p"].pk, "slug": o["p"].slug}, S(404, 200, 404, 200)),
    "workbooks:detail (unlisted)": (lambda o: {"pk": o["u"].pk, "slug": o["u"].slug}, S(404, 200, 404, 200)),
    "workbooks:shared": (lambda o: {"token": o["u"].share_token}, ALL_200),
    "workbooks:edit": (lambda o: {"pk": o["w"].pk}, S(302, 200, 404, 404)),
    "workbooks:delete": (lambda o: {"pk": o["w"].pk}, S(302, 200, 404, 404)),  # GET: the confirmation page
    "workbooks:favorite": (lambda o: {"pk": o["w"].pk}, POST_ONLY_LOGIN),
    "workbooks:unfavorite": (lambda o: {"pk": o["w"].pk}, POST_ONLY_LOGIN),
    "workbooks:tag": (lambda o: {"slug": o["tag"].slug}, ALL_200),
    "workbooks:tags": (lambda o: {}, ALL_200),
    "workbooks:tag_feed": (lambda o: {"slug": o["tag"].slug}, ALL_200),
    "profiles:list": (lambda o: {}, ALL_200),
    "profiles:feed": (lambda o: {"username": o["owner"].username}, ALL_200),
    "robots_txt": (lambda o: {}, ALL_200),
    "favicon": (lambda o: {}, S(301, 301, 301, 301)),
    "sitemap_index": (lambda o: {}, ALL_200),
    "sitemap_pages": (lambda o: {}, ALL_200),
    "sitemap_workbooks": (lambda o: {"chunk": 0}, ALL_200),
    "oembed": (lambda o: {}, S(404, 404, 404, 404)),  # without ?url= (tests/workbooks/test_sharing.py)
    "feed_newest": (lambda o: {}, ALL_200),
    "workbooks:feed": (lambda o: {}, LOGIN_ONLY),
    "workbooks:favorites": (lambda o: {}, LOGIN_ONLY),
    "workbooks:mine": (lambda o: {}, LOGIN_ONLY),
    "workbooks:stats": (lambda o: {"pk": o["w"].pk}, S(404, 200, 404, 200)),
    "workbooks:stats (private)": (lambda o: {"pk": o["p"].pk}, S(404, 200, 404, 200)),
    "notifications:list": (lambda o: {}, LOGIN_ONLY),
    "notifications:settings": (lambda o: {}, LOGIN_ONLY),
    "accounts:signup": (lambda o: {}, S(200, 302, 302, 302)),
    "accounts:login": (lambda o: {}, S(200, 302, 302, 302)),
    "accounts:signup_done": (lambda o: {}, ALL_200),
    "accounts:verify_email": (lambda o: {"uidb64": "MQ", "token": "bad-token"}, S(400, 400, 400, 400)),
    "accounts:password_reset": (lambda o: {}, ALL_200),
    "accounts:password_reset_done": (lambda o: {}, ALL_200),
    "accounts:password_reset_confirm": (
        lambda o: {"uidb64": "MQ", "token": "bad-token"},
        ALL_200,
    ),  # "no longer works"
    "accounts:password_reset_complete": (lambda o: {}, ALL_200),
    "accounts:logout": (lambda o: {}, S(405, 405, 405, 405)),
    "accounts:password_change": (lambda o: {}, LOGIN_ONLY),
    "accounts:password_change_done": (lambda o: {}, LOGIN_ONLY),
    "accounts:profile_edit": (lambda o: {}, LOGIN_ONLY),
    "accounts:email_change": (lambda o: {}, LOGIN_ONLY),
    "accounts:email_change_sent": (lambda o: {}, LOGIN_ONLY),
    "accounts:email_change_confirm": (lambda o: {"token": "bad-token"}, S(400, 400, 400, 400)),
    "profiles:detail": (lambda o: {"username": o["owner"].username}, ALL_200),
    "profiles:followers": (lambda o: {"username": o["owner"].username}, ALL_200),
    "profiles:following": (lambda o: {"username": o["owner"].username}, ALL_200),
    "profiles:follow": (lambda o: {"username": o["owner"].username}, POST_ONLY_LOGIN),
    "profiles:unfollow": (lambda o: {"username": o["owner"].username}, POST_ONLY_LOGIN),
    "admin:index": (lambda o: {}, S(302, 302, 302, 200)),
    "media": (lambda o: {"path": "thumbs/1/missing-320.webp"}, S(404, 404, 404, 404)),
    "media (not served)": (lambda o: {"path": "thumbnails/1/master.webp"}, S(404, 404, 404, 404)),
    # The test client connects from 127.0.0.1, inside the default METRICS_ALLOWED_NETWORKS; refusals from
    # elsewhere and the token are tested in tests/monitoring/test_metrics_endpoint.py.
    "monitoring:metrics": (lambda o: {}, ALL_200),
    "monitoring:rum": (lambda o: {}, S(405, 405, 405, 405)),
    "monitoring:health": (lambda o: {}, S(302, 404, 404, 200)),
    "monitoring:health_json": (lambda o: {}, S(404, 404, 404, 200)),
    "monitoring:capacity": (lambda o: {}, S(302, 404, 404, 200)),
}
# Django admin's own URLs are covered by admin:index above and tests/test_admin.py.
SKIP_NAMESPACES = {"admin"}


def named_patterns(resolver: URLResolver | None = None, prefix: str = "") -> set[str]:
    names: set[str] = set()
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            ns = entry.namespace
            if ns in SKIP_NAMESPACES:
                continue
            names |= named_patterns(entry, f"{prefix}{ns}:" if ns else prefix)
        elif isinstance(entry, URLPattern):
            if entry.name:
                names.add(prefix + entry.name)
            elif "media" not in str(entry.pattern):
                names.add(f"<unnamed {entry.pattern}>")
    return names


def test_every_url_is_in_the_table():
    table_names = {name.split(" ")[0] for name in TABLE}
    missing = named_patterns() - table_names
    assert not missing, f"URLs with no row in tests/test_urls.py TABLE: {sorted(missing)}"


@pytest.fixture
def objects(db):
    from tests.factories import TagFactory

    owner = UserFactory()
    tag = TagFactory(name="finance")
    return {
        "owner": owner,
        "other": UserFactory(),
        "staff": UserFactory(is_staff=True, is_superuser=True),
        "tag": tag,
        "w": WorkbookFactory(author=owner, tags=[tag]),
        "p": WorkbookFactory(author=owner, visibility=Visibility.PRIVATE),
        "u": WorkbookFactory(author=owner, visibility=Visibility.UNLISTED),
    }


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", sorted(TABLE))
def test_status_by_role(client, objects, name, role):
    kwargs_for, expected = TABLE[name]
    url = reverse(name.split(" ")[0], kwargs=kwargs_for(objects))
    if role != "anonymous":
        client.force_login(objects[role])
    response = client.get(url)
    assert response.status_code == expected[role], f"{role} GET {url}"
