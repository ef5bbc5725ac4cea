"""The purge backends against a local fake of each CDN's API, which checks what a real one would: method, path,
headers and body (Fastly's batch surrogate-key purge, Cloudflare's purge_cache by tags and by files, Varnish
PURGE with xkey-purge). Varnish itself is tested for real in tests/edge."""

from __future__ import annotations

import json

import pytest

from sigma_playground.cdn.backends import PurgeError, get_backend
from tests.monitoring.helpers import sample


def test_fastly_batch_purges_surrogate_keys_with_the_api_token(fake, settings):
    settings.CDN_FASTLY_API_URL = fake.url
    settings.CDN_FASTLY_SERVICE_ID, settings.CDN_FASTLY_API_TOKEN = "SU1Z0isxPaozGVKXdv0eY", "tok-123"
    fake.answer = b'{"lists": "108-1391560174-974124", "wb-7": "108-1391560174-974125"}'
    get_backend("fastly").purge_keys(["wb-7", "lists", "wb-7"])
    [req] = fake.seen
    assert (req.method, req.path) == ("POST", "/service/SU1Z0isxPaozGVKXdv0eY/purge")
    assert req.headers["fastly-key"] == "tok-123"
    assert req.headers["content-type"] == "application/json" and req.headers["accept"] == "application/json"
    assert "fastly-soft-purge" not in req.headers  # hard purges only
    assert json.loads(req.body) == {"surrogate_keys": ["lists", "wb-7"]}


def test_fastly_sends_at_most_256_keys_a_request_and_purges_a_url(fake, settings):
    settings.CDN_FASTLY_API_URL = fake.url
    settings.CDN_FASTLY_SERVICE_ID, settings.CDN_FASTLY_API_TOKEN = "svc", "tok"
    get_backend("fastly").purge_keys([f"wb-{n}" for n in range(300)])
    assert [len(b["surrogate_keys"]) for b in fake.json_bodies()] == [256, 44]
    fake.seen.clear()
    get_backend("fastly").purge_url("https://playground.example.com/workbooks/?sort=new")
    [req] = fake.seen
    assert (req.method, req.path) == ("POST", "/purge/playground.example.com/workbooks/?sort=new")
    assert req.headers["fastly-key"] == "tok" and req.body == b""


def test_cloudflare_purges_cache_tags_in_batches_of_30_with_a_bearer_token(fake, settings):
    settings.CDN_CLOUDFLARE_API_URL = fake.url + "/client/v4"
    settings.CDN_CLOUDFLARE_ZONE_ID, settings.CDN_CLOUDFLARE_API_TOKEN = (
        "023e105f4ecef8ad9ca31a8372d0c353",
        "cf-tok",
    )
    fake.answer = b'{"success": true, "errors": [], "messages": [], "result": {"id": "x"}}'
    get_backend("cloudflare").purge_keys([f"user-{n:02d}" for n in range(31)])
    assert [(s.method, s.path) for s in fake.seen] == [
        ("POST", "/client/v4/zones/023e105f4ecef8ad9ca31a8372d0c353/purge_cache")
    ] * 2
    assert fake.seen[0].headers["authorization"] == "Bearer cf-tok"
    assert fake.seen[0].headers["content-type"] == "application/json"
    assert [len(b["tags"]) for b in fake.json_bodies()] == [30, 1]
    fake.seen.clear()
    get_backend("cloudflare").purge_url("https://playground.example.com/tags/finance/")
    assert fake.json_bodies() == [{"files": ["https://playground.example.com/tags/finance/"]}]


def test_cloudflare_without_success_in_its_answer_is_a_failure(fake, settings):
    settings.CDN_CLOUDFLARE_API_URL, settings.CDN_CLOUDFLARE_ZONE_ID = fake.url, "zone"
    fake.answer = b'{"success": false, "errors": [{"code": 1134, "message": "Purge by tag is not allowed"}]}'
    errors = sample("sigma_cdn_purge_requests_total", {"backend": "cloudflare", "result": "error"})
    oks = sample("sigma_cdn_purge_requests_total", {"backend": "cloudflare", "result": "ok"})
    with pytest.raises(PurgeError, match="1134"):
        get_backend("cloudflare").purge_keys(["lists"])
    assert (
        sample("sigma_cdn_purge_requests_total", {"backend": "cloudflare", "result": "error"}) == errors + 1
    )
    assert sample("sigma_cdn_purge_requests_total", {"backend": "cloudflare", "result": "ok"}) == oks


def test_varnish_purges_keys_on_every_instance_and_urls_with_their_host(fake, settings):
    settings.CDN_VARNISH_URLS = [fake.url, fake.url + "/"]
    get_backend("varnish").purge_keys(["user-ada", "lists"])
    assert [(s.method, s.path, s.headers["xkey-purge"]) for s in fake.seen] == [
        ("PURGE", "/", "lists user-ada")
    ] * 2
    fake.seen.clear()
    get_backend("varnish").purge_url("http://playground.example.com/workbooks/?sort=new")
    assert {(s.method, s.path, s.headers["host"]) for s in fake.seen} == {
        ("PURGE", "/workbooks/?sort=new", "playground.example.com")
    }


@pytest.mark.parametrize("status", [403, 500, 503])
def test_an_error_answer_or_no_answer_is_a_purge_error(fake, settings, status):
    settings.CDN_FASTLY_API_URL, settings.CDN_FASTLY_SERVICE_ID, settings.CDN_FASTLY_API_TOKEN = (
        fake.url,
        "s",
        "t",
    )
    fake.status = status
    with pytest.raises(PurgeError, match=str(status)):
        get_backend("fastly").purge_keys(["lists"])
    settings.CDN_VARNISH_URLS = ["http://127.0.0.1:1"]
    with pytest.raises(PurgeError, match="failed"):
        get_backend("varnish").purge_keys(["lists"])


def test_the_backend_setting_is_checked(monkeypatch):
    import importlib

    from django.core.exceptions import ImproperlyConfigured

    import sigma_playground.settings as site_settings

    monkeypatch.setenv("CDN_PURGE_BACKEND", "akamai")
    with pytest.raises(ImproperlyConfigured, match="CDN_PURGE_BACKEND"):
        importlib.reload(site_settings)
    monkeypatch.setenv("CDN_PURGE_BACKEND", "none")
    importlib.reload(site_settings)
    assert site_settings.CDN_SHARED_MAX_AGE == 0


@pytest.mark.django_db(transaction=True)
def test_in_process_a_cdn_outage_never_fails_the_write(settings, caplog):
    """Embedded mode (eager Celery): the purge runs in the write's on_commit; the CDN being down is logged."""
    settings.CDN_PURGE_BACKEND, settings.CDN_VARNISH_URLS = "varnish", ["http://127.0.0.1:1"]
    settings.CDN_PURGE_MAX_RETRIES = 1
    from tests.caching.conftest import publish
    from tests.factories import UserFactory

    workbook = publish(UserFactory(username="ada"), "Written while the CDN is down", n=4)
    assert workbook.pk and "cdn: purge of" in caplog.text
