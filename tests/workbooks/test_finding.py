"""Finding things (issue 18 §2): people and tags directories, the People block of a search, highlighting,
empty results, a home page without duplicates, Featured's own page and stale cursors."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from accounts import services as account_services
from tests.factories import TagFactory, UserFactory, WorkbookFactory
from tests.workbooks.test_views import count_queries
from workbooks import search
from workbooks.models import Visibility

pytestmark = pytest.mark.django_db

LIST = reverse("workbooks:list")
PEOPLE = reverse("profiles:list")
TAGS = reverse("workbooks:tags")


@pytest.fixture
def people():
    ana = UserFactory(username="ana_lytics", full_name="Ana Churchill")
    bob = UserFactory(username="bobcat", full_name="Robert Stone")
    cy = UserFactory(username="cyrus", full_name="Cy Anderson")
    for follower in UserFactory.create_batch(3, full_name="Zed Follower"):  # no "an" in it
        account_services.follow(follower=follower, followed=bob)
    account_services.follow(follower=ana, followed=cy)
    return {"ana": ana, "bob": bob, "cy": cy}


def names(response) -> list[str]:
    return [p.username for p in response.context["people"]]


def test_people_directory_most_followed_first_and_searchable(client, people):
    everyone = names(client.get(PEOPLE))
    assert everyone[:2] == ["bobcat", "cyrus"]  # 3 followers, then 1
    assert names(client.get(PEOPLE, {"q": "church"})) == ["ana_lytics"]  # by name
    assert names(client.get(PEOPLE, {"q": "BOBC"})) == ["bobcat"]  # by username, any case
    assert set(names(client.get(PEOPLE, {"q": "an"}))) == {"ana_lytics", "cyrus"}  # "Ana", "Anderson"
    html = client.get(PEOPLE, {"q": "nobody-at-all"}).content.decode()
    assert "Nobody\u2019s name or username contains" in html
    assert names(client.get(PEOPLE, {"q": "100%_"})) == []  # LIKE wildcards are literal


def test_people_directory_hides_deactivated_people_and_counts_follows(client, people):
    people["bob"].is_active = False
    people["bob"].save()
    assert "bobcat" not in names(client.get(PEOPLE))
    html = client.get(PEOPLE, {"q": "cyrus"}).content.decode()
    assert "1 follower" in html


def test_follow_and_unfollow_keep_follower_count(people):
    bob = people["bob"]
    bob.refresh_from_db()
    assert bob.follower_count == 3
    account_services.follow(follower=people["ana"], followed=bob)
    account_services.follow(follower=people["ana"], followed=bob)  # idempotent
    bob.refresh_from_db()
    assert bob.follower_count == 4
    account_services.unfollow(follower=people["ana"], followed=bob)
    account_services.unfollow(follower=people["ana"], followed=bob)
    bob.refresh_from_db()
    assert bob.follower_count == 3


def test_tags_directory_counts_listed_workbooks_only_most_used_first(client):
    big, small, hidden_only = TagFactory(name="finance"), TagFactory(name="ops"), TagFactory(name="secret")
    WorkbookFactory.create_batch(3, tags=[big])
    WorkbookFactory(tags=[small, big])
    WorkbookFactory(tags=[small], visibility=Visibility.PRIVATE)
    WorkbookFactory(tags=[small], visibility=Visibility.UNLISTED)
    WorkbookFactory(tags=[hidden_only], published_at=None)
    response = client.get(TAGS)
    tags = response.context["tags"]
    assert [(t.slug, t.workbook_total) for t in tags] == [("finance", 4), ("ops", 1)]
    html = response.content.decode()
    assert f'href="{big.get_absolute_url()}"' in html and "secret" not in html


def test_list_offers_popular_tags_as_filters_and_chips_link_to_tag_pages(client):
    tag = TagFactory(name="finance")
    workbook = WorkbookFactory(tags=[tag])
    html = client.get(LIST, {"sort": "oldest"}).content.decode()
    assert 'aria-label="Popular tags"' in html
    assert 'href="?sort=oldest&amp;tag=finance"' in html  # a filter keeps the rest of the query
    assert f'<a class="tag" href="{tag.get_absolute_url()}">finance</a>' in html  # the card's chip
    assert (
        f'<a class="tag" href="{tag.get_absolute_url()}">'
        in client.get(workbook.get_absolute_url()).content.decode()
    )


def test_search_shows_matching_people_above_results(client, people):
    WorkbookFactory(author=people["ana"], title="Retention cohorts")
    html = client.get(LIST, {"q": "churchill"}).content.decode()
    assert 'id="people-heading"' in html and "Ana Churchill" in html
    assert html.index("people-heading") < html.index("empty-heading")  # above the (empty) results


def test_empty_result_offers_tags_and_hides_the_sort_bar(client):
    tag = TagFactory(name="finance")
    WorkbookFactory(tags=[tag], title="Revenue bridge")
    html = client.get(LIST, {"q": "zzzqqq"}).content.decode()
    assert 'aria-label="Sort"' not in html
    assert "Browse by tag" in html and f'href="{tag.get_absolute_url()}"' in html
    assert 'href="?"' in html  # drop the search


def test_relevance_comes_first_when_searching(client):
    WorkbookFactory(title="Revenue bridge")
    sorts = [s["name"] for s in client.get(LIST, {"q": "revenue"}).context["sort_links"]]
    assert sorts[0] == "relevance"
    assert "relevance" not in [s["name"] for s in client.get(LIST).context["sort_links"]]


def test_matches_are_highlighted_and_the_text_stays_escaped(client):
    WorkbookFactory(
        title="<b>Revenue</b> bridge",
        description="Filler words first. Then the revenue bridge <script>x</script> by quarter.",
    )
    html = client.get(LIST, {"q": "revenue"}).content.decode()
    assert "<mark>Revenue</mark>" in html or "&lt;b&gt;<mark>Revenue</mark>" in html
    assert "<mark>revenue</mark>" in html  # in the description snippet
    assert "<script>x" not in html and "<b>" not in html


def test_headlines_cover_only_the_page(client):
    WorkbookFactory.create_batch(5, title="Revenue board")
    page = client.get(LIST, {"q": "revenue", "per_page": 2}).context["page"]
    assert all(w.headline_title for w in page.object_list) and len(page.object_list) == 2


def test_home_never_repeats_a_workbook_and_featured_has_its_own_page(client):
    both = WorkbookFactory(title="Featured and hot", is_featured=True, trending_score=9)
    WorkbookFactory.create_batch(10, trending_score=1)
    sections = client.get(reverse("home")).context["sections"]
    ids = [w.pk for s in ("featured", "trending", "newest") for w in sections[s]]
    assert len(ids) == len(set(ids))
    assert [w.pk for w in sections["featured"]] == [both.pk]
    html = client.get(reverse("home")).content.decode()
    assert 'href="/workbooks/?featured=1"' in html
    featured = client.get(LIST, {"featured": "1"})
    assert [w.pk for w in featured.context["page"].object_list] == [both.pk]
    assert "Featured workbooks" in featured.content.decode()


@pytest.mark.parametrize("where", ["tag", "people", "favorites", "followers"])
def test_a_bad_cursor_falls_back_to_the_first_page(client, where):
    user = UserFactory()
    tag = TagFactory(name="ops")
    WorkbookFactory(tags=[tag])
    client.force_login(user)
    url = {
        "tag": tag.get_absolute_url(),
        "people": PEOPLE,
        "favorites": reverse("workbooks:favorites"),
        "followers": reverse("profiles:followers", args=[user.username]),
    }[where]
    response = client.get(url, {"cursor": "bm9wZQ"}, follow=True)
    assert response.redirect_chain == [(url, 302)]
    assert "no longer valid" in response.content.decode()


# --- Query budgets of the new pages ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "params", "budget"),
    [
        (PEOPLE, {}, 1),  # one page of people (follower counts are a column)
        (PEOPLE, {"q": "user"}, 1),
        (TAGS, {}, 1),  # the tag directory, one aggregate
    ],
    ids=["people", "people-search", "tags"],
)
def test_new_pages_have_a_fixed_query_count(client, url, params, budget):
    for i in range(30):
        author = UserFactory()
        WorkbookFactory(author=author, tags=[TagFactory(name=f"t{i % 7}")])
    n, sql = count_queries(client, url, **params)
    assert n == budget, f"{url}: {n} queries, budget {budget}:\n" + "\n".join(sql)


# --- Prefix search right after seed_demo (PostgreSQL) ------------------------------------------------------


@pytest.mark.postgres
def test_seed_demo_refreshes_the_prefix_words():
    WorkbookFactory(title="Churn cohort explorer")  # a factory row: never added to the lexeme table
    search.PREFIX_CACHE.clear()
    assert search.expand_prefix("chur") == []
    call_command("seed_demo", "--workbooks", "0", stdout=io.StringIO(), stderr=io.StringIO())
    search.PREFIX_CACHE.clear()
    assert "churn" in search.expand_prefix("chur")


# --- Polish: form errors (issue 18 §8) ---------------------------------------------------------------------


def test_every_tag_error_shows_with_the_ids_aria_describedby_names(logged_in):
    from tests.workbooks.test_views import NEW, form_data

    tags = ",".join([f"t{i}" for i in range(12)] + ["x" * 41])
    html = logged_in.submit(NEW, form_data(tags=tags)).content.decode()
    assert "Use at most 10 tags." in html and "at most 40 characters" in html
    assert 'aria-describedby="id_tags_helptext id_tags_error"' in html
    assert 'id="id_tags_error"' in html
    assert 'class="error-summary"' in html and "autofocus" in html
    assert '<a href="#id_tags">Tags: Use at most 10 tags.</a>' in html


def test_sign_up_password_rules_are_a_list_outside_a_paragraph(client):
    html = client.get(reverse("accounts:signup")).content.decode()
    assert '<div class="help" id="id_password1_helptext"><ul>' in html
    assert '<p class="help" id="id_password1_helptext"><ul>' not in html
