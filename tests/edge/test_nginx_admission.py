"""nginx's admission control (issue 15, "overload without collapse"): beyond ``origin_max_in_flight`` costly
requests at the origin (anything but an anonymous GET or HEAD), nginx answers a 503 with Retry-After at once
instead of queueing; anonymous reads and health probes still pass; a slow client never holds a slot. The origin here is a small server that holds each request until told to
answer, so nothing depends on timing."""

from __future__ import annotations

import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from deploy import edge

pytestmark = [pytest.mark.edge]


class HeldOrigin:
    """Answers /healthz at once and holds every other request until ``release``."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.held = 0
        self.seen: list[str] = []
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                with origin.lock:
                    origin.seen.append(self.path)
                if self.path != "/healthz" and "/anonymous/" not in self.path:
                    with origin.lock:
                        origin.held += 1
                    origin.release.wait(30)
                body = b"ok"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_HEAD(self) -> None:
                with origin.lock:
                    origin.seen.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_held(self, count: int) -> None:
        for _ in range(300):
            with self.lock:
                if self.held >= count:
                    return
            threading.Event().wait(0.05)
        raise AssertionError(f"the origin holds {self.held} requests, expected {count}")

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def admission(tmp_path):
    origin = HeldOrigin()
    nginx = edge.start_nginx(
        tmp_path / "nginx",
        upstream=f"127.0.0.1:{origin.port}",
        static_root=tmp_path,
        media_root=tmp_path,
        origin_max_in_flight=2,
        retry_after=3,
    )
    try:
        yield origin, f"http://127.0.0.1:{nginx.port}"
    finally:
        origin.close()
        nginx.stop()


SESSION = {"Cookie": "sessionid=abc"}


def test_beyond_the_limit_nginx_answers_503_at_once_and_probes_still_pass(admission):
    origin, base = admission
    with ThreadPoolExecutor(max_workers=2) as pool:
        held = [pool.submit(edge.http_get, f"{base}/page/{n}", headers=SESSION, timeout=30) for n in range(2)]
        origin.wait_held(2)
        # Both slots are taken and the origin holds them: the next costly request is refused without waiting,
        # a logged-in GET or a POST alike.
        status, headers, body = edge.http_get(f"{base}/page/extra", headers=SESSION, timeout=30)
        assert status == 503
        assert headers["retry-after"] == "3"
        assert headers["cache-control"] == "no-store"
        assert b"busy" in body
        assert edge.http_get(f"{base}/page/post", method="POST", timeout=30)[0] == 503
        assert "/page/extra" not in origin.seen  # never reached the origin
        assert "/page/post" not in origin.seen
        # Anonymous reads (mostly page-cache hits) and health probes bypass the limit.
        assert edge.http_get(f"{base}/anonymous/page", timeout=30)[0] == 200
        assert edge.http_get(f"{base}/anonymous/page", method="HEAD", timeout=30)[0] == 200
        assert edge.http_get(f"{base}/healthz", timeout=30)[0] == 200
        origin.release.set()
        assert [f.result()[0] for f in held] == [200, 200]
    # Slots are free again.
    assert edge.http_get(f"{base}/page/after", headers=SESSION, timeout=30)[0] == 200


def test_anonymous_reads_are_never_limited(admission):
    """More anonymous GETs held at once than there are slots: none is refused."""
    origin, base = admission
    with ThreadPoolExecutor(max_workers=4) as pool:
        held = [pool.submit(edge.http_get, f"{base}/page/{n}", timeout=30) for n in range(4)]
        origin.wait_held(4)
        origin.release.set()
        assert [f.result()[0] for f in held] == [200] * 4


def test_the_default_limit_is_one_and_a_half_per_core_shared_by_the_instances():
    assert edge.default_max_in_flight(2) == 3
    assert edge.default_max_in_flight(8) == 12
    assert edge.default_max_in_flight(2, instances=2) == 2
    assert edge.default_max_in_flight(1) == 2


def test_a_slow_client_does_not_hold_a_slot(admission):
    origin, base = admission
    origin.release.set()  # answer everything at once
    port = int(base.rsplit(":", 1)[1])
    slow = []
    for _ in range(4):  # more slow uploads than slots, each still sending its body
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"POST /upload/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\nxx")
        slow.append(sock)
    try:
        assert edge.http_get(f"{base}/page/while-uploads", timeout=30)[0] == 200
    finally:
        for sock in slow:
            sock.close()
