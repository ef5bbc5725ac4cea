"""The edge for real: gunicorn behind nginx behind Varnish, with a Celery worker sending the purges.

One stack per test module (``edge_stack``), on the test database and Redis, every server on a free port in a
temporary folder, stopped by its pid at the end. Tests carry the ``edge`` marker: with REQUIRE_SERVICES=1 (CI)
a missing Debian package is a failure; otherwise the tests are deselected and the summary says so.

Purges go to Varnish through a relay (``PurgeRelay``) the tests can cut: "the CDN is unreachable" while
Varnish keeps serving what it holds, as when the network between the origin and the CDN fails.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

from deploy import edge
from tests import deselection
from tests.monitoring.helpers import (
    free_port,
    services_env,
    start_gunicorn,
    stop_gracefully,
    wait_until_serving,
)

ROOT = Path(__file__).resolve().parents[2]
pytest_collection_modifyitems, pytest_terminal_summary = deselection.hooks(
    missing=edge.missing_packages,
    markers=lambda missing: ["edge"],
    summary=lambda missing: (
        f"edge tests were not run: Debian packages missing: {' '.join(missing)} (`.ci/run` installs them)."
    ),
)


class PurgeRelay:
    """A TCP relay to Varnish's port for purge requests; ``cut()`` refuses connections until ``restore()``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.connections = 0
        self._open = threading.Event()
        self._open.set()
        self._stopped = False
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._listen()

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.2)
        self._listener = listener
        self._thread = threading.Thread(target=self._serve, args=(listener,), daemon=True)
        self._thread.start()

    def _serve(self, listener: socket.socket) -> None:
        while not self._stopped and self._open.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._pipe_pair, args=(client,), daemon=True).start()

    def _pipe_pair(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
        except OSError:
            client.close()
            return

        def pump(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for sock in (src, dst):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)

        threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
        pump(client, upstream)

    def cut(self) -> None:
        """Close the listening socket: purges get "connection refused"."""
        self._open.clear()
        if self._listener is not None:
            self._listener.close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def restore(self) -> None:
        self._open.set()
        self._listen()

    def stop(self) -> None:
        self._stopped = True
        self.cut()


@dataclass
class EdgeStack:
    gunicorns: list[str]  # base URLs, one per web instance (nginx spreads requests over them)
    nginx: edge.Server
    varnish: edge.Server
    relay: PurgeRelay
    static_root: Path
    media_root: Path
    worker_log: Path

    def settle(self, seconds: float = 10) -> None:
        """Wait until the worker has sent every purge owed so far (the fixtures' own writes owe some)."""
        from sigma_playground.caching import keys, service
        from sigma_playground.cdn import purge

        client = service.backend().client
        deadline = time.monotonic() + seconds
        while purge.pending_keys() or client.exists(keys.cdn_scheduled()):
            assert time.monotonic() < deadline, "purges still owed:\n" + self.worker_log.read_text()[-2000:]
            time.sleep(0.05)

    @property
    def gunicorn(self) -> str:
        return self.gunicorns[0]

    @property
    def cdn(self) -> str:
        return self.varnish.url

    @property
    def proxy(self) -> str:
        return self.nginx.url


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "sigma_playground",
            "worker",
            "-Q",
            ",".join(settings.WORKER_QUEUES),  # every queue, as `make worker` and `make stack`
            "--pool=solo",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--purge",
            "--loglevel=INFO",
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def _wait_for_worker(process: subprocess.Popen, log: Path, *, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while "ready." not in log.read_text(errors="replace"):
        assert process.poll() is None, "the Celery worker exited:\n" + log.read_text()[-3000:]
        assert time.monotonic() < deadline, "the Celery worker did not start:\n" + log.read_text()[-3000:]
        time.sleep(0.2)


@pytest.fixture(scope="module")
def edge_instances() -> int:
    """Web instances behind nginx in this module's stack (a module overrides it: tests/edge/test_instances.py)."""
    return 1


@pytest.fixture(scope="module")
def edge_stack(django_db_setup, django_db_blocker, tmp_path_factory, edge_instances) -> Iterator[EdgeStack]:
    # Under pytest-xdist every worker's stack would share the Redis databases (page cache, owed purges,
    # broker): one stack at a time, whichever worker runs it.
    lock = (Path(tempfile.gettempdir()) / f"sigma-edge-{settings.REDIS_URL.replace('/', '_')}.lock").open("w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        yield from _edge_stack(django_db_blocker, tmp_path_factory, instances=edge_instances)
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def _edge_stack(django_db_blocker, tmp_path_factory, *, instances: int) -> Iterator[EdgeStack]:
    run = tmp_path_factory.mktemp("edge")
    static_root, media_root = run / "static", run / "media"
    media_root.mkdir()
    varnish_port = free_port()
    relay = PurgeRelay(varnish_port)
    with django_db_blocker.unblock():
        env = {
            **os.environ,
            **services_env(redis_url=settings.REDIS_URL, metrics_dir=run / "prometheus-web"),
            "DEBUG": "0",
            "STATIC_ROOT": str(static_root),
            "MEDIA_ROOT": str(media_root),
            "CDN_PURGE_BACKEND": "varnish",
            "CDN_VARNISH_URLS": f"http://127.0.0.1:{relay.port}",
            "TRUSTED_PROXY_NETWORKS": "127.0.0.1/32",
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "PYTHONUNBUFFERED": "1",
        }
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=300,
    )
    started: list = []
    web_ports = [free_port() for _ in range(instances)]
    for index, web_port in enumerate(web_ports):
        metrics_dir = run / f"prometheus-web-{index + 1}"  # each instance its own, as on its own machine
        metrics_dir.mkdir()
        started.append(start_gunicorn({**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}, port=web_port))
    worker_log = run / "worker.log"
    worker_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(run / "prometheus-celery")}
    (run / "prometheus-celery").mkdir()
    worker = _start_worker(worker_env, worker_log)
    try:
        for web_port, gunicorn in zip(web_ports, started, strict=True):
            wait_until_serving(f"http://127.0.0.1:{web_port}/healthz", gunicorn, "gunicorn")
        nginx = edge.start_nginx(
            run / "nginx",
            upstream=[f"127.0.0.1:{web_port}" for web_port in web_ports],
            static_root=static_root,
            media_root=media_root,
            client_max_body_size=settings.IMAGE_UPLOAD_MAX_BYTES + 1024 * 1024,
            static_max_age=settings.WHITENOISE_MAX_AGE or 3600,
            media_max_age=settings.MEDIA_CACHE_MAX_AGE,
        )
        started.append(nginx)
        varnish = edge.start_varnish(run / "varnish", origin_port=nginx.port, port=varnish_port)
        started.append(varnish)
        _wait_for_worker(worker, worker_log)
        yield EdgeStack(
            gunicorns=[f"http://127.0.0.1:{web_port}" for web_port in web_ports],
            nginx=nginx,
            varnish=varnish,
            relay=relay,
            static_root=static_root,
            media_root=media_root,
            worker_log=worker_log,
        )
    finally:
        relay.stop()
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        for server in reversed(started):
            if isinstance(server, edge.Server):
                server.stop()
            else:
                stop_gracefully(server)


@pytest.fixture
def stack(edge_stack: EdgeStack, settings) -> Iterator[EdgeStack]:
    """The module's stack, with an empty CDN, and this process configured as the stack's web processes are
    (writes made here owe their purges to the stack's worker, as a request's would)."""
    from sigma_playground.caching import service
    from sigma_playground.celery import app

    edge.varnish_ban_all(edge_stack.varnish)
    settings.PAGE_CACHE_ENABLED = True
    settings.CDN_PURGE_BACKEND = "varnish"
    settings.CDN_SHARED_MAX_AGE = 86_400
    settings.CDN_VARNISH_URLS = [f"http://127.0.0.1:{edge_stack.relay.port}"]
    # As the stack's processes have them with a purge backend (settings.py): no in-process page copies, so a
    # purge waits only for the writes around it.
    settings.PAGE_LOCAL_SECONDS, settings.CDN_PURGE_DELAY_SECONDS = 0.0, 0.1
    service.reset_backend()
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        yield edge_stack
    finally:
        app.conf.task_always_eager = eager
        service.reset_backend()


from tests.caching.conftest import world  # noqa: E402, F401  (the invalidation table's fixture)
