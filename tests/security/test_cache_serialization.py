"""Values read back from Redis can only be data (issue 13, section 10): no pickle anywhere, and a Redis with
a password is accepted in REDIS_URL."""

from __future__ import annotations

import json
import pickle
import subprocess
import tempfile
import time

import pytest
from django.core.cache import cache
from django.test import Client

from sigma_playground.caching import keys, service
from tests.monitoring.helpers import free_port
from tests.test_production_settings import run

EXECUTED: list[str] = []


def _planted(marker: str) -> dict:
    EXECUTED.append(marker)
    return {}


class Exploit:
    def __reduce__(self):
        return (_planted, ("code ran",))


def test_entries_round_trip_as_data_with_bytes_kept_raw():
    value = {
        "status": 200,
        "headers": [["Content-Type", "text/html"]],
        "content": b"\x00\xff<html>",
        "g": {"a": 1},
    }
    raw = service._dumps(service.Entry(value=value, fresh_until=123.5))
    assert raw.startswith(service.MAGIC) and b"<html>" in raw and b"pickle" not in raw
    entry = service._loads(raw)
    assert entry is not None and entry.value == value and entry.fresh_until == 123.5


@pytest.mark.parametrize(
    "raw",
    [
        pickle.dumps((9e9, Exploit())),
        service.MAGIC + b"\x00\x00\x00\x05{bad}",
        service.MAGIC + b"\xff\xff\xff\xff",
        service._dumps(service.Entry(value={"content": b"abc"}, fresh_until=1.0))[:-1],
        b"",
    ],
)
def test_anything_else_read_back_is_a_miss_and_runs_nothing(raw):
    assert service._loads(raw) is None
    assert EXECUTED == []


def test_only_data_can_be_cached():
    with pytest.raises(TypeError):
        service._dumps(service.Entry(value={"when": object()}, fresh_until=1.0))


@pytest.mark.redis
@pytest.mark.django_db
def test_a_pickle_planted_in_redis_is_never_executed(settings):
    settings.PAGE_CACHE_ENABLED = True
    service.reset_backend()
    client = service.backend().client
    client.set(keys.page("home", "/", secure=False), pickle.dumps((9e9, Exploit())))
    response = Client().get("/")
    assert response.status_code == 200 and response.get("X-Cache") != "hit"  # rebuilt, not unpickled
    # Django's cache (sessions, rate limits, the heartbeat) stores JSON, and reads a planted pickle as garbage.
    cache.set("probe", {"a": [1, 2]})
    assert json.loads(client.get(cache.make_key("probe"))) == {"a": [1, 2]}
    client.set(cache.make_key("planted"), pickle.dumps(Exploit()))
    with pytest.raises(ValueError):  # UnicodeDecodeError or a JSON error: never code
        cache.get("planted")
    assert EXECUTED == []
    service.reset_backend()


PROBE = """
import django
django.setup()
from django.conf import settings
from django.core.cache import cache
cache.set("password-probe", {"ok": True}, 30)
print(settings.CELERY_BROKER_URL, cache.get("password-probe"))
"""


def test_a_redis_with_a_password_is_accepted(tmp_path):
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--requirepass", "s3cret-pass", "--dir", tempfile.mkdtemp(dir=tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(port), "-a", "s3cret-pass", "--no-auth-warning", "ping"],
                             capture_output=True, text=True).stdout.strip() != "PONG":  # fmt: skip
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.1)
        env = {"DJANGO_SETTINGS_MODULE": "sigma_playground.settings", "DATABASE_URL": ""}
        good = run(["-c", PROBE], {**env, "REDIS_URL": f"redis://:s3cret-pass@127.0.0.1:{port}/2"})
        assert good.returncode == 0, good.stderr
        assert good.stdout.split() == [f"redis://:s3cret-pass@127.0.0.1:{port}/3", "{'ok':", "True}"]
        wrong = run(["-c", PROBE], {**env, "REDIS_URL": f"redis://:wrong@127.0.0.1:{port}/2"})
        assert wrong.stdout.split()[-1] == "None"  # fails open: a miss, not a crash
    finally:
        server.terminate()
        server.wait(timeout=10)
