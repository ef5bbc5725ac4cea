"""Cached pages: hits run no SQL, personal data never lands in a shared entry, every write makes exactly the
pages it affects fresh, and a dead Redis only makes pages slower."""

from __future__ import annotations

import time

import pytest
from django.core.cache import caches
from django.test import Client
from django.urls import reverse

from accounts import services as account_services
from sigma_playground.caching import keys, service
from tests.caching.conftest import cache_hits, publish
from tests.factories import UserFactory
from workbooks import services
from workbooks.models import Tag, Visibility, Workbook

pytestmark = pytest.mark.django_db(transaction=True)  # on_commit invalidation runs as in production


def anonymous() -> Client:
    return Client()


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def html(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.content.decode()


def test_anonymous_hit_runs_no_sql_and_is_marked(world, django_assert_num_queries):
    for url in (
        reverse("home"),
        reverse("workbooks:list") + "?sort=popular",
        world["author"].get_absolute_url(),
    ):
        first = anonymous().get(url)
        assert first.status_code == 200 and first.get("X-Cache") != "hit"
        with django_assert_num_queries(0):
            second = anonymous().get(url)
        assert second.get("X-Cache") == "hit" and second.content == first.content


@pytest.mark.redis
def test_anonymous_detail_hit_runs_no_sql_and_still_counts_the_view(world, django_assert_num_queries):
    from workbooks import counters

    url = world["workbook"].get_absolute_url()
    anonymous().get(url, REMOTE_ADDR="198.51.100.1")
    with django_assert_num_queries(0):
        assert anonymous().get(url, REMOTE_ADDR="198.51.100.2").get("X-Cache") == "hit"
    assert counters.pending_views() == 2
    assert counters.flush_views() == 2
    world["workbook"].refresh_from_db()
    assert world["workbook"].view_count == 2


def test_a_hit_carries_every_header_of_the_full_stack_and_its_own_request_id(world):
    url = reverse("workbooks:list")
    miss = anonymous().get(url)
    hit = anonymous().get(url)
    assert hit.get("X-Cache") == "hit" and miss.get("X-Cache") is None
    for header in (
        "Content-Type",
        "Content-Security-Policy",
        "X-Frame-Options",
        "X-Content-Type-Options",
        "Referrer-Policy",
        "Cache-Control",
        "Vary",
        "ETag",
        "Content-Length",
    ):
        assert hit.get(header) == miss.get(header) and miss.get(header), header
    assert hit["X-Request-ID"] and hit["X-Request-ID"] != miss["X-Request-ID"]
    assert "Set-Cookie" not in hit.headers and not hit.cookies


def test_a_hit_is_logged_and_measured_like_any_request(world, caplog):
    from tests.monitoring.helpers import sample

    url = reverse("workbooks:list")
    anonymous().get(url)
    labels = {"status": "200", "view": "workbooks:list", "method": "GET"}
    before = sample("django_http_responses_total_by_status_view_method_total", labels)
    latency_before = sample(
        "django_http_requests_latency_seconds_by_view_method_count",
        {"view": "workbooks:list", "method": "GET"},
    )
    caplog.clear()
    with caplog.at_level("INFO", logger="sigma_playground.request"):
        assert anonymous().get(url).get("X-Cache") == "hit"
    assert sample("django_http_responses_total_by_status_view_method_total", labels) == before + 1
    assert (
        sample(
            "django_http_requests_latency_seconds_by_view_method_count",
            {"view": "workbooks:list", "method": "GET"},
        )
        == latency_before + 1
    )
    [line] = [r for r in caplog.records if r.name == "sigma_playground.request"]
    assert (line.route, line.status) == ("workbooks:list", 200)


def test_a_page_stored_under_older_generations_is_never_served(world):
    """The entry stays in Redis after a write; its generations say it is out of date."""
    url = reverse("workbooks:list")
    anonymous().get(url)
    assert anonymous().get(url).get("X-Cache") == "hit"
    service.bump(keys.LISTS)
    assert anonymous().get(url).get("X-Cache") is None
    assert anonymous().get(url).get("X-Cache") == "hit"


def test_a_hot_page_is_reused_by_its_process_for_a_moment_only(world, settings, monkeypatch):
    """PAGE_LOCAL_SECONDS: no round trip for a page this process has just read, and a write made by another
    process (a generation bumped in the cache, not through this process) shows within that window."""
    settings.PAGE_LOCAL_SECONDS = 1.0
    url = reverse("workbooks:list")
    anonymous().get(url)
    assert anonymous().get(url).get("X-Cache") == "hit"  # read from the cache, kept in this process
    reads = []
    real = service.backend().get_many
    monkeypatch.setattr(service.backend(), "get_many", lambda names: reads.append(names) or real(names))
    assert anonymous().get(url).get("X-Cache") == "hit" and reads == []
    # Another process's write: the generation moves in the cache, and this process is not told.
    monkeypatch.setattr(service.RECENT_PAGES, "clear", lambda: None)
    service.bump(keys.LISTS)
    monkeypatch.undo()
    assert anonymous().get(url).get("X-Cache") == "hit"  # the bounded lag: still this process's copy
    time.sleep(1.1)
    assert anonymous().get(url).get("X-Cache") is None  # rebuilt: the window has passed


def test_head_requests_are_served_from_the_cache_but_never_fill_it(world):
    url = reverse("workbooks:list")
    assert anonymous().head(url).get("X-Cache") is None
    assert anonymous().head(url).get("X-Cache") is None  # a HEAD response carries no ETag: not stored
    anonymous().get(url)
    head = anonymous().head(url)
    assert head.status_code == 200 and head.get("X-Cache") == "hit" and head["ETag"]


def test_the_cache_is_not_a_way_around_the_https_redirect_or_the_host_check(world, settings):
    url = reverse("workbooks:list")
    assert anonymous().get(url, secure=True).get("X-Cache") is None
    assert anonymous().get(url, secure=True).get("X-Cache") == "hit"
    settings.SECURE_SSL_REDIRECT = True
    redirected = anonymous().get(url)
    assert redirected.status_code == 301 and redirected["Location"].startswith("https://")
    assert anonymous().get(url, secure=True).get("X-Cache") == "hit"
    assert anonymous().get(url, secure=True, HTTP_HOST="evil.example").status_code == 400


def test_a_hit_answers_a_staff_profile_request_with_the_page_not_the_profile(world):
    """?profile=1 is never answered from the cache: anonymous visitors get the page, built."""
    url = reverse("workbooks:list")
    anonymous().get(url)
    profiled = anonymous().get(url + "?profile=1")
    assert profiled.status_code == 200 and profiled.get("X-Cache") is None
    assert b"pyinstrument" not in profiled.content


def test_page_cache_hit_and_miss_metrics_move(world):
    url = reverse("workbooks:list")
    misses, hits = cache_hits("page", "miss"), cache_hits("page", "hit")
    anonymous().get(url)
    assert (cache_hits("page", "miss") - misses, cache_hits("page", "hit") - hits) == (1, 0)
    anonymous().get(url)
    assert (cache_hits("page", "miss") - misses, cache_hits("page", "hit") - hits) == (1, 1)


def test_logged_in_pages_reuse_shared_fragments_without_personal_data(world):
    reader = world["reader"]
    client = logged_in(reader)
    page = html(client, world["workbook"].get_absolute_url())
    assert "reader" in page and "csrfmiddlewaretoken" in page  # personal parts are there for the reader
    other = html(logged_in(world["author"]), world["workbook"].get_absolute_url())
    assert "Edit" in other and "reader" not in other.split("</header>", 1)[1]
    from sigma_playground.caching.service import backend

    stored = b""
    if backend().is_redis:
        client_ = backend().client
        for key in client_.scan_iter("sp:*"):  # a test may scan; the site never does
            stored += client_.get(key) or b"" if client_.type(key) == b"string" else b""
    else:
        cache = caches["default"]
        stored = b"".join(v if isinstance(v, bytes) else str(v).encode() for v in cache._cache.values())
    assert stored, "nothing was cached"
    for personal in (b"reader", b"Rita Reader", b"csrfmiddlewaretoken", b"Log out"):
        assert personal not in stored, personal


def test_no_personal_page_is_ever_served_from_the_anonymous_cache(world):
    url = reverse("home")
    anonymous().get(url)  # cached for anonymous visitors
    page = html(logged_in(world["reader"]), url)
    assert "Log out" in page and "reader" in page


# --- Exact invalidation ------------------------------------------------------------------------------------


def _write_publish(w):
    publish(w["author"], "Brand new zebra board", n=3)


def _write_edit(w):
    wb = w["workbook"]
    services.workbook_update(
        workbook=wb, title="Renamed zebra board", sigma_embed_url=wb.sigma_embed_url, description="",
        tags=["finance"], visibility=wb.visibility, publish=True,
    )  # fmt: skip


def _write_private(w):
    services.workbooks_set_visibility(workbook_ids=[w["workbook"].pk], visibility=Visibility.PRIVATE)


def _write_delete(w):
    services.workbook_delete(workbook=Workbook.objects.get(pk=w["workbook"].pk))


def _write_feature(w):
    services.workbooks_set_featured(workbook_ids=[w["workbook"].pk], featured=True)


def _write_favorite(w):
    for user in UserFactory.create_batch(3):
        services.favorite_add(user=user, workbook=w["workbook"])


def _write_follow(w):
    for user in UserFactory.create_batch(4, full_name="Zebra Fan"):
        account_services.follow(follower=user, followed=w["author"])


def _write_tag_rename(w):
    services.tag_update(tag=Tag.objects.get(slug="finance"), name="Treasury zebra", colour="#123456")


def _write_profile(w):
    account_services.user_update_profile(user=w["author"], full_name="Ada Zebra Lovelace", bio="New bio")


# write -> (page url builder, what the fresh page shows, what it must no longer show)
INVALIDATION = {
    "publish": (_write_publish, ["home", "list", "profile", "tag"], "Brand new zebra board", None),
    "edit": (
        _write_edit,
        ["home", "list", "detail", "profile", "tag"],
        "Renamed zebra board",
        "Revenue waterfall",
    ),
    "private": (_write_private, ["home", "list", "profile", "tag"], None, "Revenue waterfall"),
    "delete": (_write_delete, ["home", "list", "profile", "tag"], None, "Revenue waterfall"),
    "feature": (_write_feature, ["home"], "Featured", None),
    "favorite": (_write_favorite, ["detail"], "3 favorites", None),
    "follow": (
        _write_follow,
        ["profile", "followers"],
        {"profile": "4</strong> followers", "followers": "Zebra Fan"},
        None,
    ),
    "tag rename": (_write_tag_rename, ["home", "list", "detail"], "Treasury zebra", None),
    "profile edit": (
        _write_profile,
        ["home", "list", "detail", "profile"],
        "Ada Zebra Lovelace",
        "Ada Analyst",
    ),
}


def page_url(name: str, w) -> str:
    return {
        "home": reverse("home"),
        "list": reverse("workbooks:list"),
        "detail": w["workbook"].get_absolute_url(),
        "profile": w["author"].get_absolute_url(),
        "followers": reverse("profiles:followers", args=[w["author"].username]),
        "tag": reverse("workbooks:tag", args=["finance"]),
    }[name]


@pytest.mark.parametrize("write", sorted(INVALIDATION))
@pytest.mark.parametrize("reader", ["anonymous", "logged-in"])
def test_every_write_makes_every_affected_page_fresh(world, write, reader):
    action, pages, shows, gone = INVALIDATION[write]
    client = anonymous() if reader == "anonymous" else logged_in(world["reader"])
    urls = {name: page_url(name, world) for name in pages}
    for url in urls.values():
        html(client, url)  # warm: the old state is cached now
        assert client.get(url).get("X-Cache") == ("hit" if reader == "anonymous" else None)
    action(world)
    for name, url in urls.items():
        response = client.get(url, follow=True)  # an edit changes the slug: the old URL redirects
        body = response.content.decode()
        assert response.status_code == 200, (name, response.status_code)
        expected = shows.get(name) if isinstance(shows, dict) else shows
        if expected:
            assert expected in body, f"{write}: {name} is stale for {reader}"
        if gone:
            assert gone not in body, f"{write}: {name} still shows {gone!r} to {reader}"


def test_private_public_private_never_shows_the_private_state(world):
    wb = world["workbook"]
    readers = [anonymous(), logged_in(world["reader"])]
    urls = [
        reverse("home"),
        reverse("workbooks:list"),
        world["author"].get_absolute_url(),
        wb.get_absolute_url(),
    ]
    for step in (Visibility.PRIVATE, Visibility.PUBLIC, Visibility.PRIVATE):
        services.workbooks_set_visibility(workbook_ids=[wb.pk], visibility=step)
        for client in readers:
            for url in urls:
                response = client.get(url)
                if step == Visibility.PRIVATE:
                    assert wb.title not in response.content.decode(), (url, step)
                else:
                    assert response.status_code == 200 and wb.title in response.content.decode(), (url, step)


# --- HTTP caching ---------------------------------------------------------------------------------------------


def test_cache_control_by_class_of_page(world):
    anon = anonymous().get(reverse("workbooks:list"))
    # Without a purge backend nothing may keep a page: browsers and shared caches revalidate (ETag, 304).
    assert anon["Cache-Control"] == "public, max-age=0"
    assert "Surrogate-Control" not in anon
    assert anon["Surrogate-Key"] == "lists"
    assert "Cookie" in anon["Vary"]
    hit = anonymous().get(reverse("workbooks:list"))
    assert hit["Cache-Control"] == anon["Cache-Control"] and "Cookie" in hit["Vary"]
    personal = logged_in(world["reader"]).get(reverse("workbooks:list"))
    assert "private" in personal["Cache-Control"] and "public" not in personal["Cache-Control"]
    form = logged_in(world["reader"]).get(reverse("workbooks:create"))
    assert "no-store" in form["Cache-Control"]
    login = anonymous().get(reverse("accounts:login"))
    assert "public" not in login.get("Cache-Control", "")
    assert "Surrogate-Key" not in personal and "Surrogate-Key" not in login


def test_with_a_purge_backend_shared_caches_keep_pages_for_a_day_and_browsers_revalidate(world, settings):
    settings.CDN_PURGE_BACKEND, settings.CDN_SHARED_MAX_AGE = "varnish", 86_400
    settings.CDN_VARNISH_URLS = ["http://127.0.0.1:1"]  # nothing listens: purges fail, pages don't care
    listing = anonymous().get(reverse("workbooks:list"))
    assert listing["Cache-Control"] == "public, max-age=0, s-maxage=86400"
    assert listing["Surrogate-Control"] == "max-age=86400"
    assert listing["Surrogate-Key"] == "lists"
    profile = anonymous().get(world["author"].get_absolute_url())
    assert profile["Surrogate-Key"] == "lists user-ada"
    # Every view of a detail page must reach the origin to be counted: the CDN revalidates it each time.
    detail = anonymous().get(world["workbook"].get_absolute_url())
    assert detail["Cache-Control"] == "public, max-age=0, s-maxage=0"
    assert detail["Surrogate-Key"] == f"lists wb-{world['workbook'].pk}"
    hit = anonymous().get(reverse("workbooks:list"))
    assert hit.get("X-Cache") == "hit" and hit["Surrogate-Key"] == "lists"
    assert hit["Cache-Control"] == listing["Cache-Control"]
    settings.CDN_PURGE_BACKEND = "cloudflare"
    tagged = anonymous().get(reverse("workbooks:tag", args=["finance"]))
    assert tagged["Cache-Tag"] == "lists"


def test_conditional_get_answers_304(world):
    """Anonymous pages, from a miss and from a hit. (Logged-in pages carry a freshly masked CSRF token in
    every response, Django's BREACH defence, so their bodies and ETags never repeat.)"""
    url = reverse("workbooks:list")
    first = anonymous().get(url)
    assert first.get("X-Cache") != "hit"
    assert anonymous().get(url, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
    hit = anonymous().get(url)
    assert hit.get("X-Cache") == "hit" and hit["ETag"] == first["ETag"]
    not_modified = anonymous().get(url, HTTP_IF_NONE_MATCH=hit["ETag"])
    assert not_modified.status_code == 304 and not_modified.content == b""
    publish(world["author"], "A change", n=9)
    assert anonymous().get(url, HTTP_IF_NONE_MATCH=hit["ETag"]).status_code == 200


def test_thumbnails_are_served_for_thirty_days_and_masters_never(world, settings, tmp_path):
    thumbs = settings.MEDIA_ROOT / "thumbs" / "1"
    thumbs.mkdir(parents=True)
    (thumbs / "abc-320.webp").write_bytes(b"RIFF....WEBP")
    response = anonymous().get("/media/thumbs/1/abc-320.webp")
    assert response.status_code == 200
    assert response["Cache-Control"] == "public, max-age=2592000, immutable"
    assert anonymous().get("/media/thumbnails/1/master.webp").status_code == 404
    assert anonymous().get("/media/thumbs/../avatars/x").status_code == 404


# --- Fail-open ------------------------------------------------------------------------------------------------

CLOSED_PORT = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "SOCKET_CONNECT_TIMEOUT": 0.25,
            "SOCKET_TIMEOUT": 0.25,
            "IGNORE_EXCEPTIONS": True,
        },
    }
}


def test_with_redis_down_every_page_answers_from_the_database(world, settings):
    settings.CACHES = CLOSED_PORT
    service.reset_backend()
    try:
        urls = [page_url(n, world) for n in ("home", "list", "detail", "profile", "followers", "tag")]
        for client in (anonymous(), logged_in(world["reader"])):
            for url in urls:
                assert client.get(url).status_code == 200, url
        assert service.is_degraded()
        ready = anonymous().get("/readyz")
        assert ready.json()["checks"]["cache"]["ok"] is False
        assert ready.json()["status"] == "degraded"
        world["workbook"].refresh_from_db()
        assert world["workbook"].view_count >= 2  # counted straight into the database
    finally:
        caches["default"].close()
        service.reset_backend()


# --- Writes while the cache circuit is open (issue 17) -------------------------------------------------------


def _separate_durable_role(settings) -> None:
    """The durable role on its own client and breaker (another LOCATION naming the same server and database)."""
    location = settings.CACHES["default"]["LOCATION"]
    other = location.replace("127.0.0.1", "localhost") if "127.0.0.1" in location else location + "?"
    assert other != location
    settings.CACHES = {**settings.CACHES, "durable": {**settings.CACHES["durable"], "LOCATION": other}}
    service.reset_backend()
    assert not service.shares_server()


@pytest.mark.parametrize("roles", ["one Redis", pytest.param("two Redis roles", marks=pytest.mark.redis)])
def test_a_write_made_while_the_circuit_is_open_shows_once_redis_answers(world, settings, roles):
    """The bump that could not reach Redis is owed and replayed before this process reads from it again: the
    page stored before the write is never served as a hit after it."""
    if roles == "two Redis roles":
        _separate_durable_role(settings)
    settings.CACHE_RETRY_SECONDS = 600  # the circuit stays open until the test closes it
    urls = [reverse("workbooks:list"), world["author"].get_absolute_url()]
    for url in urls:
        html(anonymous(), url)
        assert anonymous().get(url).get("X-Cache") == "hit"
    breaker = service.durable().breaker
    breaker.failed()  # as after a Redis error: Redis is skipped
    publish(world["author"], "Written during the outage", n=11)
    assert breaker.is_open()
    breaker.succeeded()  # Redis answers again (what the breaker's probe does)
    for url in urls:
        response = anonymous().get(url)
        assert response.get("X-Cache") is None, url
        assert "Written during the outage" in response.content.decode(), url
        assert anonymous().get(url).get("X-Cache") == "hit"  # and caching goes on


def test_owed_bumps_are_replayed_by_the_probe_when_redis_comes_back(world, settings):
    """The real path back: the open interval ends, one caller starts the probe (a PING), the probe replays."""
    settings.CACHE_RETRY_SECONDS = 600
    url = reverse("home")
    html(anonymous(), url)
    assert anonymous().get(url).get("X-Cache") == "hit"
    be = service.durable()
    be.breaker.failed()
    publish(world["author"], "Another outage board", n=12)
    assert be.owes
    be.breaker._open_until = 0.0  # the open interval is over
    assert not be.breaker.allow()  # this caller started the probe and carries on without the cache
    deadline = time.monotonic() + 30
    while be.breaker.is_open():
        assert time.monotonic() < deadline, "the probe did not finish"
        time.sleep(0.01)
    assert not be.owes
    assert "Another outage board" in html(anonymous(), url)


def test_a_replay_that_fails_keeps_the_bumps_owed(world, settings, monkeypatch):
    settings.CACHE_RETRY_SECONDS = 600
    be = service.durable()
    be.breaker.failed()
    service.bump(keys.LISTS)
    assert be.owes
    be.breaker.succeeded()

    def refused(names):
        raise ConnectionError("still down")

    monkeypatch.setattr(be, "incr_generations", refused)
    assert service.generations([keys.LISTS]) == {}  # the replay failed first: nothing read behind it
    assert be.owes and be.breaker.is_open()
    monkeypatch.undo()
    be.breaker.succeeded()
    before = service.durable().get_many([keys.generation(keys.LISTS)])[0]
    service.generations([keys.PEOPLE])  # any call replays first
    assert not be.owes
    assert int(service.durable().get_many([keys.generation(keys.LISTS)])[0]) == int(before) + 1
