"""Request ids, the JSON access log, and the request id reaching the Celery tasks a request starts."""

from __future__ import annotations

import json
import logging
import threading

import pytest
from django.conf import settings
from django.urls import reverse

from sigma_playground.request_id import HEADER, hash_user_id
from tests import images
from tests.factories import UserFactory, WorkbookFactory
from tests.test_production_settings import PROD_ENV, run
from workbooks.models import Workbook


def test_a_request_id_is_generated_and_returned(client):
    response = client.get("/healthz")
    request_id = response[HEADER]
    assert len(request_id) == 32 and int(request_id, 16) >= 0
    assert client.get("/healthz")[HEADER] != request_id


@pytest.mark.parametrize("given", ["req-2026-11-26.abc:01", "0f8fad5b-d9cb-469f-a165-70867728950e"])
def test_a_sane_incoming_request_id_is_kept(client, given):
    assert client.get("/healthz", HTTP_X_REQUEST_ID=given)[HEADER] == given


@pytest.mark.parametrize(
    "given",
    ["short", "x" * 129, "has space 12345", "new\nline-forged-log", "<script>alert(1)</script>", "é" * 10],
)
def test_an_insane_incoming_request_id_is_replaced(client, given):
    returned = client.get("/healthz", HTTP_X_REQUEST_ID=given)[HEADER]
    assert returned != given and len(returned) == 32


@pytest.mark.django_db
def test_the_access_log_line_has_request_id_route_status_duration_and_a_hashed_user(client, user, json_log):
    client.force_login(user)
    workbook = WorkbookFactory()
    response = client.get(
        workbook.get_absolute_url() + "?q=secret+search", HTTP_X_REQUEST_ID="access-log-test-1"
    )
    assert response.status_code == 200
    lines = json_log()
    access = next(line for line in lines if line["logger"] == "sigma_playground.request")
    assert access["request_id"] == "access-log-test-1"
    assert access["route"] == "workbooks:detail"
    assert access["status"] == 200
    assert access["method"] == "GET"
    assert isinstance(access["duration_ms"], float) and access["duration_ms"] > 0
    assert (
        access["user"] == hash_user_id(user.pk)
        and access["user"] != str(user.pk)
        and len(access["user"]) == 16
    )
    assert access["level"] == "INFO" and access["ts"].endswith("+00:00")
    text = json.dumps(lines)
    assert "secret" not in text and user.username not in text and user.email not in text


def test_anonymous_requests_log_no_user_and_unresolved_paths_no_route(client, json_log):
    client.get("/no/such/page/")
    access = next(line for line in json_log() if line["logger"] == "sigma_playground.request")
    assert access["user"] is None and access["route"] is None and access["status"] == 404
    not_found = next(line for line in json_log() if line["logger"] == "django.request")
    assert not_found["request_id"] == access["request_id"]  # logged by Django after the middleware returned
    assert "request" not in not_found


def test_the_json_formatter_writes_exceptions_and_odd_values(json_log):
    log = logging.getLogger("tests.json")
    try:
        raise ValueError("bad")
    except ValueError:
        log.exception("failed %s", "here", extra={"thing": object(), "count": 3})
    line = json_log()[-1]
    assert line["message"] == "failed here" and line["level"] == "ERROR" and line["count"] == 3
    assert "ValueError: bad" in line["exc"] and line["thing"].startswith("<object")
    assert line["request_id"] is None


TASK = "workbooks.tasks.render_thumbnail_derivatives"


def publish_with_thumbnail(browser, request_id: str):
    """A request that starts a Celery task: publishing with a thumbnail queues its rendering (on commit)."""
    data = {
        "title": "Request id flow",
        "description": "",
        "sigma_embed_url": "https://app.sigmacomputing.com/embed/1-abcdefghijklmnopqrst",
        "tags": "finance",
        "visibility": "public",
        "publish": "on",
        "thumbnail": images.upload(images.image_bytes("PNG", (400, 300)), "t.png"),
    }
    response = browser.submit(reverse("workbooks:create"), data, HTTP_X_REQUEST_ID=request_id)
    assert response.status_code == 302, response.content[:500]
    return response


@pytest.mark.django_db(transaction=True)  # on_commit runs inside the request, as in production
def test_the_request_id_reaches_the_log_line_of_the_task_the_request_started(browser, json_log):
    """Tasks run eagerly in tests, inside the request that started them."""
    browser.force_login(UserFactory())
    publish_with_thumbnail(browser, "flow-into-task-0001")
    task_line = next(line for line in json_log() if line.get("task") == TASK)
    assert task_line["request_id"] == "flow-into-task-0001"
    assert task_line["state"] == "success" and task_line["logger"] == "sigma_playground.celery"
    assert Workbook.objects.get().thumbnail_derivatives


@pytest.mark.django_db(transaction=True)
def test_the_request_id_travels_in_the_message_to_a_real_worker(browser, json_log):
    """The same through a broker and a worker thread (not eager): the id rides in the message headers."""
    from celery import signals
    from celery.contrib.testing.worker import start_worker

    from sigma_playground.celery import app

    browser.force_login(UserFactory())
    published: list[dict] = []
    done = threading.Event()

    def capture(headers=None, **kwargs):
        published.append(dict(headers or {}))

    def finished(sender=None, **kwargs):
        if getattr(sender, "name", "") == TASK:
            done.set()

    signals.before_task_publish.connect(capture, weak=False)
    signals.task_postrun.connect(finished, weak=False)
    app.conf.task_always_eager = False
    try:
        # Thumbnail renders are routed to the "media" queue (settings.CELERY_TASK_ROUTES).
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10, queues=["media"]):
            json_log.reattach()
            publish_with_thumbnail(browser, "flow-through-broker-01")
            assert done.wait(30), "the worker did not run the task"
    finally:
        app.conf.task_always_eager = True
        signals.before_task_publish.disconnect(capture)
        signals.task_postrun.disconnect(finished)
    assert any(h.get("sigma_request_id") == "flow-through-broker-01" for h in published)
    task_line = next(line for line in json_log() if line.get("task") == TASK)
    assert task_line["request_id"] == "flow-through-broker-01" and task_line["state"] == "success"
    assert Workbook.objects.get().thumbnail_derivatives


def test_tasks_started_outside_a_request_carry_no_request_id(json_log):
    from monitoring.tasks import beat_heartbeat

    beat_heartbeat.delay()
    line = next(line for line in json_log() if line.get("task") == "monitoring.tasks.beat_heartbeat")
    assert line["request_id"] is None


def test_production_mode_logs_json_lines():
    probe = (
        "import django, logging, json; django.setup(); "
        "from sigma_playground.request_id import bound_request_id\n"
        "with bound_request_id('prod-probe-000001'):\n"
        "    logging.getLogger('probe').warning('hello %s', 'there', extra={'route': 'home'})\n"
    )
    result = run(["-c", probe], {**PROD_ENV, "DJANGO_SETTINGS_MODULE": "sigma_playground.settings"})
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert line == {
        "ts": line["ts"],
        "level": "WARNING",
        "logger": "probe",
        "message": "hello there",
        "request_id": "prod-probe-000001",
        "route": "home",
    }


def test_development_mode_logs_plain_lines_with_the_request_id():
    assert settings.LOGGING["handlers"]["console"]["formatter"] == "plain"
    assert "%(request_id)s" in settings.LOGGING["formatters"]["plain"]["format"]
    assert settings.CELERY_WORKER_HIJACK_ROOT_LOGGER is False
