"""Request bodies above REQUEST_BODY_MAX_BYTES are refused with 413 before they are read (issue 13,
section 3): by Content-Length, and for chunked bodies as they stream."""

from __future__ import annotations

import http.client
import io
from collections.abc import Iterator

import pytest
from django.test import RequestFactory

from sigma_playground.body_limit import BodySizeLimit
from tests.monitoring.helpers import sample

LIMIT = 100_000


@pytest.fixture(autouse=True)
def small_limit(settings):
    settings.REQUEST_BODY_MAX_BYTES = LIMIT


class Recorder:
    """The application behind the limit: records what reached it and how much of the body it could read."""

    def __init__(self) -> None:
        self.bodies: list[int] = []

    def __call__(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        self.bodies.append(len(environ["wsgi.input"].read(length)))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]


class Untouchable(io.RawIOBase):
    """A wsgi.input that fails the test if anything reads it."""

    def read(self, size=-1):
        raise AssertionError("the body was read")


def call(app, environ) -> str:
    status = []
    b"".join(app(environ, lambda s, h, exc_info=None: status.append(s)))
    return status[0]


def environ_for(body: bytes | None = None, *, length: int | None = None, chunked: bool = False) -> dict:
    environ = RequestFactory().post("/accounts/login/").environ.copy()
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input"] = Untouchable() if body is None else io.BytesIO(body)
    if length is not None:
        environ["CONTENT_LENGTH"] = str(length)
    if chunked:
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
        environ["wsgi.input_terminated"] = True
    return environ


def test_content_length_just_above_the_limit_is_413_without_reading_the_body():
    inner = Recorder()
    before = sample("sigma_request_body_refused_total", {"reason": "content_length"})
    assert call(BodySizeLimit(inner), environ_for(length=LIMIT + 1)).startswith("413")
    assert call(BodySizeLimit(inner), environ_for(length=300 * 1024 * 1024)).startswith("413")
    assert inner.bodies == []
    assert sample("sigma_request_body_refused_total", {"reason": "content_length"}) == before + 2


def test_content_length_at_the_limit_goes_through():
    inner = Recorder()
    assert call(BodySizeLimit(inner), environ_for(b"x" * LIMIT, length=LIMIT)).startswith("200")
    assert inner.bodies == [LIMIT]


def test_a_chunked_body_is_counted_as_it_streams():
    inner = Recorder()
    assert call(BodySizeLimit(inner), environ_for(b"x" * (LIMIT + 1), chunked=True)).startswith("413")
    assert inner.bodies == []
    assert call(BodySizeLimit(inner), environ_for(b"y" * LIMIT, chunked=True)).startswith("200")
    assert inner.bodies == [LIMIT]


def test_the_refusal_stops_reading_at_the_limit():
    class Endless(io.RawIOBase):
        served = 0

        def read(self, size=-1):
            self.served += size
            return b"z" * size

    stream = Endless()
    environ = environ_for(b"", chunked=True)
    environ["wsgi.input"] = stream
    assert call(BodySizeLimit(Recorder()), environ).startswith("413")
    assert stream.served <= LIMIT + 1


# --- Through gunicorn, as deployed ------------------------------------------------------------------------


def chunks(data: bytes, size: int = 8192) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def post(base: str, body: bytes, *, chunked: bool) -> int:
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=20)
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if chunked:
            connection.request(
                "POST", "/accounts/login/", body=chunks(body), headers=headers, encode_chunked=True
            )
        else:
            connection.request("POST", "/accounts/login/", body=body, headers=headers)
        return connection.getresponse().status
    except (BrokenPipeError, ConnectionResetError):
        return 413  # the server answered and closed while the body was still being sent
    finally:
        connection.close()


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_gunicorn_refuses_bodies_just_above_the_limit(tmp_path, settings):
    from tests.monitoring.helpers import gunicorn_serving, services_env

    env = {
        **services_env(redis_url=settings.REDIS_URL, metrics_dir=tmp_path),
        "REQUEST_BODY_MAX_BYTES": str(LIMIT),
        "WEB_CONCURRENCY": "1",
    }
    with gunicorn_serving(env) as (base, _):
        assert post(base, b"a" * (LIMIT + 1), chunked=False) == 413
        assert post(base, b"a" * LIMIT, chunked=False) == 403  # through to Django: no CSRF token
        assert post(base, b"a" * (LIMIT + 1), chunked=True) == 413
        assert post(base, b"a" * LIMIT, chunked=True) == 403
