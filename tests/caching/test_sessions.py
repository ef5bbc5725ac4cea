"""Sessions behind the cache breaker (issue 12): with Redis hanging, logged-in requests skip the cache at once."""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.test import Client

from sigma_playground import sessions
from sigma_playground.caching import service

pytestmark = pytest.mark.django_db


class Recording:
    def __init__(self, cache, fail: bool = False):
        self.cache, self.fail, self.calls = cache, fail, []

    def get(self, key, default=None):
        self.calls.append("get")
        if self.fail:
            raise TimeoutError("Timeout reading from socket")
        return self.cache.get(key, default)

    def set(self, key, value, timeout=None):
        self.calls.append("set")
        if self.fail:
            raise TimeoutError("Timeout reading from socket")
        return self.cache.set(key, value, timeout)

    def delete(self, key):
        self.calls.append("delete")
        return self.cache.delete(key)

    def __contains__(self, key):
        self.calls.append("contains")
        return key in self.cache


def test_a_failing_session_cache_trips_the_breaker_and_later_requests_skip_it(user, monkeypatch, settings):
    settings.CACHE_RETRY_SECONDS = 60
    alias = settings.SESSION_CACHE_ALIAS if settings.SESSION_CACHE_ALIAS in settings.CACHES else "default"
    recording = Recording(caches[alias], fail=True)
    real_init = sessions.SessionStore.__init__

    def init(self, session_key=None):
        real_init(self, session_key)
        self._cache = sessions._BreakerCache(recording)

    client = Client()
    client.force_login(user)
    monkeypatch.setattr(sessions.SessionStore, "__init__", init)
    assert client.get("/favorites/").status_code == 200  # the first request meets the failure ...
    assert recording.calls == ["get"]
    assert service.is_degraded()
    for _ in range(3):  # ... and the next ones never touch the cache: read from the database, still logged in
        response = client.get("/favorites/")
        assert response.status_code == 200 and response.context["user"] == user
    assert recording.calls == ["get"]
    service.reset_backend()


def test_a_logout_while_the_breaker_is_open_never_lets_the_old_session_back(user, settings):
    """The cached copy of a session deleted during an outage is deleted before the process uses the session
    cache again: the old cookie does not log anyone in once Redis answers (cached_db reads the cache first)."""
    settings.CACHE_RETRY_SECONDS = 60
    alias = settings.SESSION_CACHE_ALIAS if settings.SESSION_CACHE_ALIAS in settings.CACHES else "default"
    client = Client()
    client.force_login(user)
    assert client.get("/favorites/").status_code == 200  # the session is in the cache now
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    cache_key = sessions.SessionStore(cookie).cache_key
    assert caches[alias].get(cache_key) is not None

    service.backend().breaker.failed()  # Redis is being skipped
    assert client.post("/accounts/logout/").status_code == 302
    assert caches[alias].get(cache_key) is not None  # the copy could not be deleted meanwhile

    service.reset_backend()  # Redis answers again
    stolen = Client()
    stolen.cookies[settings.SESSION_COOKIE_NAME] = cookie
    response = stolen.get("/favorites/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert caches[alias].get(cache_key) is None
