"""Gallery pages through the test client, as visitors and authors use them."""

from __future__ import annotations

import datetime as dt
import re
from html import unescape

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts import services as account_services
from tests import images
from tests.factories import FollowFactory, TagFactory, UserFactory, WorkbookFactory
from workbooks import counters, services
from workbooks.models import Favorite, Tag, Visibility, Workbook, WorkbookDailyStat

pytestmark = pytest.mark.django_db

EMBED = "https://app.sigmacomputing.com/embed/1-3UYrtvMY7HQPQgtIxBizvJ"
NEW = reverse("workbooks:create")
LIST = reverse("workbooks:list")


def form_data(**overrides):
    data = {
        "title": "Quarterly revenue bridge",
        "description": "Where the quarter's revenue came from.",
        "sigma_embed_url": EMBED + "?:theme=light",
        "tags": "Finance, SaaS metrics, finance",
        "visibility": "public",
        "publish": "on",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


# --- Publishing and editing ----------------------------------------------------------------------------


def test_publish_through_the_form(logged_in, user):
    response = logged_in.submit(NEW, form_data())
    workbook = Workbook.objects.get()
    assert response.status_code == 302 and response["Location"] == workbook.get_absolute_url()
    assert workbook.author == user
    assert workbook.sigma_embed_url == EMBED + "?:theme=light"  # canonical: display options kept
    assert workbook.slug == "quarterly-revenue-bridge"
    assert workbook.published_at is not None
    assert sorted(t.slug for t in workbook.tags.all()) == ["finance", "saas-metrics"]
    page = logged_in.get(workbook.get_absolute_url()).content.decode()
    assert f'src="{EMBED}?:theme=light"' in page
    assert 'referrerpolicy="strict-origin-when-cross-origin"' in page
    assert 'title="Quarterly revenue bridge (Sigma workbook)"' in page
    assert 'loading="lazy"' in page


def test_unticked_publish_keeps_a_draft_only_the_author_sees(logged_in, user, client):
    logged_in.submit(NEW, form_data(publish=None))
    workbook = Workbook.objects.get()
    assert workbook.published_at is None
    assert logged_in.get(workbook.get_absolute_url()).status_code == 200
    assert client.get(workbook.get_absolute_url()).status_code == 404
    staff = UserFactory(is_staff=True)
    client.force_login(staff)
    assert client.get(workbook.get_absolute_url()).status_code == 404


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"title": "   "}, "title", "title"),
        ({"title": "x" * 201}, "title", "at most 200"),
        ({"sigma_embed_url": "javascript:alert(1)"}, "sigma_embed_url", "https://"),
        ({"sigma_embed_url": EMBED + "?:nonce=1&:signature=2"}, "sigma_embed_url", "single-use"),
        ({"tags": ",".join(f"t{i}" for i in range(11))}, "tags", "at most 10"),
        ({"tags": "a" * 41}, "tags", "at most 40"),
        ({"tags": "!!!"}, "tags", "letter or digit"),
        ({"visibility": "everyone"}, "visibility", "valid choice"),
    ],
)
def test_invalid_workbook_forms_rerender_with_field_errors(logged_in, overrides, field, message):
    response = logged_in.submit(NEW, form_data(**overrides))
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors and message in str(errors[field]), errors
    assert not Workbook.objects.exists()


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (images.png_bomb(), "bomb.png"),
        (images.polyglot_png(), "poly.png"),
        (images.SVG, "chart.svg"),
        (images.truncated_jpeg(), "cut.jpg"),
        (b"%PDF-1.4 not an image", "doc.png"),
    ],
    ids=["bomb", "polyglot", "svg", "truncated", "non-image"],
)
def test_bad_thumbnails_are_refused_through_the_form(logged_in, data, name):
    response = logged_in.submit(NEW, {**form_data(), "thumbnail": images.upload(data, name)})
    assert response.status_code == 200
    assert "thumbnail" in response.context["form"].errors
    assert not Workbook.objects.exists()


def test_thumbnail_upload_renders_derivatives_and_serves_only_them(
    logged_in, django_capture_on_commit_callbacks
):
    data = images.image_bytes("PNG", (1400, 800))
    with django_capture_on_commit_callbacks(execute=True):
        logged_in.submit(NEW, {**form_data(), "thumbnail": images.upload(data, "t.png")})
    workbook = Workbook.objects.get()
    assert workbook.thumbnail and workbook.thumbnail_derivatives  # eager Celery rendered them
    html = logged_in.get(LIST).content.decode()
    assert "<picture" in html and 'type="image/avif"' in html
    assert workbook.thumbnail not in html  # the master is never referenced


def test_edit_changes_fields_tags_and_can_unpublish(logged_in, user):
    workbook = services.workbook_publish(author=user, title="Old", sigma_embed_url=EMBED, tags=["a", "b"])
    url = reverse("workbooks:edit", args=[workbook.pk])
    page = logged_in.get(url).content.decode()
    assert 'value="Old"' in page and "a, b" in page
    response = logged_in.submit(url, form_data(title="New title", tags="b, c", publish=None))
    assert response.status_code == 302
    workbook.refresh_from_db()
    assert workbook.title == "New title" and workbook.slug == "new-title"
    assert workbook.published_at is None
    assert sorted(t.slug for t in workbook.tags.all()) == ["b", "c"]


def test_another_users_edit_and_delete_are_404_and_change_nothing(browser, user):
    workbook = WorkbookFactory(author=user, title="Mine")
    intruder = UserFactory()
    browser.force_login(intruder)
    edit = reverse("workbooks:edit", args=[workbook.pk])
    assert browser.get(edit).status_code == 404
    token = browser.csrf_token_from(NEW)
    response = browser.post(edit, {**form_data(title="Hacked"), "csrfmiddlewaretoken": token})
    assert response.status_code == 404
    response = browser.post(reverse("workbooks:delete", args=[workbook.pk]), {"csrfmiddlewaretoken": token})
    assert response.status_code == 404
    workbook.refresh_from_db()
    assert workbook.title == "Mine"


def test_author_deletes_by_post(logged_in, user):
    workbook = WorkbookFactory(author=user)
    response = logged_in.submit(
        reverse("workbooks:delete", args=[workbook.pk]), form_url=workbook.get_absolute_url()
    )
    assert response.status_code == 302
    assert not Workbook.objects.exists()


def test_wrong_slug_redirects_to_the_canonical_url(client):
    workbook = WorkbookFactory(title="Cohort retention")
    response = client.get(reverse("workbooks:detail", args=[workbook.pk, "wrong-slug"]))
    assert response.status_code == 301 and response["Location"] == workbook.get_absolute_url()


def test_reserved_slug_does_not_shadow_the_edit_url(logged_in, user):
    logged_in.submit(NEW, form_data(title="Edit"))
    workbook = Workbook.objects.get()
    assert workbook.slug == "edit-workbook"
    assert logged_in.get(workbook.get_absolute_url()).context["workbook"] == workbook


# --- Favorites and views ---------------------------------------------------------------------------------


def test_favorite_toggle_is_idempotent(logged_in, user):
    workbook = WorkbookFactory()
    fav, unfav = (reverse(n, args=[workbook.pk]) for n in ("workbooks:favorite", "workbooks:unfavorite"))
    for _ in range(2):
        assert logged_in.submit(fav, form_url=workbook.get_absolute_url()).status_code == 302
    workbook.refresh_from_db()
    assert workbook.favorite_count == 1 and Favorite.objects.count() == 1
    assert "★ Favorited" in logged_in.get(workbook.get_absolute_url()).content.decode()
    for _ in range(2):
        logged_in.submit(unfav, form_url=workbook.get_absolute_url())
    workbook.refresh_from_db()
    assert workbook.favorite_count == 0 and not Favorite.objects.exists()
    stat = WorkbookDailyStat.objects.get(workbook=workbook)
    assert stat.favorites == 0  # added and removed the same day: no trending gain


def test_cannot_favorite_a_private_workbook_of_someone_else(logged_in):
    workbook = WorkbookFactory(visibility=Visibility.PRIVATE)
    response = logged_in.submit(reverse("workbooks:favorite", args=[workbook.pk]), form_url=NEW)
    assert response.status_code == 404
    assert not Favorite.objects.exists()


def test_each_detail_view_counts_once_in_total_and_per_day(clock, client):
    workbook = WorkbookFactory()
    for n in range(3):  # three visitors (one visitor counts once per VIEW_DEDUP_SECONDS)
        client.get(workbook.get_absolute_url(), REMOTE_ADDR=f"198.51.100.{n + 1}")
    client.get(workbook.get_absolute_url(), REMOTE_ADDR="198.51.100.1")
    counters.flush_views()  # buffered in Redis when there is one; written directly otherwise
    workbook.refresh_from_db()
    assert workbook.view_count == 3
    stat = WorkbookDailyStat.objects.get(workbook=workbook, date=timezone.now().date())
    assert stat.views == 3
    client.get(reverse("workbooks:detail", args=[workbook.pk, "old-slug"]))  # a redirect is not a view
    workbook.refresh_from_db()
    assert workbook.view_count == 3


# --- Lists, search, sorting, pagination -------------------------------------------------------------------


def test_list_sorts_and_falls_back_on_unknown_sort(client):
    now = timezone.now()
    a = WorkbookFactory(title="Alpha", published_at=now - dt.timedelta(days=3), favorite_count=5)
    b = WorkbookFactory(title="Beta", published_at=now - dt.timedelta(days=1), favorite_count=1)
    c = WorkbookFactory(title="Gamma", published_at=now - dt.timedelta(days=2), favorite_count=9)
    Workbook.objects.filter(pk=b.pk).update(trending_score=50)
    Workbook.objects.filter(pk=a.pk).update(trending_score=10)

    def order(**params):
        return [w.pk for w in client.get(LIST, params).context["page"].object_list]

    assert order() == [b.pk, c.pk, a.pk]
    assert order(sort="oldest") == [a.pk, c.pk, b.pk]
    assert order(sort="popular") == [c.pk, a.pk, b.pk]
    assert order(sort="trending") == [b.pk, a.pk, c.pk]
    assert order(sort="'; DROP TABLE x;--") == order()


def test_search_and_tag_filters_combine(client):
    finance, saas = TagFactory(name="finance"), TagFactory(name="saas")
    hit = WorkbookFactory(title="Revenue forecast", tags=[finance, saas])
    WorkbookFactory(title="Revenue by region", tags=[finance])
    WorkbookFactory(title="Headcount plan", tags=[finance, saas])
    response = client.get(LIST, {"q": "revenue", "tag": ["finance", "saas"]})
    assert [w.pk for w in response.context["page"].object_list] == [hit.pk]
    assert response.context["total"].value == 1 and response.context["total"].exact
    assert client.get(LIST, {"tag": "no-such-tag"}).context["total"].value == 0


def _ids(response) -> list[int]:
    return [w.pk for w in response.context["page"].object_list]


def _link(response, rel: str) -> str:
    """The page's own ``rel`` link, as a browser would follow it."""
    match = re.search(rf'<a rel="{rel}" href="([^"]*)"', response.content.decode())
    assert match, f"no {rel} link"
    return LIST + unescape(match.group(1))


def test_pagination_page_size_and_bad_cursors(client):
    WorkbookFactory.create_batch(45)
    first = client.get(LIST)
    assert len(first.context["page"].object_list) == 20
    assert first.context["total"].value == 45
    assert "45 workbooks" in first.content.decode()
    assert len(client.get(LIST, {"per_page": 10}).context["page"].object_list) == 10
    assert len(client.get(LIST, {"per_page": 1000}).context["page"].object_list) == 45  # capped at 100
    second = client.get(_link(first, "next"))
    third = client.get(_link(second, "next"))
    assert [len(_ids(r)) for r in (second, third)] == [20, 5]
    assert third.context["page"].number == 3 and not third.context["page"].has_next
    assert len({*_ids(first), *_ids(second), *_ids(third)}) == 45  # no row twice, none skipped
    # Back through the previous links: page 3's carries a cursor; page 2's is the plain first page.
    assert third.context["page"].previous_cursor and second.context["page"].previous_cursor is None
    back_to_second = client.get(_link(third, "prev"))
    assert back_to_second.context["page"].number == 2 and _ids(back_to_second) == _ids(second)
    assert "cursor" not in _link(back_to_second, "prev")
    assert _ids(client.get(_link(back_to_second, "prev"))) == _ids(first)
    for bad in ("x", "!!!", "eyJ2IjpbXX0", "e30", "a" * 2000):
        response = client.get(LIST, {"cursor": bad, "sort": "oldest"}, follow=True)
        assert response.redirect_chain == [(LIST + "?sort=oldest", 302)], bad
        assert "no longer valid" in response.content.decode(), bad
        assert len(response.context["page"].object_list) == 20


def test_next_link_keeps_the_filter_state(client):
    tag = TagFactory(name="ops")
    WorkbookFactory.create_batch(3, tags=[tag])
    response = client.get(LIST, {"tag": "ops", "sort": "oldest", "per_page": 1})
    html = response.content.decode()
    cursor = response.context["page"].next_cursor
    # In the canonical order of the page's parameters (sigma_playground.caching.pages.QuerySpec).
    assert f'href="?per_page=1&amp;sort=oldest&amp;tag=ops&amp;cursor={cursor}"' in html


# --- Privacy: what must never leak -------------------------------------------------------------------------


@pytest.fixture
def hidden_world():
    """One visible workbook and one of each hidden kind, all by the same author with the same tag and
    the same searchable word, followed by `viewer`."""
    author, viewer = UserFactory(username="author"), UserFactory(username="viewer")
    FollowFactory(follower=viewer, followed=author)
    tag = TagFactory(name="shared")
    visible = WorkbookFactory(author=author, title="Visible zebra report", tags=[tag], favorite_count=1)
    hidden = {
        "private": WorkbookFactory(author=author, title="Private zebra report", tags=[tag],
                                   visibility=Visibility.PRIVATE, favorite_count=100),
        "unlisted": WorkbookFactory(author=author, title="Unlisted zebra report", tags=[tag],
                                    visibility=Visibility.UNLISTED, favorite_count=200),
        "draft": WorkbookFactory(author=author, title="Draft zebra report", tags=[tag], published_at=None,
                                 favorite_count=400),
    }  # fmt: skip
    Workbook.objects.update(is_featured=True, trending_score=5.0)
    return {"author": author, "viewer": viewer, "tag": tag, "visible": visible, "hidden": hidden}


def test_hidden_workbooks_never_appear_in_any_list_or_count(client, hidden_world):
    world = hidden_world
    client.force_login(world["viewer"])
    pages = {
        "home": reverse("home"),
        "list": LIST,
        "search": LIST + "?q=zebra",
        "trending": LIST + "?sort=trending",
        "tag": world["tag"].get_absolute_url(),
        "profile": world["author"].get_absolute_url(),
        "feed": reverse("workbooks:feed"),
        "related": world["visible"].get_absolute_url(),
    }
    for where, url in pages.items():
        html = client.get(url).content.decode().replace("<mark>", "").replace("</mark>", "")
        for kind, workbook in world["hidden"].items():
            assert workbook.title not in html, f"{kind} workbook shown on {where}"
        if where != "related":
            assert world["visible"].title in html, where
    profile = client.get(world["author"].get_absolute_url())
    assert profile.context["counts"]["workbooks"] == 1
    assert profile.context["counts"]["favorites_received"] == 1
    tag_page = client.get(world["tag"].get_absolute_url())
    assert tag_page.context["total"].value == 1


def test_unlisted_is_reachable_by_link_private_and_missing_are_the_same_404(client, hidden_world):
    unlisted, private = hidden_world["hidden"]["unlisted"], hidden_world["hidden"]["private"]
    assert client.get(unlisted.get_absolute_url()).status_code == 200
    missing = client.get(reverse("workbooks:detail", args=[999999, "nothing"]))
    hidden = client.get(private.get_absolute_url())
    assert hidden.status_code == missing.status_code == 404
    assert private.title not in hidden.content.decode()
    assert hidden.content == missing.content


def test_favorites_page_drops_workbooks_that_became_private(client, hidden_world):
    viewer, visible = hidden_world["viewer"], hidden_world["visible"]
    services.favorite_add(user=viewer, workbook=visible)
    client.force_login(viewer)
    assert visible.title in client.get(reverse("workbooks:favorites")).content.decode()
    services.workbooks_set_visibility(workbook_ids=[visible.pk], visibility=Visibility.PRIVATE)
    assert visible.title not in client.get(reverse("workbooks:favorites")).content.decode()


def test_inactive_authors_workbooks_are_not_listed(client):
    workbook = WorkbookFactory(title="Ghost workbook", author=UserFactory(is_active=False))
    assert workbook.title not in client.get(LIST).content.decode()
    assert client.get(workbook.get_absolute_url()).status_code == 404


def test_script_payloads_render_escaped(client):
    payload = '<script>alert("x")</script>'
    author = UserFactory(full_name=payload, bio=payload)
    tag = services.tags_resolve(names=[payload])[0]
    workbook = WorkbookFactory(author=author, title=payload, description=payload, tags=[tag])
    for url in (workbook.get_absolute_url(), LIST, author.get_absolute_url(), tag.get_absolute_url()):
        html = client.get(url).content.decode()
        assert payload not in html, url
        assert "&lt;script&gt;" in html, url


# --- Home, tags, feed, profile -----------------------------------------------------------------------------


def test_home_shows_featured_trending_and_newest(client):
    featured = WorkbookFactory(title="Featured board", is_featured=True)
    trending = WorkbookFactory(title="Hot metric", trending_score=42)
    sections = client.get(reverse("home")).context["sections"]
    assert [w.pk for w in sections["featured"]] == [featured.pk]
    assert [w.pk for w in sections["trending"]] == [trending.pk]
    assert sections["newest"] == []  # each workbook shows in the first section that has it


def test_feed_shows_followed_authors_newest_first(client):
    me, followed, stranger = UserFactory(), UserFactory(), UserFactory()
    account_services.follow(follower=me, followed=followed)
    old = WorkbookFactory(author=followed, published_at=timezone.now() - dt.timedelta(days=2))
    new = WorkbookFactory(author=followed)
    WorkbookFactory(author=stranger)
    client.force_login(me)
    assert [w.pk for w in client.get(reverse("workbooks:feed")).context["page"].object_list] == [
        new.pk,
        old.pk,
    ]


def test_profile_shows_twelve_newest_public_workbooks(client):
    author = UserFactory()
    made = [
        WorkbookFactory(author=author, published_at=timezone.now() - dt.timedelta(hours=i)) for i in range(14)
    ]
    response = client.get(author.get_absolute_url())
    assert [w.pk for w in response.context["workbooks"]] == [w.pk for w in made[:12]]
    assert response.context["counts"]["workbooks"] == 14


def test_tags_are_unique_regardless_of_case():
    services.tags_resolve(names=["Finance"])
    services.tags_resolve(names=["FINANCE", "finance "])
    assert Tag.objects.count() == 1


# --- Query budgets -----------------------------------------------------------------------------------------


def count_queries(client, url: str, **params) -> tuple[int, list[str]]:
    from sigma_playground.caching import keys, service
    from workbooks import search

    search.PREFIX_CACHE.clear()  # each measurement starts cold
    service.bump(keys.LISTS, keys.PEOPLE)  # cached functions too (the tag directory)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url, params)
    assert response.status_code == 200, url
    return len(ctx.captured_queries), [q["sql"] for q in ctx.captured_queries]


@pytest.fixture
def busy_gallery():
    """Enough rows that a per-row query would show: 120 workbooks with tags, followed, favorited."""
    me, author = UserFactory(), UserFactory()
    account_services.follow(follower=me, followed=author)
    tags = [TagFactory(name=f"topic{i}") for i in range(3)]
    workbooks = WorkbookFactory.create_batch(120, author=author, tags=tags, title="Zebra dashboard")
    for workbook in workbooks:
        services.favorite_add(user=me, workbook=workbook)
    return {"me": me, "author": author, "tag": tags[0], "workbook": workbooks[0]}


def _detail_budget() -> tuple[int, int]:
    # workbook+author, its tags; related (PostgreSQL: candidates, rows, tags; SQLite: rows, tags); view
    # counting: nothing with Redis (a buffered HINCRBY), else savepoint, ids, UPDATE, upsert, release.
    from workbooks import counters

    related = 3 if connection.vendor == "postgresql" else 2
    counting = 0 if counters._redis() is not None else 5
    anonymous = 2 + related + counting
    return anonymous, anonymous + 3  # logged in: + the user, + the favorite state, + the bell


# Pinned query counts per page: (anonymous, logged in). None: the page needs a login.
# Logged in adds two queries: the user (the session comes from the cache) and the header's bell (the unread
# notification count, notifications.selectors.unread_count, never cached).
# The total: the planner's estimate (PostgreSQL only), then a bounded count.
TOTAL = 2 if connection.vendor == "postgresql" else 1
BUDGETS = {
    # total, page with its authors, tags of the page, the tag directory (popular tags; cached); logged in:
    # + the user, + the notification bell
    "list": (TOTAL + 3, TOTAL + 5),
    # + the prefix expansion of the last word on PostgreSQL (workbooks.search), the page's highlighted
    # titles and snippets, matching people
    "search": (TOTAL + 6, TOTAL + 8) if connection.vendor == "postgresql" else (TOTAL + 5, TOTAL + 7),
    "tag": (TOTAL + 4, TOTAL + 6),  # + the tag
    "detail": _detail_budget(),
    # user, follower and following counts, workbook stats, 12 newest + tags; logged in: + follow state
    "profile": (6, 9),
    # user, page, tags of the page (no total shown), the bell; PostgreSQL: + the bounded count of follows that
    # decides how the page is read (selectors.feed_for)
    "feed": (None, 5 if connection.vendor == "postgresql" else 4),
    "favorites": (None, 4),
}
BUDGET_CASES = [
    pytest.param(page, who, budget, id=f"{page}-{who}")
    for page, budgets in sorted(BUDGETS.items())
    for who, budget in zip(("anonymous", "logged-in"), budgets, strict=True)
    if budget is not None
]


@pytest.mark.parametrize(("page_name", "who", "budget"), BUDGET_CASES)
def test_query_count_is_fixed_and_independent_of_page_size(
    client, settings, busy_gallery, page_name, who, budget
):
    if who == "logged-in":
        client.force_login(busy_gallery["me"])
    urls = {
        "list": (LIST, {}),
        "search": (LIST, {"q": "zebra"}),
        "tag": (busy_gallery["tag"].get_absolute_url(), {}),
        "detail": (busy_gallery["workbook"].get_absolute_url(), {}),
        "profile": (busy_gallery["author"].get_absolute_url(), {}),
        "feed": (reverse("workbooks:feed"), {}),
        "favorites": (reverse("workbooks:favorites"), {}),
    }
    url, params = urls[page_name]
    small, small_sql = count_queries(client, url, per_page=10, **params)
    # A new view-dedup window, so the detail page's second request counts its view like the first did.
    settings.VIEW_DEDUP_SECONDS += 1
    large, large_sql = count_queries(client, url, per_page=100, **params)
    assert small == large, "query count grows with page size:\n" + "\n".join(large_sql)
    assert small == budget, f"{page_name} ({who}): {small} queries, budget {budget}:\n" + "\n".join(small_sql)
