"""Sharing (issue 18 §4): share tags, canonical links, oEmbed, Atom feeds, the sitemap, robots.txt and the
favicon, none of which may ever show a private, unlisted or draft workbook."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from django.urls import reverse

from tests.factories import TagFactory, UserFactory, WorkbookFactory
from tests.workbooks.test_views import count_queries
from workbooks import sharing
from workbooks.models import Visibility

pytestmark = pytest.mark.django_db

ATOM = "{http://www.w3.org/2005/Atom}"
SITEMAP = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
DERIVATIVES = {
    "master": "thumbnails/1/x.webp",
    "width": 1536,
    "height": 864,
    "sources": {
        "image/jpeg": [[640, 360, "thumbs/1/abc-640.jpg"], [1280, 720, "thumbs/1/abc-1280.jpg"],
                       [1536, 864, "thumbs/1/abc-1536.jpg"]],
    },
}  # fmt: skip


@pytest.fixture
def world():
    author = UserFactory(username="ada", full_name="Ada Analyst")
    tag = TagFactory(name="finance")
    visible = WorkbookFactory(author=author, title="Visible zebra", tags=[tag])
    hidden = {
        "private": WorkbookFactory(author=author, title="Private zebra", tags=[tag], visibility=Visibility.PRIVATE),
        "unlisted": WorkbookFactory(author=author, title="Unlisted zebra", tags=[tag],
                                    visibility=Visibility.UNLISTED),
        "draft": WorkbookFactory(author=author, title="Draft zebra", tags=[tag], published_at=None),
        "inactive author": WorkbookFactory(title="Ghost zebra", tags=[tag], author=UserFactory(is_active=False)),
    }  # fmt: skip
    return {"author": author, "tag": tag, "visible": visible, "hidden": hidden}


def test_detail_page_has_share_tags_canonical_and_oembed_discovery(client, world):
    workbook = world["visible"]
    workbook.thumbnail, workbook.thumbnail_derivatives = "thumbnails/1/x.webp", DERIVATIVES
    workbook.save()
    html = client.get(workbook.get_absolute_url()).content.decode()
    url = f"http://testserver{workbook.get_absolute_url()}"
    assert f'<link rel="canonical" href="{url}">' in html
    assert '<meta property="og:title" content="Visible zebra">' in html
    assert '<meta property="og:image" content="http://testserver/media/thumbs/1/abc-1280.jpg">' in html
    assert '<meta name="twitter:card" content="summary_large_image">' in html
    assert 'type="application/json+oembed"' in html
    assert 'rel="icon"' in html and 'name="robots"' not in html


def test_unlisted_page_is_noindex_without_oembed(client, world):
    html = client.get(world["hidden"]["unlisted"].get_absolute_url()).content.decode()
    assert '<meta name="robots" content="noindex">' in html
    assert "json+oembed" not in html
    assert '<meta name="twitter:card" content="summary">' in html  # no thumbnail: the small card


def oembed(client, url: str, **params):
    return client.get(reverse("oembed"), {"url": url, **params})


def test_oembed_answers_for_listed_workbooks_only(client, world):
    response = oembed(client, f"http://testserver{world['visible'].get_absolute_url()}", maxwidth="640")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    data = json.loads(response.content)
    assert data["type"] == "rich" and data["version"] == "1.0" and data["title"] == "Visible zebra"
    assert data["width"] == 640 and data["height"] == 360
    assert data["author_name"] == "Ada Analyst" and data["author_url"] == "http://testserver/users/ada/"
    assert data["html"].startswith('<iframe src="https://app.sigmacomputing.com/embed/')
    for kind, workbook in world["hidden"].items():
        assert oembed(client, f"http://testserver{workbook.get_absolute_url()}").status_code == 404, kind
    for bad in ("", "javascript:alert(1)", "http://testserver/users/ada/", "http://x/" + "a" * 3000):
        assert oembed(client, bad).status_code == 404, bad
    assert (
        oembed(client, f"http://testserver{world['visible'].get_absolute_url()}", format="xml").status_code
        == 501
    )
    assert (
        oembed(client, f"http://testserver{world['visible'].get_absolute_url()}", maxwidth="x").status_code
        == 200
    )


def entries(response) -> list[str]:
    assert response.status_code == 200 and response["Content-Type"].startswith("application/atom+xml")
    root = ET.fromstring(response.content)
    return [e.find(f"{ATOM}title").text for e in root.findall(f"{ATOM}entry")]


def test_atom_feeds_show_listed_workbooks_only(client, world):
    WorkbookFactory(title="Someone else's zebra")
    assert set(entries(client.get(reverse("feed_newest")))) == {"Visible zebra", "Someone else's zebra"}
    assert entries(client.get(reverse("workbooks:tag_feed", args=["finance"]))) == ["Visible zebra"]
    assert entries(client.get(reverse("profiles:feed", args=["ada"]))) == ["Visible zebra"]
    assert client.get(reverse("profiles:feed", args=["nobody"])).status_code == 404
    html = client.get(world["author"].get_absolute_url()).content.decode()
    assert (
        f'type="application/atom+xml" title="Workbooks by Ada Analyst" href="{reverse("profiles:feed", args=["ada"])}"'
        in html
    )


def locations(response, tag: str) -> list[str]:
    assert response.status_code == 200 and response["Content-Type"] == "application/xml"
    root = ET.fromstring(response.content)
    return [e.find(f"{SITEMAP}loc").text for e in root.findall(f"{SITEMAP}{tag}")]


def test_sitemap_index_is_paged_by_key_ranges_with_listed_workbooks_only(client, world, monkeypatch):
    monkeypatch.setattr(sharing, "SITEMAP_CHUNK", 3)
    extra = WorkbookFactory.create_batch(6)
    listed = [world["visible"], *extra]
    index = locations(client.get(reverse("sitemap_index")), "sitemap")
    assert index[0] == "http://testserver/sitemaps/pages.xml"
    found = []
    for loc in index[1:]:
        found += locations(client.get(loc.removeprefix("http://testserver")), "url")
    assert sorted(found) == sorted(f"http://testserver{w.get_absolute_url()}" for w in listed)
    chunks = {w.pk // 3 for w in listed}
    assert len(index) == 1 + len(chunks)  # ranges with only hidden workbooks are left out
    empty = next(c for c in range(100) if c not in chunks)
    assert client.get(reverse("sitemap_workbooks", args=[empty])).status_code == 404
    pages = locations(client.get(reverse("sitemap_pages")), "url")
    assert "http://testserver/tags/finance/" in pages and "http://testserver/" in pages


def test_robots_txt_and_favicon(client, settings):
    settings.SITE_URL = "https://playground.example.com"
    robots = client.get("/robots.txt")
    assert robots["Content-Type"].startswith("text/plain")
    text = robots.content.decode()
    assert "Disallow: /accounts/profile/" in text and "Disallow: /admin/" in text
    assert "Disallow: /accounts/\n" not in text  # log in and sign up stay crawlable
    assert "Sitemap: https://playground.example.com/sitemap.xml" in text
    favicon = client.get("/favicon.ico")
    assert favicon.status_code == 301 and favicon["Location"].endswith("favicon.svg")
    html = client.get("/").content.decode()
    assert '<link rel="canonical" href="https://playground.example.com/">' in html


@pytest.mark.parametrize(
    ("name", "budget"),
    [("feed_newest", 2), ("sitemap_index", 2), ("sitemap_pages", 1), ("sitemap_workbooks", 1), ("oembed", 1)],
)
def test_machine_pages_have_a_fixed_query_count(client, name, budget):
    made = WorkbookFactory.create_batch(30, tags=[TagFactory(name="ops")])
    urls = {
        "feed_newest": (reverse("feed_newest"), {}),
        # pages + the first range's probe + the probe that finds no more (30 ids, one range)
        "sitemap_index": (reverse("sitemap_index"), {}),
        "sitemap_pages": (reverse("sitemap_pages"), {}),
        "sitemap_workbooks": (reverse("sitemap_workbooks", args=[made[0].pk // sharing.SITEMAP_CHUNK]), {}),
        "oembed": (f"{reverse('oembed')}?url=http://testserver{made[0].get_absolute_url()}", {}),
    }
    url, params = urls[name]
    n, sql = count_queries(client, url, **params)
    assert n == budget, f"{name}: {n} queries, budget {budget}:\n" + "\n".join(sql)
