"""nginx in front of gunicorn, for real: slow clients cost nginx a connection and never a gunicorn thread,
HTML is compressed with brotli, the body limit holds, static files and media come from disk with the
site's cache headers."""

from __future__ import annotations

import contextlib
import socket
import statistics
import threading
import time

import brotli
import pytest
from django.core.management import call_command

from deploy import edge

pytestmark = [
    pytest.mark.edge,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]


class Trickle:
    """``count`` connections sending one byte a second: half still in their headers, half in a body."""

    def __init__(self, port: int, count: int) -> None:
        self.sockets: list[socket.socket] = []
        self.stop = threading.Event()
        for n in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            if n % 2:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            else:
                sock.sendall(
                    b"POST /rum-nowhere/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
                    b"Content-Length: 100000\r\n\r\n"
                )
            self.sockets.append(sock)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(1.0):
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.send(b"x")

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        for sock in self.sockets:
            sock.close()


def healthz_latencies(base: str, count: int, *, timeout: float = 5) -> list[float]:
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        try:
            status, _, _ = edge.http_get(base + "/healthz", timeout=timeout)
            assert status == 200
            latencies.append(time.perf_counter() - started)
        except OSError:
            latencies.append(float("inf"))
        time.sleep(0.02)
    return latencies


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.95) - 1)]


def test_slow_clients_through_nginx_do_not_slow_healthz(edge_stack):
    trickle = Trickle(edge_stack.nginx.port, 200)
    try:
        time.sleep(1.5)  # every connection has sent something and waits on its next byte
        latencies = healthz_latencies(edge_stack.proxy, 100)
    finally:
        trickle.close()
    measured = p95(latencies)
    print(
        f"/healthz through nginx with 200 trickling clients: p50 {statistics.median(latencies) * 1000:.1f} ms, "
        f"p95 {measured * 1000:.1f} ms"
    )
    assert measured < 0.1, f"p95 {measured * 1000:.0f} ms"

    # The same clients straight at gunicorn hold its threads: the probe is what the issue saw (time-outs).
    direct = Trickle(int(edge_stack.gunicorn.rsplit(":", 1)[1]), 60)
    try:
        time.sleep(1.5)
        blocked = healthz_latencies(edge_stack.gunicorn, 3, timeout=3)
    finally:
        direct.close()
    print(f"/healthz straight at gunicorn with 60 trickling clients: {[round(x, 2) for x in blocked]} s")
    assert max(blocked) > 1.0, "gunicorn was not slowed by trickling clients: this test proves nothing"
    assert healthz_latencies(edge_stack.gunicorn, 1)[0] < 5  # and it recovers once they are gone


@pytest.mark.django_db(transaction=True)
def test_home_through_nginx_is_brotli_and_at_most_6_kb(edge_stack):
    call_command("seed_demo", verbosity=0)  # the demo gallery: the home page make run shows
    url = edge_stack.proxy + "/"
    edge.http_get(url)
    status, plain_head, plain = edge.http_get(url)
    assert status == 200 and "content-encoding" not in plain_head
    status, head, body = edge.http_get(url, headers={"Accept-Encoding": "gzip, deflate, br"})
    assert status == 200 and head["content-encoding"] == "br"
    assert "Accept-Encoding" in head["vary"]
    status, gz_head, gz = edge.http_get(url, headers={"Accept-Encoding": "gzip"})
    assert gz_head["content-encoding"] == "gzip"
    print(f"home: {len(plain):,} bytes, gzip {len(gz):,}, brotli {len(body):,}")
    assert brotli.decompress(body) == plain
    assert len(plain) > 20_000, "the home page should be a real one"
    assert len(body) <= 6 * 1024


def test_the_request_body_limit_is_enforced_by_nginx(edge_stack, settings):
    limit = settings.IMAGE_UPLOAD_MAX_BYTES + 1024 * 1024
    with socket.create_connection(("127.0.0.1", edge_stack.nginx.port), timeout=10) as sock:
        sock.sendall(
            b"POST /accounts/profile/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
            + f"Content-Length: {limit + 1}\r\nConnection: close\r\n\r\n".encode()
        )
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_static_and_media_come_from_disk_with_the_sites_headers(edge_stack, settings):
    import json

    manifest = json.loads((edge_stack.static_root / "staticfiles.json").read_text())["paths"]
    hashed = "/static/" + manifest["css/site.css"] if "css/site.css" in manifest else None
    assert hashed, sorted(manifest)[:10]
    status, head, body = edge.http_get(edge_stack.proxy + hashed)
    status_app, head_app, body_app = edge.http_get(edge_stack.gunicorn + hashed)
    assert status == status_app == 200 and body == body_app
    assert head["cache-control"] == head_app["cache-control"] == "max-age=31536000, public, immutable"
    assert head["x-content-type-options"] == "nosniff"
    status, gz_head, _ = edge.http_get(edge_stack.proxy + hashed, headers={"Accept-Encoding": "gzip"})
    assert gz_head.get("content-encoding") == "gzip"
    plain = "/static/css/site.css"
    assert (
        edge.http_get(edge_stack.proxy + plain)[1]["cache-control"]
        == edge.http_get(edge_stack.gunicorn + plain)[1]["cache-control"]
    )

    thumbs = edge_stack.media_root / "thumbs" / "1"
    thumbs.mkdir(parents=True, exist_ok=True)
    (thumbs / "abc-320.webp").write_bytes(b"RIFF....WEBP")
    (edge_stack.media_root / "thumbnails").mkdir(exist_ok=True)
    (edge_stack.media_root / "thumbnails" / "master.webp").write_bytes(b"master")
    path = "/media/thumbs/1/abc-320.webp"
    status, head, body = edge.http_get(edge_stack.proxy + path)
    status_app, head_app, _ = edge.http_get(edge_stack.gunicorn + path)
    assert status == status_app == 200 and body == b"RIFF....WEBP"
    assert head["cache-control"] == head_app["cache-control"] == "public, max-age=2592000, immutable"
    assert edge.http_get(edge_stack.proxy + "/media/thumbnails/master.webp")[0] == 404
    assert edge.http_get(edge_stack.proxy + "/media/thumbs/../thumbnails/master.webp")[0] == 404
    assert edge.http_get(edge_stack.proxy + "/metrics")[0] == 404


def test_the_client_address_is_believed_only_from_the_cdn(edge_stack, tmp_path):
    """nginx takes X-Forwarded-For only from the CDN's addresses (set_real_ip_from), and the CDN replaces
    whatever a client sent with the address it saw."""
    via_cdn_log = edge_stack.nginx.run_dir / "nginx-access.log"
    edge.http_get(edge_stack.cdn + "/healthz?via-cdn", headers={"X-Forwarded-For": "6.6.6.6"})
    # A proxy whose CDN is elsewhere: this client (loopback) is not the CDN, its header is ignored.
    other = edge.start_nginx(
        tmp_path / "nginx",
        upstream=edge_stack.gunicorn.removeprefix("http://"),
        static_root=edge_stack.static_root,
        media_root=edge_stack.media_root,
        cdn_addresses=["192.0.2.10"],
    )
    try:
        edge.http_get(other.url + "/healthz?direct", headers={"X-Forwarded-For": "6.6.6.6"})
    finally:
        other.stop()
    time.sleep(0.2)
    [via_cdn] = [line for line in via_cdn_log.read_text().splitlines() if "/healthz?via-cdn" in line]
    [direct] = [
        line
        for line in (tmp_path / "nginx" / "nginx-access.log").read_text().splitlines()
        if "?direct" in line
    ]
    assert via_cdn.startswith("127.0.0.1 ") and direct.startswith("127.0.0.1 "), (via_cdn, direct)
