import pytest
from django.core.cache import caches
from django.urls import reverse

from tests.factories import UserFactory

CLOSED_PORT_REDIS = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "SOCKET_CONNECT_TIMEOUT": 0.25,
            "SOCKET_TIMEOUT": 0.25,
            "IGNORE_EXCEPTIONS": True,
        },
    }
}


def test_healthz_does_not_touch_the_database(client):
    # No django_db mark: any database access in this test raises.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_ok_when_database_and_cache_answer(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] and body["checks"]["cache"]["ok"]


@pytest.mark.django_db
def test_readyz_names_the_cache_when_redis_is_unreachable_and_pages_still_render(client, settings):
    person = UserFactory()
    client.force_login(person)  # the session is written while the cache is up
    settings.CACHES = CLOSED_PORT_REDIS
    try:
        response = client.get("/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["failing"] == ["cache"]
        assert body["checks"]["database"]["ok"] is True

        home = client.get(reverse("home"))
        assert home.status_code == 200
        # cached_db sessions fall back to the database: the user is still logged in.
        assert person.username in home.content.decode()
        assert client.get(person.get_absolute_url()).status_code == 200
    finally:
        caches["default"].close()


@pytest.mark.django_db
def test_readyz_names_the_database_when_it_fails(client, monkeypatch):
    from sigma_playground import health

    def broken_cursor(*args, **kwargs):
        raise OSError("connection refused")

    monkeypatch.setattr(health.connection, "cursor", broken_cursor)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["database"]
